"""Point clouds and meshes: a photograph and its depth map back-projected into 3-D.

`intrinsics` finds the camera's focal length (EXIF, the model, or a field of view), `scale`
turns the map into depth along the camera's axis, `points` back-projects a grid of pixels,
`ply` streams coloured points to a binary PLY, `mesh` makes and writes the textured glTF
mesh, and `export` runs it for one photograph (`scene_file`).
"""

from prodepth_cli.scene3d.export import SCENE_FORMATS, SceneOptions, SceneReport, scene_file

__all__ = ["SCENE_FORMATS", "SceneOptions", "SceneReport", "scene_file"]
