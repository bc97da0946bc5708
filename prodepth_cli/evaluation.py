"""Score depth predictors against ground-truth scenes: the library side of `prodepth eval`.

Protocol (it reproduces the reference figures of the rows prior to the third decimal):

- Pixels: those with ground truth (`Scene.valid`: finite Middlebury 2014 / SceneFlow PFM values,
  occluded pixels included; non-zero Middlebury 2005 and KITTI values, so KITTI is sparse)
  where the prediction is finite. No crop, no depth cap. (Keeping only Motorcycle's
  `mask0nocc` non-occluded pixels would give the rows prior delta1 0.502, not the reference
  0.493.)
- Fit: the prediction, read as relative disparity (larger = nearer), is fitted to the
  ground-truth disparity by least-squares scale and shift over those pixels, in disparity
  space, at full ground-truth resolution (`metrics.affine_invariant_scores`).
- AbsRel and delta1 compare 1 / fitted disparity with 1 / ground-truth disparity (depth up to
  the camera's f * B); rank correlation (Spearman, tied values sharing their mean rank) and
  edge F1 (`metrics.edge_f1`) use the raw prediction, being invariant to scale and shift;
  edge F1 is NaN where the ground truth has no edges (sparse KITTI) and left out of means.
- Seam ratio (`metrics.seam_ratio`) is reported only for predictors that say where their
  tiles were, when there were at least two; it needs no ground truth.

The rows prior ("lower rows are nearer") is the baseline a model has to beat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prodepth_cli.gt import Scene
from prodepth_cli.metrics import affine_invariant_scores, edge_f1, seam_ratio

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), end-exclusive pixels

SCORE_KEYS = ("absrel", "delta1", "spearman", "edge_f1", "seam_ratio")


@dataclass(frozen=True)
class Prediction:
    """A predictor's answer when it can say where its tiles were.

    `disparity` is `(H, W)` relative disparity (larger = nearer); `tiles` the boxes it ran.
    """

    disparity: np.ndarray
    tiles: tuple[Box, ...] = ()


Predictor = Callable[[np.ndarray], "np.ndarray | Prediction"]
"""Maps `(H, W, 3)` uint8 RGB to `(H, W)` relative disparity, or to a `Prediction`."""


def rows_prior(h: int, w: int) -> np.ndarray:
    """`(h, w)` float32 disparity that grows linearly with the row: "lower rows are nearer".

    Values run from 1/h (top row) to 1 (bottom row); only the ramp matters after the fit.
    """
    column = np.arange(1, h + 1, dtype=np.float32) / np.float32(h)
    return np.repeat(column[:, None], w, axis=1)


def rows_prior_predictor(rgb: np.ndarray) -> np.ndarray:
    """The rows prior as a `Predictor`: ignores the pixels, uses only the image size."""
    return rows_prior(rgb.shape[0], rgb.shape[1])


def model_predictor(
    model: Any,
    tile: int = 512,
    overlap: int | None = None,
    batch: int = 4,
    tile_resolution: str = "native",
) -> Predictor:
    """A `Predictor` running `prodepth_cli.pipeline.depth_array` with `model`, reporting tiles.

    `model` is a loaded `DepthModel`; `tile`, `overlap`, `batch` and `tile_resolution` are
    the pipeline's (pixels, pixels, tiles per call, native | full).
    """
    from prodepth_cli.pipeline import DepthOptions, depth_array
    from prodepth_cli.tiling.plan import plan_tiles

    options = DepthOptions(tile, overlap, batch, tile_resolution)

    def predict(rgb: np.ndarray) -> Prediction:
        disparity = depth_array(rgb, model, options)
        plan = plan_tiles(rgb.shape[0], rgb.shape[1], tile, overlap)
        boxes = tuple(t.box for t in plan.tiles)
        return Prediction(disparity, boxes)

    return predict


def score_prediction(scene: Scene, prediction: np.ndarray | Prediction) -> dict[str, Any]:
    """Scores of one prediction of `scene`: the `SCORE_KEYS` it has, plus `scene`.

    Raises `ValueError` when the prediction's shape is not the scene's `(H, W)`.
    """
    pred = prediction if isinstance(prediction, Prediction) else Prediction(prediction)
    disp = np.asarray(pred.disparity, dtype=np.float32)
    if disp.shape != scene.valid.shape:
        raise ValueError(
            f"{scene.name}: prediction is {disp.shape}, ground truth {scene.valid.shape}"
        )
    valid = scene.valid & np.isfinite(disp)
    row: dict[str, Any] = {"scene": scene.name}
    row |= affine_invariant_scores(disp, scene.disparity, valid)
    row["edge_f1"] = edge_f1(disp, scene.disparity, valid)
    if len(pred.tiles) > 1:  # one tile has no seam to measure
        row["seam_ratio"] = seam_ratio(disp, list(pred.tiles))
    return row


def evaluate(predict: Predictor, scenes: Iterable[Scene]) -> list[dict[str, Any]]:
    """One row of scores per scene (see `score_prediction`), in the scenes' order."""
    return [score_prediction(scene, predict(scene.rgb)) for scene in scenes]


def mean_scores(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of each score over the rows where it is known (unweighted: one vote per scene)."""
    means = {}
    for key in SCORE_KEYS:
        values = [row[key] for row in rows if np.isfinite(row.get(key, np.nan))]
        if values:
            means[key] = float(np.mean(values))
    return means
