"""Camera geometry: the PASCAL3D+ viewpoint convention, rotations and rotation errors.

Modules:

* ``rotation``: elementary rotations, NeMo's rotation matrix, viewpoint <-> matrix, geodesic error.
* ``camera``: pinhole cameras in the PASCAL3D+ convention, projection to pixels, feature-map
  coordinates and the camera of a downsampled image.
"""

from nemo_jax.geometry import camera, rotation
from nemo_jax.geometry.camera import (
    Camera,
    camera_from_viewpoint,
    check_viewpoint,
    checked_project_pascal3d,
    feature_coordinates,
    project,
    project_pascal3d,
    scale_camera,
    to_camera_frame,
)
from nemo_jax.geometry.rotation import (
    geodesic_distance,
    matrix_to_viewpoint,
    rotation_from_viewpoint,
)

__all__ = [
    "Camera",
    "camera",
    "camera_from_viewpoint",
    "check_viewpoint",
    "checked_project_pascal3d",
    "feature_coordinates",
    "geodesic_distance",
    "matrix_to_viewpoint",
    "project",
    "project_pascal3d",
    "rotation",
    "rotation_from_viewpoint",
    "scale_camera",
    "to_camera_frame",
]
