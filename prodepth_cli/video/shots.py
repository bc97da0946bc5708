"""The shots of a `--fast` run and the range each one's 16-bit maps are written in, kept in
`shots.json` beside the maps: a rerun resumes with the same ranges, and a reader can turn
PNG levels back into disparity (`lo + level / 65535 * (hi - lo)`).

A shot's maps are written as its frames stream, over a provisional range fixed from its
first map (`shot_range`, with room for the frames to come); when the shot is over they are
rewritten over the range the shot used (`LevelSpan.final_range`). Safe to stop at any
moment (Ctrl-C, kill -9, a full disk), because:

- every 16-bit map carries the range its levels span (`outputs.FrameMapWriter`: a PNG text
  entry), and each rewrite is atomic (written aside, renamed over): a map is in one range,
  which it says; reading it back (to align the next frame, for the preview) uses that one;
- the final range is logged (`ShotLog.end`) before the first map is rewritten, so a rerun
  uses the same one, and a map already in it is left as it is (`FrameMapWriter.rewrite`):
  rewriting a shot twice converts no map twice, and a rerun finishes a stopped rewrite;
- a shot stopped before its end has no final range logged: a rerun resumes it in its
  provisional range (its span of levels gathered again from its maps, read back one at a
  time) and rewrites it at its end;
- once every map is rewritten the log says so (`ShotLog.rewritten`): its `lo`, `hi` are
  then the final range. Between the two, `lo`, `hi` are still the provisional range and
  the maps a mix of the two ranges, each saying which.

A fit (`prodepth video` without `--fast`) writes a `shots.json` of the same layout once its
maps are written (`write_fit_shots`): each shot's first frame and the range of its maps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from prodepth_cli.errors import OptionError
from prodepth_cli.io.write import DepthArray, atomic_output
from prodepth_cli.video.outputs import CLIP_PERCENTILES

SHOTS_NAME = "shots.json"
_KIND = "prodepth video --fast"
FIT_KIND = "prodepth video"  # the `kind` of a fit's shots.json
# A shot's provisional 16-bit range: its first map's 1st-99th percentiles, widened by half
# their distance on each side (room for the shot to come nearer or recede; beyond it,
# clipped).
RANGE_PERCENTILES = (1.0, 99.0)
RANGE_MARGIN = 0.5
LEVELS = 65536  # of a 16-bit map


def shot_range(disparity: np.ndarray) -> tuple[float, float]:
    """`(lo, hi)`: the disparity a shot's 16-bit maps write as 0 and 65535 while the shot
    streams, fixed from the shot's first map `(H, W)` (the frames to come are not known
    yet)."""
    p_lo, p_hi = (float(v) for v in np.percentile(disparity, RANGE_PERCENTILES))
    width = max(p_hi - p_lo, 1e-6 * max(abs(p_hi), 1.0))  # a flat map still gets a range
    return p_lo - RANGE_MARGIN * width, p_hi + RANGE_MARGIN * width


class LevelSpan:
    """The final range of a shot, gathered as its maps are written: the smallest span of
    16-bit levels of its provisional range `[lo, hi]` that holds every map's own range, the
    map's 0.5th-99.5th percentiles (`outputs.CLIP_PERCENTILES`). Two numbers, however long
    the shot. Counted on the levels as a 16-bit PNG stores them, a map read back from its
    PNG adds exactly what it added when it was written (a resumed shot gets the same range).

    Why this range: `prodepth depth` maps a photograph's own range (its minimum and maximum)
    to 0..65535, nothing clipped. A shot's maps share one range (else they would flicker),
    so it is the smallest one that holds each frame's own, robustly (a map's extremes are a
    few pixels; 0.5 % at each end is what the fit's one range a clip leaves out): no frame
    loses more than 0.5 % of its pixels at either end. On kitti_odom_seqA the shot's maps
    then use levels 0.023-0.823 (1st-99th percentiles) where the provisional range left
    them at 0.243-0.663. Percentiles of the shot's pixels taken together would stretch them
    further (0.006-0.946) but clip 8.7 % of the first frame, its near road, which the
    alignment holds nearer than the rest of the shot.
    """

    def __init__(self, lo: float, hi: float):
        self.lo, self.hi = lo, hi
        self.low, self.high = LEVELS, -1  # the span so far (none)

    def add(self, disparity: np.ndarray) -> None:
        """Take in an `(H, W)` map (disparity, at the maps' size) as a 16-bit PNG writes it."""
        raw = DepthArray(disparity, range=(self.lo, self.hi))
        levels = raw.levels(LEVELS - 1, np.uint16)(raw.array)
        cumulative = np.cumsum(np.bincount(levels.ravel(), minlength=LEVELS))
        ranks = np.asarray(CLIP_PERCENTILES) / 100 * (cumulative[-1] - 1)  # 0-based
        low, high = (int(v) for v in np.searchsorted(cumulative, ranks, side="right"))
        self.low, self.high = min(self.low, low), max(self.high, high)

    def final_range(self) -> tuple[float, float]:
        """`(lo, hi)` for the shot's maps once it is over (see the class); the provisional
        range when no map was added or the shot is flat (no two levels apart)."""
        if self.high <= self.low:
            return self.lo, self.hi
        step = (self.hi - self.lo) / (LEVELS - 1)
        return self.lo + self.low * step, self.lo + self.high * step


@dataclass(frozen=True)
class Shot:
    """A shot from frame `first` (index) on: the provisional range `[lo, hi]` (disparity)
    its maps are written in as they stream, the median and 10th-90th percentile width of
    its first map at the flow size (what `stabilise.Alignment` holds the shot to), and,
    once the shot is over, its `final` range and whether every map is `rewritten` in it."""

    first: int
    lo: float
    hi: float
    centre: float
    spread: float
    final: tuple[float, float] | None = None
    rewritten: bool = False

    @property
    def record(self) -> dict:
        """The shot as `shots.json` lists it: `lo`, `hi` the range its maps are in (the
        final range once they are all rewritten), the two ranges beside."""
        lo, hi = self.final if self.rewritten and self.final else (self.lo, self.hi)
        return {
            "first": self.first,
            "lo": lo,
            "hi": hi,
            "centre": self.centre,
            "spread": self.spread,
            "provisional": [self.lo, self.hi],
            "final": list(self.final) if self.final else None,
            "rewritten": self.rewritten,
        }

    @classmethod
    def of_record(cls, record: dict) -> Shot:
        """The shot of a `record`; a log from before shots had a final range lists the
        provisional one as `lo`, `hi`."""
        lo, hi = (float(v) for v in record.get("provisional", (record["lo"], record["hi"])))
        final = record.get("final")
        return cls(
            int(record["first"]),
            lo,
            hi,
            float(record["centre"]),
            float(record["spread"]),
            (float(final[0]), float(final[1])) if final else None,
            bool(record.get("rewritten", False)),
        )


@dataclass
class ShotLog:
    """`shots.json`: what the run was (model, map format, frame count) and its shots so
    far, rewritten atomically as each shot starts (before its first map is written), as it
    ends (its final range, before its maps are rewritten) and once its maps are rewritten."""

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
            if isinstance(saved, dict) and saved.get("kind") == FIT_KIND:
                raise OptionError(
                    f"{folder}: holds the maps of a fit (prodepth video without --fast); "
                    "choose another folder or remove them"
                )
            shots = [Shot.of_record(s) for s in saved["shots"]]
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
            "shots": [s.record for s in self.shots],
        }
        with atomic_output(self.path) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")

    def end(self, first: int, final: tuple[float, float]) -> Shot:
        """Record the `final` range of the shot from frame `first`, before any of its maps
        is rewritten in it; the shot as logged now."""
        shot = replace(self.starting_at(first), final=final, rewritten=False)
        self.start(shot)
        return shot

    def rewritten(self, first: int) -> None:
        """Record that every map of the shot from frame `first` is in its final range."""
        self.start(replace(self.starting_at(first), rewritten=True))


def write_fit_shots(
    folder: Path,
    fmt: str,
    frames: int,
    starts: Sequence[int],
    ranges: Sequence[tuple[float, float]],
) -> Path:
    """`folder/shots.json` of a fit of `frames` frames written as `fmt`: the shots starting
    at `starts`, each with the range `(lo, hi)` of `ranges` its 16-bit maps are in, as a
    `--fast` run lists its shots (`kind`, `format`, `frames`, and `first`, `lo`, `hi` a
    shot), so that one reader turns either's levels back into disparity. Written whole,
    atomically, after the maps; its path."""
    record = {
        "kind": FIT_KIND,
        "format": fmt,
        "frames": frames,
        "shots": [
            {"first": int(first), "lo": float(lo), "hi": float(hi)}
            for first, (lo, hi) in zip(starts, ranges, strict=True)
        ],
    }
    path = Path(folder) / SHOTS_NAME
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return path
