"""`prodepth video --fast`: the model's own per-frame maps made consistent over time, with no
training. Torch-free: it needs what `prodepth depth` needs, and OpenCV's optical flow.

Frame by frame, as the decoder gives them (only a window is held: the frame before, its
output, the flow between them):
1. the frame's disparity from the model (`depth_array`, tiled as `prodepth depth` tiles);
2. optical flow to and from the frame before (DIS at about 512 px, `flow.py`), with the
   forward-backward consistency check that drops occluded pixels;
3. a scene cut (the colours change and the flow loses the pixels, `cuts.py`) starts a new
   shot: its first map is taken as it is, and fixes the shot's frame of reference and the
   provisional 16-bit range its maps are written in as they stream (`shots.shot_range`);
4. within a shot, the map is scaled and shifted into the shot's first frame's values: half
   by its fit onto the previous *output* brought onto this frame along the flow (consistent
   pixels, outliers trimmed: `stabilise.fit_affine`), half by the affine that gives it the
   first map's median and spread (`stabilise.Alignment`: the fits alone, chained, drift
   when the camera moves forward);
5. a temporal filter along the flow that keeps edges (`stabilise.temporal_filter`): the
   output leans on the previous output, carried forward with its trend, where they agree,
   and is the current map where they do not (motion, occlusion, an edge). The blend is
   computed at the flow size as a correction to the aligned map, so the full-resolution map
   keeps the model's own detail;
6. when the shot is over (a cut, the clip's end), its 16-bit maps are read back one at a
   time and rewritten over the range the shot used (`shots.LevelSpan`, gathered as the
   maps were written), and its preview frames are encoded, over that range, only then.

Resuming: a frame whose map exists is not run again. The first frame run after it needs the
previous output as its reference: the last written map is read back (in the range the
map carries: the provisional one, or the final one once its shot was rewritten), so a rerun
continues the shot where the first run stopped rather than redoing it from the shot's
start. Read back from a 16-bit PNG, pixels beyond the range are clipped: the fit's outlier
trimming leaves them out. A shot stopped before its end is resumed in its provisional range
and rewritten at its end; one stopped while its maps were rewritten has its rewrite
finished (`shots.py` says why neither can convert a map twice). The preview is encoded anew
by each run, from the maps on disk for the frames found written.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.errors import OptionError
from prodepth_cli.io.write import atomic_output
from prodepth_cli.models.runtime import DepthModel
from prodepth_cli.pipeline import DepthOptions, depth_array
from prodepth_cli.video.consistency import jitter, unit_levels
from prodepth_cli.video.cuts import colour_histogram, histogram_distance, is_cut
from prodepth_cli.video.flow import FlowEstimator, FlowPair, flow_size, grey, warp
from prodepth_cli.video.outputs import FRAME_FORMATS, FrameMapWriter, PreviewWriter
from prodepth_cli.video.shots import LevelSpan, Shot, ShotLog, shot_range
from prodepth_cli.video.stabilise import Alignment, MapStatistics, fit_affine, temporal_filter
from prodepth_cli.video.stream import Frame, FrameError, open_frames, stopped

# The temporal filter's trend of the last frame written (`_Run._save_trend`), for a rerun.
TREND_FILE = ".trend.npz"


@dataclass(frozen=True)
class FastOptions:
    """How `--fast` writes: per-frame maps as `fmt` (png16: levels of each shot's final
    range, near = bright; tiff, npy: float32 disparity in the shot's frame of reference),
    and a colour preview video at `preview` when given (over each shot's final range)."""

    fmt: str = "png16"
    preview: str | None = None
    tiling: DepthOptions = DepthOptions()


@dataclass
class ShotReport:
    """One shot of a run: frames `first`..`last` (indices), the provisional range `[lo, hi]`
    its maps are written in as they stream and, once it is over, the `final` range they are
    rewritten in, the wall time of the frames run (and of the rewrite), and the jitter
    (`consistency.jitter`) of its maps and of the model's own maps over the same range
    ("frame by frame": what would be written without the alignment and the filter).

    The jitter is measured as the frames stream, over the provisional range (clipped to it,
    as the PNGs were then), and reported in fractions of the final range's width (times
    `(hi - lo) / (final hi - final lo)`): the units of the maps as they end up, where the
    pixels beyond the final range (1 % of a frame at most) count unclipped."""

    index: int
    first: int
    first_name: str
    lo: float
    hi: float
    reference: MapStatistics  # of its first map, at the flow size (`stabilise.Alignment`)
    last: int = -1
    last_name: str = ""
    seconds: float = 0.0
    resumed: int = 0  # frames whose maps were there already (a rerun)
    final: tuple[float, float] | None = None
    jitters: list[float] = field(default_factory=list)  # over [lo, hi] (see `final_units`)
    raw_jitters: list[float] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return self.last - self.first + 1

    @property
    def range(self) -> tuple[float, float]:
        """The range its maps end in: the final one once the shot is over."""
        return self.final or (self.lo, self.hi)

    def final_units(self, values: list[float]) -> list[float]:
        """Jitters measured over the provisional range, in fractions of the final one."""
        lo, hi = self.range
        return [v * (self.hi - self.lo) / (hi - lo) for v in values]

    @property
    def jitter(self) -> float | None:
        return float(np.mean(self.final_units(self.jitters))) if self.jitters else None

    @property
    def raw_jitter(self) -> float | None:
        return float(np.mean(self.final_units(self.raw_jitters))) if self.raw_jitters else None

    @property
    def record(self) -> dict:
        return {
            "record": "shot",
            "shot": self.index,
            "first": self.first,
            "last": self.last,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "frames": self.frames,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "jitter": _rounded(self.jitter),
            "jitter_frame_by_frame": _rounded(self.raw_jitter),
            "range": list(self.range),
        }


@dataclass
class FastReport:
    """What `fast_video_depth` wrote (the last JSON record of the command)."""

    input: str
    output: str
    model: str
    fmt: str
    fps: float
    width: int = 0
    height: int = 0
    shots: list[ShotReport] = field(default_factory=list)
    seconds: float = 0.0
    model_seconds: float = 0.0  # of `seconds`, in the depth model
    preview: str | None = None

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shots)

    @property
    def resumed(self) -> int:
        return sum(s.resumed for s in self.shots)

    @property
    def record(self) -> dict:
        run = self.frames - self.resumed

        def weighted(values: list[list[float]]) -> float | None:
            flat = [v for shot in values for v in shot]
            return _rounded(float(np.mean(flat))) if flat else None

        return {
            "record": "run",
            "input": self.input,
            "output": self.output,
            "status": "ok",
            "mode": "fast",
            "model": self.model,
            "format": self.fmt,
            "frames": self.frames,
            "resumed": self.resumed,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "shots": len(self.shots),
            "seconds": round(self.seconds, 2),
            "seconds_per_frame": round(self.seconds / run, 3) if run else None,
            "model_seconds_per_frame": round(self.model_seconds / run, 3) if run else None,
            "jitter": weighted([s.final_units(s.jitters) for s in self.shots]),
            "jitter_frame_by_frame": weighted([s.final_units(s.raw_jitters) for s in self.shots]),
            "preview": self.preview,
        }


def fast_video_depth(
    src: str | Path,
    out_dir: str | Path,
    model: DepthModel,
    options: FastOptions = FastOptions(),
    on_start: Callable[[int | None], None] | None = None,
    on_frame: Callable[[], None] | None = None,
    on_shot: Callable[[ShotReport], None] | None = None,
) -> FastReport:
    """Depth for every frame of `src` (video file or folder of frames) from `model`, aligned
    over time, written into `out_dir` as `<frame>.<ext>` at the frames' size, with
    `shots.json` (each shot's first frame and 16-bit range); frames whose map exists are
    skipped (resume). `on_start(frame count or None)`, `on_frame()` after each frame,
    `on_shot(report)` as each shot ends (its maps rewritten in its final range).

    A frame that cannot be decoded (a truncated video, a corrupt image) stops the run with
    an InputError naming it; the maps of the frames before it are written.
    """
    if options.fmt not in FRAME_FORMATS:
        raise OptionError(f"--format {options.fmt}: choose one of {', '.join(FRAME_FORMATS)}")
    start = time.perf_counter()
    stream = open_frames(src)
    out = Path(out_dir)
    report = FastReport(str(src), str(out), model.name, options.fmt, stream.fps)
    if on_start:
        on_start(stream.count)
    with contextlib.ExitStack() as outputs:
        run: _Run | None = None
        try:
            for frame in stream:
                if run is None:
                    run = _Run(frame, stream.count, model, options, out, report, outputs, on_shot)
                run.add(frame)
                if on_frame:
                    on_frame()
        except FrameError as exc:
            raise stopped(exc, "written") from None
        if run is not None:
            run.end_shot()
            run.trend_file.unlink(missing_ok=True)  # the clip is done: nothing to resume
    report.seconds = time.perf_counter() - start
    return report


@dataclass
class _Held:
    """What is kept of the frame before (the window): its index and name, grey frame and
    colour histogram at the flow size, shot and alignment; its output at the flow size in
    values (`out`) and as written (`levels`), the model's own map as it would be written
    (`raw`), the flow from the frame before it, and that frame's `levels`/`raw` (jitter
    needs three frames). `out` is None for a frame found written, until read back."""

    index: int
    name: str
    grey: np.ndarray
    histogram: np.ndarray
    shot: ShotReport
    alignment: Alignment | None = None
    out: np.ndarray | None = None
    levels: np.ndarray | None = None
    raw: np.ndarray | None = None
    pair: FlowPair | None = None  # from the frame before this one (same shot only)
    levels_before: np.ndarray | None = None
    raw_before: np.ndarray | None = None
    trend: np.ndarray | None = None  # the output's change a frame (`temporal_filter`)


class _Run:
    """One pass over a clip's frames: the outputs, opened at the first frame, and the
    window of state that each frame updates, and of the shot streaming, until its final
    range is known, the names of its frames (its maps are read back from disk one at a time
    at its end) and the span of its levels."""

    def __init__(
        self,
        first: Frame,
        count: int | None,
        model: DepthModel,
        options: FastOptions,
        out: Path,
        report: FastReport,
        outputs: contextlib.ExitStack,
        on_shot: Callable[[ShotReport], None] | None,
    ):
        h, w = first.rgb.shape[:2]
        report.width, report.height = w, h
        self.size = (w, h)
        self.small = flow_size(w, h)
        self.model, self.options, self.report, self.on_shot = model, options, report, on_shot
        self.with_shift = not model.is_metric  # metres keep their zero: scale only
        self.clipped = options.fmt == "png16"
        self.writer = FrameMapWriter(out, options.fmt, self.size)
        self.trend_file = out / TREND_FILE
        self.log = ShotLog.open(out, model.name, options.fmt, count, self.writer.path(first.name))
        self.preview = None
        if options.preview:
            path = Path(options.preview)
            self.preview = outputs.enter_context(PreviewWriter(path, report.fps, self.size))
            report.preview = str(path)
        self.flows = FlowEstimator()
        self.held: _Held | None = None
        self.pending: list[str] = []
        self.span: LevelSpan | None = None

    def add(self, frame: Frame) -> None:
        small = cv2.resize(frame.rgb, self.small, interpolation=cv2.INTER_AREA)
        grey_small, histogram = grey(small), colour_histogram(small)
        if self.writer.path(frame.name).exists():
            self._pass_written(frame, grey_small, histogram)
        else:
            self._run_model(frame, grey_small, histogram)

    def end_shot(self) -> float:
        """End the shot of the frame last added (at a cut, and at the clip's end): its final
        range logged, its maps rewritten in it and given to the preview, the log told they
        are, the shot reported. The seconds it took (the shot's own too)."""
        if self.held is None:
            return 0.0
        t0 = time.perf_counter()
        shot = self.held.shot
        if shot.final is None:
            # logged first: a rerun after a stop in the loop below finishes it in this range
            shot.final = self.log.end(shot.first, self.span.final_range()).final
            for name in self.pending:
                self._finish_map(shot, name)
        if not self.log.starting_at(shot.first).rewritten:
            self.log.rewritten(shot.first)
        self.pending, self.span = [], None
        spent = time.perf_counter() - t0
        shot.seconds += spent
        if self.on_shot:
            self.on_shot(shot)
        return spent

    def _new_shot(self, shot: Shot, frame: Frame) -> ShotReport:
        """The report of `shot`, starting at `frame` (the shot before ended)."""
        reference = MapStatistics(shot.centre, shot.spread)
        report = ShotReport(
            len(self.report.shots), shot.first, frame.name, shot.lo, shot.hi, reference
        )
        report.final = shot.final  # a rerun: known when the shot ended before
        if shot.final is None:
            self.span = LevelSpan(shot.lo, shot.hi)
        self.report.shots.append(report)
        return report

    def _kept(self, shot: ShotReport, name: str, values: Callable[[], np.ndarray]) -> None:
        """Frame `name`'s map is on disk; `values()` gives it as written, `(H, W)` disparity.
        Until its shot is over it is taken into the shot's final range (and rewritten at
        the shot's end); once the final range is known (a rerun of an ended shot) it is put
        in that range and given to the preview at once."""
        if shot.final is None:
            self.span.add(values())
            self.pending.append(name)
        else:
            self._finish_map(shot, name)

    def _finish_map(self, shot: ShotReport, name: str) -> None:
        """Frame `name`'s map in its shot's final range (`FrameMapWriter.rewrite`: a map in
        it already is left as it is), then read back for the preview, over that range."""
        self.writer.rewrite(name, *shot.final, (shot.lo, shot.hi))
        if self.preview is not None:
            self.preview.add(self.writer.read(name, shot.lo, shot.hi), *shot.final)

    def _pass_written(self, frame: Frame, grey_small: np.ndarray, histogram: np.ndarray) -> None:
        """A frame whose map a run before this one wrote: kept as the reference, read back
        when its shot is not over yet (taken into the shot's final range), when the next
        frame is run, or when a preview is written."""
        logged = self.log.shot_at(frame.index)
        if logged is None:
            raise OptionError(
                f"{self.log.path} has no shot for frame {frame.index} ({frame.name}), whose map "
                "exists; remove the folder's maps to start over"
            )
        shot = self.held.shot if self.held is not None else None
        if shot is None or logged.first != shot.first:
            self.end_shot()
            shot = self._new_shot(logged, frame)
        shot.resumed += 1
        shot.last, shot.last_name = frame.index, frame.name
        held = self.held = _Held(frame.index, frame.name, grey_small, histogram, shot)
        self._kept(shot, frame.name, lambda: self._read_back(held, full=True))

    def _run_model(self, frame: Frame, grey_small: np.ndarray, histogram: np.ndarray) -> None:
        t0 = time.perf_counter()
        held = self.held
        pair = self.flows.pair(held.grey, grey_small) if held is not None else None
        logged = self.log.starting_at(frame.index)
        cut = held is None or logged is not None
        if not cut:
            change = histogram_distance(held.histogram, histogram)
            cut = is_cut(change, pair.consistent_fraction)
        m0 = time.perf_counter()
        disparity = depth_array(frame.rgb, self.model, self.options.tiling)
        self.report.model_seconds += time.perf_counter() - m0
        raw_small = cv2.resize(disparity, self.small, interpolation=cv2.INTER_AREA)
        statistics = MapStatistics.of(raw_small)
        if cut:
            t0 += self.end_shot()  # the shot before's time
            logged = logged or Shot(frame.index, *shot_range(disparity), *astuple(statistics))
            self.log.start(logged)  # before the map: a rerun must know the shot's range
            shot = self._new_shot(logged, frame)
            alignment = Alignment(shot.reference, self.with_shift)
            full, pair, trend = disparity, None, None
        else:
            shot = held.shot
            # none kept when the frame before was read back (a resume): no bound on its fit
            bound = held.alignment.transform if held.alignment is not None else None
            alignment = held.alignment or Alignment(shot.reference, self.with_shift)
            reference = warp(self._read_back(held), pair.ba)  # the last output, onto this frame
            fit = fit_affine(raw_small, reference, pair.ok_b, self.with_shift, bound)
            transform = alignment.update(fit, statistics)
            aligned = transform(raw_small)
            before = held.trend if held.trend is not None else self._saved_trend(held.name)
            carried = warp(before, pair.ba) if before is not None else None
            correction, trend = temporal_filter(
                aligned, reference, carried, pair.ok_b, shot.hi - shot.lo
            )
            full = transform(disparity) + cv2.resize(
                correction, self.size, interpolation=cv2.INTER_LINEAR
            )
        self.writer.write(frame.name, full, *shot.range)
        self._save_trend(frame.name, trend)
        self._kept(shot, frame.name, lambda: full)
        out = cv2.resize(full, self.small, interpolation=cv2.INTER_AREA)
        levels = unit_levels(out, shot.lo, shot.hi, self.clipped)
        raw = unit_levels(raw_small, shot.lo, shot.hi, self.clipped)
        if pair is not None and held is not None and held.pair is not None:
            self._add_jitter(shot, held, pair, levels, raw)
        shot.last, shot.last_name = frame.index, frame.name
        shot.seconds += time.perf_counter() - t0
        before = held if pair is not None else None
        self.held = _Held(
            frame.index,
            frame.name,
            grey_small,
            histogram,
            shot,
            alignment,
            out,
            levels,
            raw,
            pair,
            before.levels if before is not None else None,
            before.raw if before is not None else None,
            trend,
        )

    @staticmethod
    def _add_jitter(
        shot: ShotReport, held: _Held, pair: FlowPair, levels: np.ndarray, raw: np.ndarray
    ) -> None:
        """The jitter of the frame before (`held`), now that its next frame is known."""
        if held.levels_before is None or held.raw_before is None:
            return  # the frame before that was found written (a resume): no model map
        valid = held.pair.ok_b & pair.ok_a
        flows = (pair.ab, held.pair.ba, valid)
        value = jitter(held.levels_before, held.levels, levels, *flows)
        if value is not None:
            shot.jitters.append(value)
            shot.raw_jitters.append(jitter(held.raw_before, held.raw, raw, *flows))

    def _save_trend(self, name: str, trend: np.ndarray | None) -> None:
        """Keep the trend of frame `name` (the last written) beside the maps, so that a
        rerun resuming after it carries it forward as this run would have."""
        if trend is None:
            self.trend_file.unlink(missing_ok=True)
            return
        with atomic_output(self.trend_file) as tmp, open(tmp, "wb") as f:
            np.savez(f, name=name, trend=trend)

    def _saved_trend(self, name: str) -> np.ndarray | None:
        """The trend a run before this one saved for frame `name`, when it did."""
        try:
            with np.load(self.trend_file) as saved:
                return saved["trend"] if str(saved["name"]) == name else None
        except (OSError, ValueError, KeyError):
            return None

    def _read_back(self, held: _Held, full: bool = False) -> np.ndarray:
        """The output of the frame `held` at the flow size (or at full size with `full`):
        kept when it was run here, else read back from its written map."""
        if held.out is not None and not full:
            return held.out
        values = self.writer.read(held.name, held.shot.lo, held.shot.hi)
        held.out = cv2.resize(values, self.small, interpolation=cv2.INTER_AREA)
        held.levels = unit_levels(held.out, held.shot.lo, held.shot.hi, self.clipped)
        return values if full else held.out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 5)
