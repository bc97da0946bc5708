"""The shots of a `--fast` run and the range each one's 16-bit maps are written in, kept in
`shots.json` beside the maps: a rerun resumes with the same ranges, and a reader can turn
PNG levels back into disparity (`lo + level / 65535 * (hi - lo)`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from prodepth_cli.errors import OptionError
from prodepth_cli.io.write import atomic_output

SHOTS_NAME = "shots.json"
_KIND = "prodepth video --fast"
# A shot's 16-bit range: its first map's 1st-99th percentiles, widened by half their
# distance on each side (room for the shot to come nearer or recede; beyond it, clipped).
RANGE_PERCENTILES = (1.0, 99.0)
RANGE_MARGIN = 0.5


def shot_range(disparity: np.ndarray) -> tuple[float, float]:
    """`(lo, hi)`: the disparity a shot's 16-bit maps write as 0 and 65535, fixed from the
    shot's first map `(H, W)` (streaming: the frames to come are not known yet)."""
    p_lo, p_hi = (float(v) for v in np.percentile(disparity, RANGE_PERCENTILES))
    width = max(p_hi - p_lo, 1e-6 * max(abs(p_hi), 1.0))  # a flat map still gets a range
    return p_lo - RANGE_MARGIN * width, p_hi + RANGE_MARGIN * width


@dataclass(frozen=True)
class Shot:
    """A shot from frame `first` (index) on, its maps' range `[lo, hi]` (disparity), and the
    median and 10th-90th percentile width of its first map at the flow size (what
    `stabilise.Alignment` holds the shot to)."""

    first: int
    lo: float
    hi: float
    centre: float
    spread: float


@dataclass
class ShotLog:
    """`shots.json`: what the run was (model, map format, frame count) and its shots so
    far, rewritten atomically as each shot starts, before its first map is written."""

    path: Path
    model: str
    fmt: str
    frames: int | None
    shots: list[Shot] = field(default_factory=list)

    @classmethod
    def open(
        cls, folder: Path, model: str, fmt: str, frames: int | None, first_map: Path
    ) -> ShotLog:
        """The log of `folder`, resumed when it is this run's (same model, format and frame
        count); OptionError when the folder holds another run's maps (a log that differs,
        or `first_map`, the first frame's output, without a log)."""
        log = cls(folder / SHOTS_NAME, model, fmt, frames)
        if not log.path.exists():
            if first_map.exists():
                raise OptionError(
                    f"{folder}: holds depth maps ({first_map.name}) but no {SHOTS_NAME}: not "
                    "a --fast run to resume; choose another folder or remove them"
                )
            return log
        try:
            saved = json.loads(log.path.read_text())
            fields = ("lo", "hi", "centre", "spread")
            shots = [Shot(int(s["first"]), *(float(s[f]) for f in fields)) for s in saved["shots"]]
            run = (saved["kind"], saved["model"], saved["format"], saved["frames"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OptionError(
                f"{log.path}: not readable ({exc}); remove it to start over"
            ) from None
        if run != (_KIND, model, fmt, frames):
            raise OptionError(
                f"{folder}: holds a --fast run of {saved['frames']} frames by {saved['model']} "
                f"as {saved['format']}, not this one ({frames} frames by {model} as {fmt}); "
                "choose another folder or remove it"
            )
        log.shots = sorted(shots, key=lambda s: s.first)
        return log

    def shot_at(self, index: int) -> Shot | None:
        """The shot frame `index` belongs to, when the log has it."""
        return next((s for s in reversed(self.shots) if s.first <= index), None)

    def starting_at(self, index: int) -> Shot | None:
        """The shot that starts at frame `index`, when the log has one."""
        return next((s for s in self.shots if s.first == index), None)

    def start(self, shot: Shot) -> None:
        """Record `shot` (replacing one logged at the same frame) and save the log."""
        self.shots = sorted(
            [s for s in self.shots if s.first != shot.first] + [shot], key=lambda s: s.first
        )
        record = {
            "kind": _KIND,
            "model": self.model,
            "format": self.fmt,
            "frames": self.frames,
            "shots": [asdict(s) for s in self.shots],
        }
        with atomic_output(self.path) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")
