"""`prodepth eval`: score a model (and optionally a reference) on the ground-truth scenes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from prodepth_cli.commands.common import (
    DeviceOption,
    JsonOption,
    QuietOption,
    emit_json,
    guarded,
    note,
    progress_bar,
)
from prodepth_cli.commands.model_options import (
    KindOption,
    LayoutOption,
    ModelOption,
    OfflineOption,
    TileResOption,
    check_tile_resolution,
    load_for_run,
    spec_overrides,
)
from prodepth_cli.evaluation import (
    Predictor,
    evaluate,
    mean_scores,
    model_predictor,
    rows_prior_predictor,
)
from prodepth_cli.gt import DEFAULT_GT_DIR, Scene, load_scenes

ROWS_PRIOR = "rows prior"

# (key, header, format): lower AbsRel is better, higher delta1 / rank corr / edge F1 is
# better, seam ratio is best near 1.
COLUMNS = (
    ("absrel", "AbsRel ↓", "{:.3f}"),
    ("delta1", "δ1 ↑", "{:.3f}"),
    ("spearman", "rank corr ↑", "{:.3f}"),
    ("edge_f1", "edge F1 ↑", "{:.3f}"),
    ("seam_ratio", "seam ratio ≈1", "{:.2f}"),
)


@guarded
def eval_command(
    model: ModelOption = None,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="A second model (file or catalog name), scored beside --model."),
    ] = None,
    data: Annotated[
        Path,
        typer.Option("--data", help="Ground-truth folder (middlebury2014_Q, kitti2015, ...)."),
    ] = DEFAULT_GT_DIR,
    tile: Annotated[
        int,
        typer.Option("--tile", help="Tile size in pixels; 512 gives the ~700 px scenes tiles."),
    ] = 512,
    overlap: Annotated[
        int | None,
        typer.Option("--overlap", help="Tile overlap in pixels (default: a quarter tile)."),
    ] = None,
    tile_res: TileResOption = "native",
    kind: KindOption = None,
    layout: LayoutOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    device: DeviceOption = "auto",
    offline: OfflineOption = False,
) -> None:
    """Score depth models on real scenes with ground truth, against the rows-prior baseline.

    Scores: AbsRel, δ1, rank correlation, depth-edge F1, seam ratio (≈1 = seams invisible).
    """
    overrides = spec_overrides(kind, layout)
    scenes = load_scenes(data)
    check_tile_resolution(tile_res)
    predictors = load_predictors(
        model, ref, overrides, device, tile, overlap, quiet, tile_res, offline
    )
    rows = score_all(predictors, scenes, quiet)
    if as_json:
        for row in rows:
            emit_json(json_safe(row))
    else:
        Console(highlight=False).print(scores_table(rows, list(predictors)))


def load_predictors(
    model: str | None,
    ref: str | None,
    overrides: dict[str, str],
    device: str,
    tile: int,
    overlap: int | None,
    quiet: bool,
    tile_resolution: str = "native",
    offline: bool = False,
) -> dict[str, Predictor]:
    """Label -> predictor: --model, then --ref when given, then the rows prior."""
    predictors: dict[str, Predictor] = {}
    for path, extra in ((model, overrides), (ref, {})):
        if path is None and predictors:
            continue  # no --ref
        loaded = load_for_run(path, device, extra, offline, quiet)
        label = unique_label(Path(loaded.name).stem, predictors)
        note(f"{label}: {loaded.provider}", quiet)
        predictors[label] = model_predictor(loaded, tile, overlap, tile_resolution=tile_resolution)
    predictors[ROWS_PRIOR] = rows_prior_predictor
    return predictors


def unique_label(name: str, taken: Iterable[str]) -> str:
    """`name`, or `name (2)` when a model of that name is already in the table."""
    taken = set(taken)
    label, n = name, 1
    while label in taken:
        n += 1
        label = f"{name} ({n})"
    return label


def score_all(
    predictors: dict[str, Predictor], scenes: list[Scene], quiet: bool
) -> list[dict[str, Any]]:
    """Every predictor on every scene: rows of scores with a `model` key, scene-major order."""
    rows = []
    with progress_bar(quiet) as progress:
        task = progress.add_task("scoring", total=len(predictors) * len(scenes))
        for label, predict in predictors.items():
            scored = evaluate(predict, _advancing(scenes, progress, task, label))
            rows += [{"scene": r["scene"], "model": label} | r for r in scored]
    order = {s.name: i for i, s in enumerate(scenes)}
    return sorted(rows, key=lambda r: order[r["scene"]])  # stable: model order kept


def _advancing(scenes: list[Scene], progress: Progress, task: Any, label: str) -> Iterator[Scene]:
    for scene in scenes:
        progress.update(task, description=f"{label}: {scene.name}")
        yield scene
        progress.advance(task)


def json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """NaN scores (edge F1 on sparse ground truth) as null: JSON has no NaN."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def scores_table(rows: list[dict[str, Any]], labels: list[str]) -> Table:
    """A rich table: one section per scene (one line per model), then the per-model means."""
    table = Table(title="Depth accuracy on ground-truth scenes", title_justify="left")
    table.add_column("scene")
    table.add_column("model")
    for _, header, _ in COLUMNS:
        table.add_column(header, justify="right")
    for scene in dict.fromkeys(r["scene"] for r in rows):
        scene_rows = [r for r in rows if r["scene"] == scene]
        for i, row in enumerate(scene_rows):
            table.add_row(scene if i == 0 else "", row["model"], *_cells(row))
        table.add_section()
    for label in labels:
        means = mean_scores([r for r in rows if r["model"] == label])
        table.add_row("mean", label, *_cells(means), style="bold")
    return table


def _cells(scores: dict[str, Any]) -> list[str]:
    out = []
    for key, _, fmt in COLUMNS:
        value = scores.get(key)
        out.append("–" if value is None or math.isnan(value) else fmt.format(value))
    return out
