"""prodepth: seamless high-resolution depth maps for photographs of any size.

`depth(image)` for a path, an array or a PIL image (docs/python-api.md); `load_model`,
`DepthOptions`. They are imported on first use: `import prodepth_cli` (the CLI's first
step) stays cheap, without onnxruntime or OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["DepthOptions", "__version__", "depth", "load_model"]

_LAZY = {
    "depth": "prodepth_cli.api",
    "load_model": "prodepth_cli.models.runtime",
    "DepthOptions": "prodepth_cli.pipeline",
}

if TYPE_CHECKING:
    from prodepth_cli.api import depth
    from prodepth_cli.models.runtime import load_model
    from prodepth_cli.pipeline import DepthOptions


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
