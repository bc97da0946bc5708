"""Running ONNX depth models: one onnxruntime session per network, with its spec.

`load_model` resolves a model file (or the shipped default) into a `DepthModel`: the network
run on tiles and the one run for the coarse pass (the same network for plain depth models; a
separate coarse network for PRO refiners). Networks take RGB in [0, 1] and return disparity
(larger = nearer), whatever their own layout, normalisation and output kind.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from prodepth_cli.errors import ModelError, first_line
from prodepth_cli.models import catalog, hub, providers
from prodepth_cli.models.catalog import CatalogModel
from prodepth_cli.models.device_feed import DeviceFeed, takes_pixels
from prodepth_cli.models.spec import DEFAULT_WORKING_SIZE, ModelSpec, preset_for, sidecar_spec

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
MAX_IR_VERSION = 13  # the newest ONNX IR onnxruntime 1.31 reads: graphs we write cap theirs
DEFAULT_MODEL = "prodepth-refiner.onnx"
SHIPPED_NAME = "prodepth"  # `--model prodepth`: the shipped model, whatever is installed
_EPS = 1e-6
_MAX_ASPECT = 4  # the long side of a scaled pass, in working sizes at most


def multiple_hw(h: int, w: int, multiple: int) -> tuple[int, int]:
    """`h` x `w` rounded to the nearest multiples of `multiple` (one at least)."""
    h, w = (max(multiple, round(n / multiple) * multiple) for n in (h, w))
    return h, w


def pass_hw(h: int, w: int, side: int, multiple: int) -> tuple[int, int]:
    """A network input for a whole `h` x `w` image (or a tile) with its short side at `side`,
    in multiples of `multiple`: a network trained on square crops of whole images (ours;
    Depth Anything and MiDaS resize with the short side at their size) saw each scene's short
    side at that size. A panorama's long side stops at `_MAX_ASPECT` sides, so that its one
    pass stays the cost of a few squares."""
    scale = min(side / min(h, w), _MAX_ASPECT * side / max(h, w))
    return multiple_hw(max(1, math.floor(h * scale)), max(1, math.floor(w * scale)), multiple)


@dataclass
class Network:
    """One ONNX network and how to feed it."""

    path: Path
    spec: ModelSpec
    session: ort.InferenceSession
    max_batch: int  # 1 when the graph fixes the batch dimension to 1
    input_dtype: np.dtype
    feed: DeviceFeed | None = None  # on a GPU: tiles go up as raw pixels (`device_feed`)
    accel: providers.Accelerator = providers.ACCELERATORS["cpu"]
    threads: int | None = None
    _fixed: dict[tuple, ort.InferenceSession] = field(default_factory=dict, init=False, repr=False)

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    def input_hw(self, h: int, w: int) -> tuple[int, int]:
        """Network input size for a region of `h` x `w` pixels run at full resolution."""
        if self.spec.size is not None:
            return self.spec.size
        return multiple_hw(h, w, self.spec.multiple)

    def coarse_hw(self, h: int, w: int) -> tuple[int, int]:
        """Network input size for the whole `h` x `w` image at the working resolution."""
        return self._scaled_hw(h, w, self.spec.working_size or DEFAULT_WORKING_SIZE)

    def tile_hw(self, h: int, w: int, native: bool = True) -> tuple[int, int]:
        """Network input size for an `h` x `w` tile: shrunk to the native working size when
        `native` and the spec knows it (a ViT trained at 518 sees a 1024 tile at 518, as its
        authors run it), else full resolution. Refiners always run at full resolution."""
        side = self.spec.working_size
        if not native or side is None or self.spec.is_refiner or min(h, w) <= side:
            return self.input_hw(h, w)
        return self._scaled_hw(h, w, side)

    def _scaled_hw(self, h: int, w: int, side: int) -> tuple[int, int]:
        if self.spec.size is not None:
            return self.spec.size
        return pass_hw(h, w, side, self.spec.multiple)

    def predict(self, rgb: np.ndarray, coarse: np.ndarray | None = None) -> np.ndarray:
        """Disparity for a batch of `(B, h, w, 3)` float32 RGB in [0, 1] already at the
        network's input size (see `run` for `coarse` and what comes back)."""
        return self.run(self.prepare(list(rgb)), coarse)

    def batch_for(
        self, n: int, image: np.ndarray, full_scale: float = 1.0
    ) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and type of the batch `prepare` makes from `n` images like `image` (white at
        `full_scale`): their raw pixels `(n, h, w, 3)` when a device feed takes them, else
        the network's input."""
        h, w = image.shape[:2]
        if self.feed is not None and takes_pixels(image, full_scale):
            return (n, h, w, 3), image.dtype
        shape = (n, 3, h, w) if self.spec.layout == "NCHW" else (n, h, w, 3)
        return shape, self.input_dtype

    def prepare(
        self, images: Sequence[np.ndarray], full_scale: float = 1.0, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Images at the network's input size, each `(h, w[, c])` with white at `full_scale`
        (grey replicated, alpha dropped), -> the network's normalised input batch, written
        once straight into its layout and type (into `out` when given, of `batch_for`):
        this runs on every tile, so the scaling to [0, 1], `pixel_scale`, mean and std are
        one multiply-add per pixel and no copy. OpenCV does it for float32 NCHW (the usual
        case, twice numpy's speed), numpy for the rest. With a device feed, 8- and 16-bit RGB
        stays as it is, copied into one batch: the device normalises it."""
        s = self.spec
        h, w = images[0].shape[:2]
        x = out
        if x is None:
            x = np.empty(*self.batch_for(len(images), images[0], full_scale))
        if self.feed is not None and takes_pixels(images[0], full_scale):
            for b, image in enumerate(images):
                x[b] = image
            return x
        nchw = s.layout == "NCHW"
        by_opencv = nchw and x.dtype == np.float32
        order = (2, 1, 0) if s.color == "BGR" else (0, 1, 2)
        for b, image in enumerate(images):
            pixels = image.reshape(h, w, -1)
            planes = cv2.split(pixels) if by_opencv else np.moveaxis(pixels, 2, 0)
            for c, src in enumerate(order):
                plane = planes[0 if len(planes) < 3 else src]  # grey, or grey + alpha
                gain = s.pixel_scale / (full_scale * s.std[c])
                bias = -s.mean[c] / s.std[c]
                dst = x[b, c] if nchw else x[b, ..., c]
                if by_opencv:
                    cv2.addWeighted(plane, gain, plane, 0.0, bias, dst=dst, dtype=cv2.CV_32F)
                else:
                    np.multiply(plane, gain, out=dst, casting="unsafe")
                    dst += bias
        return x

    def run(self, x: np.ndarray, coarse: np.ndarray | None = None) -> np.ndarray:
        """Disparity for a batch `x` made by `prepare`. coarse: `(B, h, w)` coarse disparity
        in the refiner's normalised frame (refiners only). Returns `(B, h', w')` float32
        disparity at the network's output resolution."""
        outs = []
        pixels = np.issubdtype(x.dtype, np.integer)  # raw, for the device feed (`prepare`)
        for i in range(0, len(x), self.max_batch):
            chunk, c = x[i : i + self.max_batch], None
            if self.spec.coarse_input is not None:
                if coarse is None:
                    raise ModelError(f"{self.path.name}: a refiner needs the coarse depth")
                c = coarse[i : i + self.max_batch, None].astype(self.input_dtype)
            if pixels:
                out = self.feed.infer(chunk, c)
            else:
                feeds = {self.spec.input: chunk}
                if c is not None:
                    feeds[self.spec.coarse_input] = c
                (out,) = self.session_for(feeds).run([self.spec.output], feeds)
            outs.append(_as_maps(np.asarray(out, np.float32), len(chunk)))
        maps = outs[0] if len(outs) == 1 else np.concatenate(outs)
        if self.spec.kind == "depth":
            maps = 1.0 / np.maximum(maps, _EPS)
        return maps

    def session_for(self, feeds: dict[str, np.ndarray]) -> ort.InferenceSession:
        """The session that runs `feeds`: the one session, or on a static-shape provider
        (CoreML) one per input shape, each made with its graph's free dimensions fixed to
        that shape (a run feeds a few: its tile batch, the last batch, the coarse pass)."""
        if not self.accel.static_shapes:
            return self.session
        dims: dict[str, int] = {}
        for graph_input in self.session.get_inputs():
            fed = feeds.get(graph_input.name)
            if fed is None:
                continue
            for dim, size in zip(graph_input.shape, fed.shape, strict=True):
                if isinstance(dim, str) and dims.setdefault(dim, size) != size:
                    return self.session  # one name, two sizes: cannot be fixed by name
        if not dims:
            return self.session  # the graph's shape is fixed already
        key = tuple(sorted(dims.items()))
        if key not in self._fixed:
            self._fixed[key] = _session(self.path, self.accel, self.threads, dims)
        return self._fixed[key]

    def probe(self) -> None:
        """Run one small tile (raises what the provider raises): a provider can create a
        session and still fail on the first run (an op it lacks, a driver too old)."""
        h, w = self.input_hw(64, 64)
        x = self.prepare([np.zeros((h, w, 3), np.float32)])
        coarse = np.zeros((1, h, w), np.float32) if self.spec.coarse_input else None
        self.run(x, coarse)


@dataclass
class DepthModel:
    """What the pipeline runs: `tile_net` on tiles, `coarse_net` on the whole image."""

    name: str
    tile_net: Network
    coarse_net: Network
    notes: list[str] = field(default_factory=list)  # accelerators passed over (auto)

    @property
    def provider(self) -> str:
        return self.tile_net.provider

    @property
    def is_refiner(self) -> bool:
        return self.tile_net.spec.is_refiner

    @property
    def is_shipped(self) -> bool:
        """It is the offline model in models/ (`--model prodepth`), whatever it was named."""
        return self.tile_net.path.resolve() == shipped_model_path()

    @property
    def is_metric(self) -> bool:
        """Its disparity is 1/metres (and float outputs carry metres)."""
        return self.tile_net.spec.is_metric


def default_model_ref() -> str:
    """$PRODEPTH_MODEL (a path or a catalog name), else the best catalog model installed (in
    the catalog's `default_rank` order: Depth Anything V2, then MiDaS), else the shipped
    model in models/, the offline fallback. A plain run never downloads."""
    chosen = os.environ.get("PRODEPTH_MODEL")
    if chosen:
        return chosen
    best = best_installed()
    return best.ref if best is not None else str(shipped_model_path())


def best_installed() -> CatalogModel | None:
    """The catalog model a plain run uses, when one is installed."""
    return next((m for m in catalog.default_candidates() if hub.installed_path(m)), None)


def shipped_model_path() -> Path:
    """The default model that ships in models/ (`--model prodepth`)."""
    return MODELS_DIR / DEFAULT_MODEL


def default_model_path() -> Path:
    """The file the default model resolves to (never downloads)."""
    return resolve_model(default_model_ref(), pull=False)[0]


def resolve_model(
    ref: str | Path, pull: bool = True, progress: hub.ProgressHook | None = None
) -> tuple[Path, CatalogModel | None]:
    """A model file path, a catalog name (`name` or `name:variant`) or `prodepth` (the shipped
    model) -> the file to load and its catalog entry. A catalog model not yet installed is
    pulled on first use (`pull`, reporting to `progress`), as transformers' pipelines do. A
    file that is a pulled catalog model under another name is recognised by its size and
    sha256, so it still gets its catalog spec."""
    if str(ref) == SHIPPED_NAME:
        return shipped_model_path(), None
    path = Path(ref)
    if path.is_file():
        return path, catalog.match_file(path)
    entry = catalog.find(str(ref)) if path.suffix.lower() != ".onnx" else None
    if entry is None:
        hint = (
            " (the default model ships in models/; set --model)"
            if path.parent == MODELS_DIR
            else " or catalog name (see `prodepth models list`)"
        )
        raise ModelError(f"{ref}: no such model file{hint}")
    installed = hub.installed_path(entry)
    if installed is None:
        installed = pull_on_first_use(entry, pull, progress)
    return installed, entry


def pull_on_first_use(
    entry: CatalogModel, allowed: bool = True, progress: hub.ProgressHook | None = None
) -> Path:
    """Download a catalog model a run names but that is not installed. Offline (`allowed`
    false, or HF_HUB_OFFLINE) or when the download fails: one line naming the model and what
    to do instead, before the run writes anything."""
    instead = f"or run the shipped model with --model {SHIPPED_NAME}"
    if not allowed or hub.offline():
        raise ModelError(
            f"{entry.ref}: not installed, and offline; pull it where there is internet "
            f"(`prodepth models pull {entry.ref}`, {catalog.human_bytes(entry.bytes)}) or "
            f"{hub.manual_hint(entry)}, {instead}"
        )
    try:
        return hub.pull(entry, progress)
    except ModelError as exc:
        raise ModelError(f"{exc}; {instead}") from None


def load_model(
    path: str | Path | None = None,
    device: str = "auto",
    threads: int | None = None,
    pull: bool = True,
    progress: hub.ProgressHook | None = None,
    **overrides: Any,
) -> DepthModel:
    """Load a depth model (a file, a catalog name, default: `default_model_ref`) for `device`
    (a `providers.DEVICES` name: auto tries each accelerator there is, then the CPU, and
    says in the model's `notes` which it passed over); a catalog model not yet installed is
    pulled first (`pull`, `progress`: see `resolve_model`).

    `overrides` are spec fields (kind, layout, size, mean, std, ...) that win over what is
    inferred from the graph, presets, the catalog and the JSON spec beside the model.
    `threads` caps onnxruntime's threads (default: one per core), for processes that share
    the machine, such as cluster workers.
    """
    ref = path if path is not None else default_model_ref()
    model_path, entry = resolve_model(ref, pull, progress)
    base = entry.spec if entry is not None else {}
    notes: list[str] = []
    tile_net = load_network(model_path, device, overrides, base, threads, notes)
    coarse_net = tile_net
    if tile_net.spec.coarse_model:
        chosen = tile_net.accel.device  # the coarse network runs where the tiles do
        coarse_net = _coarse_network(model_path, tile_net.spec.coarse_model, chosen, threads)
    name = entry.ref if entry is not None else model_path.name
    return DepthModel(name, tile_net, coarse_net, notes)


def _coarse_network(refiner: Path, coarse_model: str, device: str, threads: int | None) -> Network:
    """A refiner's coarse network: the file its spec names beside it, else the catalog model
    it names (a refiner trained on Depth Anything V2), which must be installed: a refiner
    file is no request to download hundreds of MB, so one line says what to pull."""
    beside = refiner.parent / coarse_model
    if beside.is_file():
        return load_network(beside, device, {}, threads=threads)
    entry = catalog.find(coarse_model)
    if entry is None:
        raise ModelError(
            f"{refiner}: its coarse model {coarse_model} is neither beside it nor a catalog name"
        )
    path = hub.installed_path(entry)
    if path is None:
        raise ModelError(
            f"{refiner}: refines {entry.ref}, which is not installed; run `prodepth models pull "
            f"{entry.ref}` ({catalog.human_bytes(entry.bytes)}, {entry.licence}) first"
        )
    return load_network(path, device, {}, entry.spec, threads)


def load_network(
    path: Path,
    device: str,
    overrides: dict[str, Any],
    catalog_spec: dict[str, Any] | None = None,
    threads: int | None = None,
    notes: list[str] | None = None,
) -> Network:
    """One network, its spec built up from the graph, then a file-name preset, the catalog,
    the JSON beside it and `overrides`, each winning over the one before. It runs on the
    first of `device`'s accelerators (`providers.candidates`) that creates a session and
    runs a probe tile; for auto, each one passed over adds a line to `notes`."""
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    chain = providers.candidates(device)
    failures: list[str] = []
    on_cpu = None  # a CPU session made while an accelerator failed to load
    for accel in chain:
        try:
            net = _network(path, accel, overrides, catalog_spec, threads, on_cpu)
            if accel.device != "cpu":
                net.probe()
        except AcceleratorError as exc:
            if len(chain) == 1 or providers.driver_present(accel.device):
                failures.append(str(exc))
            on_cpu = exc.session
        except Exception as exc:  # onnxruntime's own errors, from a provider that failed
            if accel.device == "cpu":
                raise
            failures.append(f"{accel.title} failed on a probe tile ({first_line(exc)})")
        else:
            if failures and notes is not None:
                notes.append(f"{'; '.join(failures)}: running on the {accel.title}")
            return net
        if len(chain) == 1:
            raise ModelError(f"--device {accel.device}: {failures[-1]}")
    raise AssertionError("the CPU ends every chain")  # pragma: no cover


class AcceleratorError(ModelError):
    """An accelerator listed by onnxruntime that did not load; `session` is the CPU session
    made instead, when one was (reused by the CPU's turn, not loaded twice)."""

    def __init__(self, message: str, session: ort.InferenceSession | None = None):
        super().__init__(message)
        self.session = session


def _network(
    path: Path,
    accel: providers.Accelerator,
    overrides: dict[str, Any],
    catalog_spec: dict[str, Any] | None,
    threads: int | None,
    session: ort.InferenceSession | None = None,
) -> Network:
    if session is None or accel.device != "cpu":
        session = _session(path, accel, threads)
    inferred = infer_spec(path, session)
    try:
        spec = inferred.replace(**preset_for(path)).replace(**(catalog_spec or {}))
        spec = spec.replace(**sidecar_spec(path)).replace(**overrides)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: invalid spec ({exc})") from exc
    names = {i.name for i in session.get_inputs()}
    if spec.input not in names or (spec.coarse_input and spec.coarse_input not in names):
        raise ModelError(f"{path}: spec names inputs the graph does not have ({sorted(names)})")
    if spec.output not in {o.name for o in session.get_outputs()}:
        raise ModelError(f"{path}: spec names output {spec.output!r}, not in the graph")
    image_input = next(i for i in session.get_inputs() if i.name == spec.input)
    dtype = np.float16 if image_input.type == "tensor(float16)" else np.float32
    batch_dim = image_input.shape[0]
    max_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else 64
    net = Network(path, spec, session, max_batch, np.dtype(dtype), accel=accel, threads=threads)
    if accel.io_device is not None:
        net.feed = DeviceFeed(net, accel.io_device)
    return net


def infer_spec(path: Path, session: ort.InferenceSession) -> ModelSpec:
    """A spec read off the graph: which input is the image (4-D, 3 channels), its layout and
    whether its size is fixed; a second 1-channel 4-D input is a refiner's coarse input."""
    image, coarse = None, None
    for inp in session.get_inputs():
        shape = inp.shape
        if "float" not in inp.type or len(shape) != 4:
            continue
        if shape[1] == 3 or shape[3] == 3:
            image = image or inp
        elif shape[1] == 1 or shape[3] == 1:
            coarse = coarse or inp
    if image is None:
        raise ModelError(
            f"{path}: cannot be a depth model: no input is an image "
            "(a 4-D float tensor with 3 channels)"
        )
    outputs = [o for o in session.get_outputs() if len(o.shape) in (3, 4)]
    if not outputs:
        raise ModelError(f"{path}: cannot be a depth model: no output is a 3-D or 4-D map")
    layout = "NCHW" if image.shape[1] == 3 else "NHWC"
    hw = image.shape[2:4] if layout == "NCHW" else image.shape[1:3]
    fixed = all(isinstance(d, int) and d > 0 for d in hw)
    return ModelSpec(
        input=image.name,
        output=outputs[0].name,
        layout=layout,
        size=(int(hw[0]), int(hw[1])) if fixed else None,
        coarse_input=coarse.name if coarse is not None else None,
        align="none" if coarse is not None else "affine",
        name=path.stem,
    )


def _session(
    path: Path,
    accel: providers.Accelerator,
    threads: int | None = None,
    dims: dict[str, int] | None = None,
) -> ort.InferenceSession:
    """An onnxruntime session of `path` on `accel` (the CPU taking what it lacks); `dims`
    fixes the graph's named free dimensions (a static-shape provider's one shape)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    _use_shared_arena(options)
    accel.configure(options)
    if threads:
        options.intra_op_num_threads = threads
    for name, value in (dims or {}).items():
        options.add_free_dimension_override_by_name(name, value)
    shape_key = "_".join(f"{k}{v}" for k, v in sorted((dims or {}).items()))
    chain = accel.providers(path, shape_key)
    try:
        # A provider that cannot load (no CUDA here) would print errors on every start.
        with _quiet_ort_logs(enabled=len(chain) > 1):
            session = ort.InferenceSession(str(path), options, providers=chain)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        if accel.device != "cpu":  # the file, or the accelerator? The CPU tells (ModelError)
            on_cpu = _session(path, providers.ACCELERATORS["cpu"], threads, dims)
            message = f"{accel.title} could not run it ({first_line(exc)})"
            raise AcceleratorError(message, on_cpu) from None
        raise ModelError(f"{path}: not a loadable ONNX model ({first_line(exc)})") from None
    if session.get_providers()[0] != accel.provider:
        raise AcceleratorError(f"{accel.title} did not load ({_why_not(accel)})", session)
    return session


def _why_not(accel: providers.Accelerator) -> str:
    if accel.device in ("cuda", "tensorrt"):
        return "no NVIDIA driver, or the CUDA/cuDNN/TensorRT libraries are missing"
    return f"onnxruntime lists {accel.provider} but could not start it"


def _use_shared_arena(options: ort.SessionOptions) -> None:
    """Host memory from one arena shared by every session, growing only by what is asked
    (not in powers of two), and no memory pattern (one block planned per input shape).
    Without an arena each call's tensors were fresh pages, and their page faults cost
    onnxruntime a third of its time (default model, 21 MP: 19.8 -> 12.9 s); the default
    arena with its pattern took that back but held 1.5 GB more at peak, this one about as
    much as no arena (1834 -> 1957 MB; a one-convolution model at 74 MP: 662 -> 646 MB)."""
    _register_shared_arena()
    options.add_session_config_entry("session.use_env_allocators", "1")
    options.enable_mem_pattern = False


@functools.cache
def _register_shared_arena() -> None:
    """Once per process: onnxruntime's environment keeps the allocator."""
    cpu = ort.OrtMemoryInfo(
        "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
    )
    # max_mem 0: no limit; 1: kSameAsRequested; -1, -1: default chunk sizes
    ort.create_and_register_allocator(cpu, ort.OrtArenaCfg(0, 1, -1, -1))


@contextlib.contextmanager
def _quiet_ort_logs(enabled: bool):
    if not enabled:
        yield
        return
    ort.set_default_logger_severity(4)
    try:
        yield
    finally:
        ort.set_default_logger_severity(3)


def _as_maps(out: np.ndarray, batch: int) -> np.ndarray:
    """Model output `(B, 1, h, w)`, `(B, h, w, 1)` or `(B, h, w)` as `(B, h, w)`."""
    if out.ndim == 4:
        out = out[:, 0] if out.shape[1] == 1 else out[..., 0]
    if out.ndim != 3 or out.shape[0] != batch:
        raise ModelError(f"unexpected model output shape {out.shape}")
    return out
