"""What every rasterizer variant returns for one view."""

from __future__ import annotations

import flax.struct
import jax

# A variant's optional inputs (``attributes``, ``pixel_table``) and outputs: an array or None.
OptArray = jax.Array | None


@flax.struct.dataclass
class RenderOutput:
    """One rendered view. ``H, W`` from the settings, ``C`` from the attributes.

    Attributes:
      features: ``[H, W, C]`` the variant's per-pixel blend of the vertex attributes (zeros on
        background), or None. ``hard``: barycentric interpolation in the visible face. ``soft``:
        SoftRas aggregation. ``pytorch3d``: softmax blend of the K nearest faces. ``gaussian``:
        VoGE's transmittance-weighted sum over vertex kernels.
      pixel_values: ``[H, W]`` per-pixel values of a ``[V, H*W]`` vertex-by-pixel table, or None:
        pixel ``p`` gets the same blend of ``table[v, p]`` over vertices ``v`` that ``features``
        makes of the attributes. With ``table = vertex_features @ observed_features.T`` this is
        exactly the dot product of the rendered feature with the observed one, without rendering
        ``C`` channels (NeMo's score).
      coverage: ``[H, W]`` ``hard``: 1 where a face covers the pixel centre, else 0; soft
        variants: the silhouette in [0, 1].
      depth: ``[H, W]`` camera-frame depth (CAD units), 0 on background; soft variants: the
        blend weights' mean depth of the contributing primitives.
      face_index: ``[H, W]`` int32 visible (nearest) face, -1 on background (and everywhere for
        variants without faces, e.g. ``gaussian``).
      bary: ``[H, W, 3]`` barycentrics of the pixel centre in ``face_index``'s face (zeros where
        ``face_index`` is -1).
      overflow: ``[]`` int32 tiles that did not fit the tile budget; 0 means the render is exact.
    """

    features: jax.Array | None
    pixel_values: jax.Array | None
    coverage: jax.Array
    depth: jax.Array
    face_index: jax.Array
    bary: jax.Array
    overflow: jax.Array
