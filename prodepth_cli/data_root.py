"""Where the reference data lives: `shared/data` beside the checkout, or `$PRODEPTH_DATA`.

The data is read in place and never copied into the project; the variable lets a run find
it elsewhere (a GPU machine that receives the checkout and a subset of the data, say).
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_data() -> Path:
    """The reference data folder (it may be absent: callers skip or fall back)."""
    override = os.environ.get("PRODEPTH_DATA")
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


SHARED_DATA = shared_data()
