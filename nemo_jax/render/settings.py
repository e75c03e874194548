"""Static rasterizer settings (hashable: pass them as static arguments under jit)."""

from __future__ import annotations

import dataclasses
from typing import Any

from nemo_jax.render.variants import get_variant, make_params, registered_variants


@dataclasses.dataclass(frozen=True)
class RasterSettings:
    """How to rasterize. Every field is static: changing one recompiles.

    Attributes:
      height, width: output size in pixels. Pixel ``(row i, col j)`` has its centre at image
        coordinates ``(u, v) = (j, i)`` (the frame of ``Camera.principal``).
      variant: name of a registered rasterizer variant (:mod:`nemo_jax.render.variants`):
        ``"hard"`` (z-buffer, one face per pixel, what NeMo uses), ``"soft"`` (SoftRas),
        ``"pytorch3d"`` (PyTorch3D's K-faces-per-pixel soft raster), ``"gaussian"`` (VoGE's
        vertex Gaussians), or any variant registered by the caller.
      params: the variant's own parameters: None (its defaults), a mapping of field overrides
        (``{"sigma": 0.5}``) or an instance of its parameter class. Stored as that instance, so
        ``settings.params.sigma`` reads a field; unknown or invalid fields raise ``ValueError``.
      tile_height, tile_width: size of the pixel window ("tile") a primitive (a face; a vertex
        kernel for ``gaussian``) visits at a time. A primitive whose screen box is larger visits
        several tiles. Smaller tiles waste less work on small faces and need a larger
        ``tile_budget``.
      tile_budget: number of (primitive, tile) slots evaluated per render; a static shape. ``None``
        picks ``primitives + 8 * ceil(H / th) * ceil(W / tw)``, enough for a closed mesh filling
        the image a few times over. Primitives that do not fit are dropped, and
        ``RenderOutput.overflow`` counts the missing tiles, so callers can check (the tools do)
        and raise the budget.
      near: faces with any vertex at depth ``<= near`` (camera frame) are dropped (masked), not
        clipped: this keeps the result finite for a camera inside or very close to the mesh.
      far: depth normalisation of the soft variants' depth softmax (SoftRas / PyTorch3D ``zfar``).
      perspective_correct: perspective-correct barycentrics (PyTorch3D's default for perspective
        cameras). Depth is always perspective-correct.
      cull_backfaces: drop faces whose projected winding is clockwise in the image (y down), i.e.
        faces whose outward normal (counter-clockwise vertex order) points away from the camera.
        Exact for closed, consistently wound meshes and about twice as fast.
      min_area: faces whose doubled screen-space area (pixels^2) is below this are degenerate or
        edge-on and are masked.
    """

    height: int
    width: int
    variant: str = "hard"
    params: Any = None
    tile_height: int = 8
    tile_width: int = 8
    tile_budget: int | None = None
    near: float = 1e-2
    far: float = 100.0
    perspective_correct: bool = True
    cull_backfaces: bool = False
    min_area: float = 1e-6

    def __post_init__(self):
        variant = get_variant(self.variant)  # raises, listing the registered names
        object.__setattr__(self, "params", make_params(variant, self.params))
        for name in ("height", "width", "tile_height", "tile_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"RasterSettings.{name}: expected a positive int, got {value!r}")
        if self.tile_budget is not None and self.tile_budget <= 0:
            raise ValueError(f"RasterSettings.tile_budget: expected > 0, got {self.tile_budget}")
        if not 0 < self.near < self.far:
            raise ValueError(f"RasterSettings.near/far: need 0 < near < far, got {self.near}, {self.far}")

    @property
    def blur_radius(self) -> float:
        """Pixels by which the variant grows each face's screen box (0 for ``hard``)."""
        return float(get_variant(self.variant).blur_radius(self.params))

    def budget(self, num_primitives: int) -> int:
        """The static number of (primitive, tile) slots for ``num_primitives`` faces (vertices for
        vertex-based variants)."""
        if self.tile_budget is not None:
            return self.tile_budget
        tiles_y = -(-self.height // self.tile_height)
        tiles_x = -(-self.width // self.tile_width)
        return num_primitives + 8 * tiles_y * tiles_x


def variant_names() -> tuple[str, ...]:
    """Names accepted by ``RasterSettings.variant`` (the registered variants)."""
    return registered_variants()
