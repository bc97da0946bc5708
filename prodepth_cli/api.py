"""The everyday Python API: `depth(image)` for a path, an array or a PIL image, as the CLI does.

A thin shell over the pipeline (`depth_file` for files, `depth_array` for pixels in memory),
like the commands; models named by catalog name or path are loaded once per process.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prodepth_cli.errors import InputError, OptionError, OutputError
from prodepth_cli.io.write import DepthArray, format_for_output, write_depth
from prodepth_cli.models.runtime import DepthModel, load_model
from prodepth_cli.pipeline import DepthOptions, depth_array, depth_file

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["DepthOptions", "depth", "load_model"]

ModelInput = DepthModel | str | os.PathLike | None
_MODELS_KEPT = 4  # models held by name: each holds its onnxruntime sessions (up to GBs)


def depth(
    image: str | os.PathLike[str] | np.ndarray | PILImage,
    model: ModelInput = None,
    *,
    options: DepthOptions | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch: int | None = None,
    output: str | os.PathLike[str] | None = None,
    device: str = "auto",
) -> np.ndarray:
    """The depth map of one image: `(H, W)` float32 disparity, larger = nearer (relative
    inverse depth; 1/metres for a metric model such as depth-pro), the image's size.

    image: a file path (read as the CLI reads it: EXIF orientation applied, so the map is
        upright; RAW, HEIC, TIFF...); a numpy `(H, W, 3)` RGB array, uint8, uint16 or float
        in [0, 1]; or a PIL image (converted to RGB; its pixels as they are, EXIF
        orientation not applied).
    model: a loaded model (`load_model`), a catalog name (pulled on first use) or a model
        file; None: the default (`$PRODEPTH_MODEL`, else the best catalog model installed,
        else the shipped one). Names and paths are loaded once per (model, device).
    options: the tiling (`DepthOptions`); or `tile`, `overlap`, `batch` alone (not both).
    output: also write the map to this file, atomically, in the format its suffix names
        (.png 16-bit normalised, .tif/.pfm/.npy float, .jpg the photograph with the map
        embedded: a path input only). An existing file is replaced.
    device: auto | cpu | cuda ... for a model given by name or path.

    Raises InputError (an unreadable or unusable image), OptionError, OutputError,
    ModelError: `prodepth_cli.errors`, all ProdepthError.
    """
    options = _options(options, tile, overlap, batch)
    fmt = format_for_output(output, None) if output is not None else "png16"
    if isinstance(image, str | os.PathLike):
        loaded = _model(model, device)
        return depth_file(image, output, loaded, options, fmt, keep_map=True).disparity
    rgb = _pixels(image)
    if fmt == "jpeg":
        raise OutputError(
            f"{output}: a .jpg output is the photograph with its map embedded, and an image "
            "in memory has no photograph file: pass its path, or write .png, .tif, .pfm or .npy"
        )
    loaded = _model(model, device)
    disparity = depth_array(rgb, loaded, options)
    if output is not None:
        _write_map(disparity, output, fmt, loaded.is_metric)
    return disparity


def _options(
    options: DepthOptions | None, tile: int | None, overlap: int | None, batch: int | None
) -> DepthOptions:
    """One `DepthOptions` from `options` or the loose keywords (whichever was given)."""
    loose = {
        name: value
        for name, value in (("tile", tile), ("overlap", overlap), ("batch", batch))
        if value is not None
    }
    if options is None:
        return DepthOptions(**loose)
    if not isinstance(options, DepthOptions):
        raise TypeError(f"options must be a DepthOptions, not {type(options).__name__}")
    if loose:
        given = ", ".join(f"{k}={v!r}" for k, v in loose.items())
        raise OptionError(f"give options=DepthOptions({given}, ...) or {given} alone, not both")
    return options


def _model(model: ModelInput, device: str) -> DepthModel:
    """A loaded model for `model`; names and paths (and the default) loaded once."""
    if isinstance(model, DepthModel):
        if device != "auto":
            raise OptionError(
                f"device={device!r} applies to a model depth() loads; {model.name} is "
                f"loaded already (load_model(name, device={device!r}))"
            )
        return model
    if model is not None and not isinstance(model, str | os.PathLike):
        raise TypeError(
            f"model must be a loaded model, a catalog name or a path, not {type(model).__name__}"
        )
    return _load_once(None if model is None else os.fspath(model), device)


@functools.lru_cache(maxsize=_MODELS_KEPT)
def _load_once(ref: str | None, device: str) -> DepthModel:
    """`load_model(ref, device)`, kept: repeated `depth()` calls do not reload. The default
    (None) is chosen on its first use in the process."""
    return load_model(ref, device)


def _pixels(image: Any) -> np.ndarray:
    """A numpy array or a PIL image as the `(H, W, 3)` RGB array `depth_array` takes
    (InputError, saying why, for anything else)."""
    pil = sys.modules.get("PIL.Image")  # no PIL imported: the image cannot be a PIL image
    if pil is not None and isinstance(image, pil.Image):
        if image.mode.startswith("I;16"):  # 16-bit grey: convert("RGB") would clip it to 8
            grey = np.asarray(image).astype(np.uint16)
            return np.repeat(grey[:, :, None], 3, axis=2)
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise InputError(
            f"an image is a file path, a numpy (H, W, 3) array or a PIL image, not "
            f"{type(image).__name__}"
        )
    return image  # its shape and dtype are depth_array's to check


def _write_map(disparity: np.ndarray, dst: str | os.PathLike[str], fmt: str, metres: bool) -> None:
    """Write an in-memory `(H, W)` disparity map as `fmt` at `dst`, as `depth_file` would."""
    write_depth(DepthArray(disparity, metres), Path(dst), fmt)
