"""`prodepth depth`: images, folders, globs or stdin -> depth maps."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from prodepth_cli.batch import STDIO, Job, Outcome, depth_maps_for, plan_jobs, read_stdin
from prodepth_cli.cluster import LOCAL, WORKER_THREADS, ray_map
from prodepth_cli.commands.common import (
    DepthMetresOption,
    DeviceOption,
    GpusPerWorkerOption,
    InputsArgument,
    JsonOption,
    OverwriteOption,
    PreferOption,
    QuietOption,
    RayAddressOption,
    RayOption,
    RecursiveOption,
    WorkersOption,
    fail,
    guarded,
    no_map_outcome,
    note,
    output_option,
    run_batch,
    warn_map_resized,
)
from prodepth_cli.commands.model_options import (
    KindOption,
    LayoutOption,
    MeanOption,
    ModelOption,
    OfflineOption,
    SizeOption,
    StdOption,
    TileResOption,
    check_tile_resolution,
    load_for_run,
    spec_overrides,
    suggest_better_model,
)
from prodepth_cli.errors import ProdepthError
from prodepth_cli.io.depth_map import DepthMapFile
from prodepth_cli.io.write import FORMATS, format_for_output
from prodepth_cli.models.runtime import load_model
from prodepth_cli.pipeline import DepthOptions, TileCallback, depth_file
from prodepth_cli.scene3d import SCENE_FORMATS, SceneOptions, scene_file
from prodepth_cli.scene3d.export import scene_format_for
from prodepth_cli.scene3d.intrinsics import DEFAULT_FOV_DEG
from prodepth_cli.scene3d.mesh import (
    DEFAULT_CUT,
    DEFAULT_MAX_ANGLE,
    MAX_MESH_VERTICES,
    MAX_TEXTURE_SIDE,
)
from prodepth_cli.scene3d.scale import DEPTH_PER_WIDTH, parse_depth_range
from prodepth_cli.tiling.plan import default_overlap, plan_tiles

OutputOption = output_option(
    "Default: `<stem>_depth.<ext>` beside each input.",
)


@guarded
def depth(
    inputs: InputsArgument,
    output: OutputOption = None,
    tile: Annotated[int, typer.Option(help="Tile size in full-resolution pixels.")] = 1024,
    overlap: Annotated[
        int | None,
        typer.Option(
            help="Overlap between neighbouring tiles in pixels (default: tile/4, at most tile/2).",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Tiles per model call.")] = 4,
    tile_res: TileResOption = "native",
    model: ModelOption = None,
    offline: OfflineOption = False,
    kind: KindOption = None,
    layout: LayoutOption = None,
    size: SizeOption = None,
    mean: MeanOption = None,
    std: StdOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="png16 (normalised, near = bright), tiff (float32), pfm, npy, jpeg (the "
            "photograph with the map embedded, as --embed), ply (coloured 3-D points) or glb "
            "(textured 3-D mesh; see docs/point-clouds.md). Default: the output file's suffix "
            "(.png .tif .tiff .pfm .npy .jpg .ply .glb), else png16.",
            show_default=False,
        ),
    ] = None,
    embed: Annotated[
        bool,
        typer.Option(
            help="Write the photograph as `<stem>_depth.jpg` with the map inside, as Google's "
            "depth photos carry it (GDepth XMP), for depth-aware viewers and editors; a JPEG "
            "keeps its pixels, EXIF and ICC byte for byte.",
        ),
    ] = False,
    colormap: Annotated[
        bool, typer.Option(help="Also write an 8-bit colour preview `<stem>_depth_color.png`.")
    ] = False,
    stride: Annotated[
        int | None,
        typer.Option(
            help="ply/glb: keep every N-th pixel in x and y. Default: 1 for points (a PLY is "
            f"written as it is made, memory flat); for a mesh (held whole) the least that keeps "
            f"it under {MAX_MESH_VERTICES // 1_000_000} M vertices, its texture the photograph "
            f"shrunk to {MAX_TEXTURE_SIDE} px on the long side at most.",
            show_default=False,
        ),
    ] = None,
    fov: Annotated[
        float | None,
        typer.Option(
            help="ply/glb: horizontal field of view in degrees, for photographs whose EXIF has "
            "no focal length (and a model that predicts none). Default: "
            f"{DEFAULT_FOV_DEG:g}, with a note.",
            show_default=False,
        ),
    ] = None,
    depth_range: Annotated[
        str | None,
        typer.Option(
            metavar="NEAR,FAR",
            help="ply/glb from a relative model (no metres): put its nearest point at NEAR and "
            "its farthest at FAR (linear in 1/depth), in arbitrary units. Default: from the "
            f"field of view, 1 and 1 + {DEPTH_PER_WIDTH:g} x the width the image's long side "
            "sees at 1 (1,1.5 for a 12 degree telephoto view, 1,3.9 at 60, 1,6 at 90). A "
            "metric model gives metres and ignores it.",
            show_default=False,
        ),
    ] = None,
    cut: Annotated[
        float,
        typer.Option(
            help="glb: drop the mesh's quads whose depths differ by more than this fraction of "
            "the nearest (a depth discontinuity, not a surface).",
        ),
    ] = DEFAULT_CUT,
    max_angle: Annotated[
        float,
        typer.Option(
            help="glb: drop the mesh's triangles seen more edge-on than this, in degrees "
            "between the face's normal and the ray from the camera (sheets stretched along an "
            "edge the model smoothed into a ramp); 90 keeps them.",
        ),
    ] = DEFAULT_MAX_ANGLE,
    depth_map: Annotated[
        Path | None,
        typer.Option(
            "--depth",
            help="ply/glb: make the scene from this depth map instead of running the model "
            "(as `prodepth depth` writes it: 16-bit PNG near = bright, TIFF, PFM, NPY; "
            "relative disparity unless --depth-metres), or a folder of `<stem>_depth.*` maps "
            "for a batch.",
            show_default=False,
        ),
    ] = None,
    depth_metres: DepthMetresOption = False,
    recursive: RecursiveOption = False,
    prefer: PreferOption = "raw",
    overwrite: OverwriteOption = False,
    device: DeviceOption = "auto",
    ray: RayOption = False,
    ray_address: RayAddressOption = LOCAL,
    workers: WorkersOption = 2,
    gpus_per_worker: GpusPerWorkerOption = 0.0,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Depth maps for photographs of any size.

    A coarse pass over the whole image, then overlapping full-resolution tiles anchored to it
    and blended without seams. Output: relative inverse depth, near = bright (the float
    formats of a metric model, such as depth-pro: depth in metres).
    """
    suffixes = FORMATS | SCENE_FORMATS
    if fmt is not None and fmt not in suffixes:
        fail(f"--format {fmt}: choose one of {', '.join(suffixes)}")
    if embed:
        if fmt not in (None, "jpeg"):
            fail(f"--embed writes a JPEG: it contradicts --format {fmt}")
        fmt = "jpeg"
    plan_tiles(tile, tile, tile, overlap)  # rejects nonsense tile/overlap before any work
    scene = SceneOptions(stride, fov, parse_depth_range(depth_range), cut, max_angle)
    jobs, missing = plan_jobs(
        inputs, output, recursive, suffixes[fmt or "png16"], "_depth", prefer.lower()
    )
    if len(jobs) == 1 and jobs[0].output == output and output != STDIO:
        # one output file: its suffix decides
        fmt = scene_format_for(output, fmt) or format_for_output(output, fmt)
    fmt = fmt or "png16"
    if fmt in SCENE_FORMATS and colormap:
        fail(f"--colormap previews depth maps; {fmt} is a 3-D scene")
    maps = depth_maps_for(jobs, depth_map, depth_metres)
    if depth_map is not None:
        _check_map_run(fmt, ray)
        run_batch(
            jobs,
            missing,
            lambda job, bar: _run_map_job(job, fmt, scene, maps.get(job.input), quiet or json_out),
            _summary,
            {},
            overwrite,
            json_out,
            quiet,
        )
        return
    options = DepthOptions(tile, overlap, batch, check_tile_resolution(tile_res))
    overrides = spec_overrides(kind, layout, size, mean, std)
    # here too: bad models fail early, and a catalog model is pulled before any output
    depth_model = load_for_run(model, device, overrides, offline, quiet or json_out)
    suggest_better_model(depth_model, model, quiet or json_out)
    mapper = None
    if ray:
        runner = functools.partial(
            _runner, model, device, overrides, options, fmt, colormap, scene, quiet or json_out
        )
        mapper = ray_map(jobs, runner, ray_address, workers, gpus_per_worker)
    common = {
        "model": depth_model.name,
        "provider": depth_model.provider,
        "tile": tile,
        "overlap": default_overlap(tile) if overlap is None else overlap,
        "tile_res": tile_res,
    }
    run_batch(
        jobs,
        missing,
        lambda job, bar: _run_job(
            job, depth_model, options, fmt, colormap, bar, scene, quiet or json_out
        ),
        _summary,
        common,
        overwrite,
        json_out,
        quiet,
        mapper,
    )


def _runner(
    model: str | None,
    device: str,
    overrides: dict,
    options: DepthOptions,
    fmt: str,
    colormap: bool,
    scene: SceneOptions,
    quiet: bool,
) -> Callable[[Job], Outcome]:
    """The job runner a cluster worker builds once: its own copy of the model (onnxruntime
    on the one CPU Ray gives the worker), no bars."""
    loaded = load_model(model, device, threads=WORKER_THREADS, **overrides)
    return functools.partial(
        _run_job,
        model=loaded,
        options=options,
        fmt=fmt,
        colormap=colormap,
        bar=None,
        scene=scene,
        quiet=quiet,
    )


def _run_job(
    job: Job,
    model,
    options: DepthOptions,
    fmt: str,
    colormap: bool,
    bar: Progress | None,
    scene: SceneOptions = SceneOptions(),
    quiet: bool = False,
) -> Outcome:
    if fmt in SCENE_FORMATS:
        return _run_scene_job(job, model, options, fmt, scene, bar, quiet)
    out = Path(job.output)
    color = out.with_name(f"{out.stem}_color.png") if colormap and job.output != STDIO else None
    try:
        data = read_stdin() if job.input == STDIO else None
        with _tile_progress(bar, job) as (on_start, on_tiles):
            report = depth_file(
                job.input,
                job.output,
                model,
                options,
                fmt,
                color,
                data,
                on_start=on_start,
                on_tiles=on_tiles,
            )
    except ProdepthError as exc:
        return Outcome.failed(job, exc)
    return Outcome(
        job,
        "ok",
        info={
            "width": report.width,
            "height": report.height,
            "tiles": report.tiles,
            "seconds": round(report.seconds, 3),
            "colormap": report.colormap,
            "units": report.units,
            "provider": model.provider,
        },
    )


@contextmanager
def _tile_progress(
    bar: Progress | None, job: Job
) -> Iterator[tuple[Callable[[int], None], TileCallback]]:
    """A task on `bar` counting `job`'s tiles while the context lasts, as the callbacks the
    pipeline takes: (on_start(n_tiles), on_tiles(n_done)). `bar` None (a cluster worker)
    draws nothing."""
    bar = bar or Progress(disable=True)
    tiles = bar.add_task(f"  {Path(job.input).name}", total=None)
    try:
        yield (lambda n: bar.update(tiles, total=n)), (lambda n: bar.advance(tiles, n))
    finally:
        bar.remove_task(tiles)


def _run_scene_job(
    job: Job,
    model,
    options: DepthOptions,
    fmt: str,
    scene: SceneOptions,
    bar: Progress | None,
    quiet: bool,
) -> Outcome:
    """One photograph's point cloud or mesh from the model's depth (scene3d.scene_file)."""
    try:
        data = read_stdin() if job.input == STDIO else None
        with _tile_progress(bar, job) as (on_start, on_tiles):
            report = scene_file(
                job.input,
                job.output,
                fmt,
                model,
                scene,
                options,
                data,
                on_start=on_start,
                on_tiles=on_tiles,
            )
    except ProdepthError as exc:
        return Outcome.failed(job, exc)
    return _scene_outcome(job, report, model.provider, quiet)


def _check_map_run(fmt: str, ray: bool) -> None:
    """One line, before any work, for --depth where it cannot apply."""
    if fmt not in SCENE_FORMATS:
        fail(
            f"--depth makes a point cloud or mesh from a map (-o x.ply, x.glb, or --format "
            f"ply|glb), not a {fmt} depth map"
        )
    if ray:
        fail("--depth runs no model: nothing for --ray to spread")


def _run_map_job(
    job: Job,
    fmt: str,
    scene: SceneOptions,
    depth_map: DepthMapFile | None,
    quiet: bool,
) -> Outcome:
    """One photograph's point cloud or mesh from its --depth map, no model run."""
    if depth_map is None:
        return no_map_outcome(job)
    try:
        data = read_stdin() if job.input == STDIO else None
        report = scene_file(job.input, job.output, fmt, None, scene, data=data, depth_map=depth_map)
    except ProdepthError as exc:
        return Outcome.failed(job, exc)
    warn_map_resized(depth_map.path, report.depth_resized_from, report.width, report.height)
    return _scene_outcome(job, report, None, quiet)


def _scene_outcome(job: Job, report, provider: str | None, quiet: bool) -> Outcome:
    """The outcome of a scene written, with a note where the field of view was assumed."""
    if report.camera.assumed:
        note(
            f"note: {job.input}: no focal length in its EXIF; assumed a "
            f"{report.camera.hfov_deg:g} degree horizontal field of view (--fov)",
            quiet,
        )
    return Outcome(job, "ok", info={**report.fields(), "provider": provider})


def _summary(outcome: Outcome) -> str:
    info = outcome.info
    size = f"{info['width']}x{info['height']}"
    if "tiles" in info:
        return f"{size}, {len(info['tiles'])} tiles, {info['seconds']:.1f} s"
    count = (
        f"{info['points']:,} points"
        if "points" in info
        else f"{info['vertices']:,} vertices, {info['faces']:,} faces"
    )
    return f"{size}, {count}, f = {info['focal_px']:g} px, {info['seconds']:.1f} s"
