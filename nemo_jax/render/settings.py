"""Static rasterizer settings (hashable: pass them as static arguments under jit)."""

from __future__ import annotations

import dataclasses
import math

VARIANTS = ("hard", "soft")


@dataclasses.dataclass(frozen=True)
class RasterSettings:
    """How to rasterize. Every field is static: changing one recompiles.

    Attributes:
      height, width: output size in pixels. Pixel ``(row i, col j)`` has its centre at image
        coordinates ``(u, v) = (j, i)`` (the frame of ``Camera.principal``).
      variant: ``"hard"`` (z-buffer, one face per pixel, what NeMo uses) or ``"soft"``
        (SoftRas-style coverage and depth-softmax aggregation).
      tile_height, tile_width: size of the pixel window ("tile") a face visits at a time. A face
        whose screen box is larger visits several tiles. Smaller tiles waste less work on small
        faces and need a larger ``tile_budget``.
      tile_budget: number of (face, tile) slots evaluated per render; a static shape. ``None``
        picks ``faces + 8 * ceil(H / th) * ceil(W / tw)``, enough for a closed mesh filling the
        image a few times over. Faces that do not fit are dropped, and ``RenderOutput.overflow``
        counts the missing tiles, so callers can check (the tools do) and raise the budget.
      near: faces with any vertex at depth ``<= near`` (camera frame) are dropped (masked), not
        clipped: this keeps the result finite for a camera inside or very close to the mesh.
      far: depth normalisation for the soft variant's depth softmax (SoftRas ``zfar``).
      perspective_correct: perspective-correct barycentrics (PyTorch3D's default for perspective
        cameras). Depth is always perspective-correct.
      cull_backfaces: drop faces whose projected winding is clockwise in the image (y down), i.e.
        faces whose outward normal (counter-clockwise vertex order) points away from the camera.
        Exact for closed, consistently wound meshes and about twice as fast.
      min_area: faces whose doubled screen-space area (pixels^2) is below this are degenerate or
        edge-on and are masked.
      sigma: soft variant: coverage sharpness in pixels^2, ``D = sigmoid(+-d^2 / sigma)`` with
        ``d`` the pixel's distance to the triangle's boundary.
      gamma: soft variant: depth-softmax temperature on depth normalised to ``[0, 1]`` by
        ``(far - z) / (far - near)``.
      background_depth: soft variant: SoftRas' background epsilon, a normalised depth.
      coverage_threshold: soft variant: contributions with ``D`` below this are ignored; it sets
        the blur radius ``sqrt(sigma * log(1 / threshold - 1))`` by which face boxes are grown.
    """

    height: int
    width: int
    variant: str = "hard"
    tile_height: int = 8
    tile_width: int = 8
    tile_budget: int | None = None
    near: float = 1e-2
    far: float = 100.0
    perspective_correct: bool = True
    cull_backfaces: bool = False
    min_area: float = 1e-6
    sigma: float = 0.1
    gamma: float = 1e-4
    background_depth: float = 1e-3
    coverage_threshold: float = 1e-4

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"RasterSettings.variant: {self.variant!r} is not one of {VARIANTS}")
        for name in ("height", "width", "tile_height", "tile_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"RasterSettings.{name}: expected a positive int, got {value!r}")
        if self.tile_budget is not None and self.tile_budget <= 0:
            raise ValueError(f"RasterSettings.tile_budget: expected > 0, got {self.tile_budget}")
        if not 0 < self.near < self.far:
            raise ValueError(f"RasterSettings.near/far: need 0 < near < far, got {self.near}, {self.far}")
        for name in ("sigma", "gamma"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RasterSettings.{name}: expected > 0, got {getattr(self, name)}")
        if not 0 < self.coverage_threshold < 0.5:
            raise ValueError("RasterSettings.coverage_threshold: expected in (0, 0.5)")

    @property
    def blur_radius(self) -> float:
        """Pixels by which the soft variant grows each face's box (0 for ``hard``)."""
        if self.variant != "soft":
            return 0.0
        t = self.coverage_threshold
        return math.sqrt(self.sigma * math.log(1.0 / t - 1.0))

    def budget(self, num_faces: int) -> int:
        """The static number of (face, tile) slots for a mesh of ``num_faces`` faces."""
        if self.tile_budget is not None:
            return self.tile_budget
        tiles_y = -(-self.height // self.tile_height)
        tiles_x = -(-self.width // self.tile_width)
        return num_faces + 8 * tiles_y * tiles_x
