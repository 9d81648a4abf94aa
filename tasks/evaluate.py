"""evaluate: mIoU of raw CAMs, refined CAMs and pseudo masks (CRF off/on) wherever GT exists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from prefect import task
from prefect.cache_policies import NONE

from tasks.common import GROUND_TRUTH
from tasks.pseudo import RAW
from wsss.cam import resize_maps
from wsss.config import EvaluateSettings, PseudoSettings, TrainSettings
from wsss.datasets import GroundTruthFiles, ImageRecord, safe_join
from wsss.imaging import load_rgb
from wsss.io import CamStore
from wsss.metrics import ConfusionAccumulator, SegmentationScores
from wsss.pseudo import CrfParams, crf_posterior_for_cams, labels_from_scores, make_pseudo_label, scores_with_background
from wsss.io.overlay_inputs import stored_overlay_inputs
from wsss.plots import per_class_iou_rows
from wsss.viz import overlay_figure


def read_ground_truth(root: Path, record: ImageRecord, num_classes: int) -> np.ndarray:
    """The record's validated label map (the one GT reader; `num_classes` includes background)."""
    return GroundTruthFiles(root, GROUND_TRUTH).read(record, num_classes - 1)


def _argmax_labels(cams: np.ndarray, class_ids: np.ndarray, alpha: float) -> np.ndarray:
    return labels_from_scores(scores_with_background(cams, alpha), class_ids)


@task(cache_policy=NONE)
def evaluate_maps(
    records: Sequence[ImageRecord],
    root: Path,
    cams: CamStore,
    refined: CamStore,
    pseudo_dir: Path,
    pseudo: PseudoSettings,
    alphas: Sequence[float],
    num_classes: int,
) -> dict[str, SegmentationScores]:
    """Scores per evaluated artifact, keyed like `cam_raw.alpha=1` or `pseudo.crf=on`."""
    accumulators: dict[str, ConfusionAccumulator] = {}

    def update(key: str, gt: np.ndarray, prediction: np.ndarray) -> None:
        accumulators.setdefault(key, ConfusionAccumulator(num_classes)).update(gt, prediction)

    stage_crf = "on" if pseudo.crf else "off"
    other_crf = "off" if pseudo.crf else "on"
    for record in records:
        gt = read_ground_truth(root, record, num_classes)
        raw = cams.read(record.image_id, ["gradcam"])
        maps = refined.read(record.image_id, ["refined"], keep_dtype=True)
        ids = np.asarray(maps.attrs["class_ids"], dtype=np.int64)
        height, width = gt.shape
        upsampled = resize_maps(torch.from_numpy(raw.arrays["gradcam"]), (height, width)).numpy()
        refined_maps = maps.arrays["refined"]
        for alpha in alphas:
            update(f"cam_raw.alpha={alpha:g}", gt, _argmax_labels(upsampled, ids, alpha))
            update(f"cam_refined.alpha={alpha:g}", gt, _argmax_labels(refined_maps, ids, alpha))
        with Image.open(pseudo_dir / RAW / f"{record.image_id}.png") as handle:
            stage_labels = np.asarray(handle, dtype=np.uint8)
        update(f"pseudo.crf={stage_crf}", gt, stage_labels)
        posterior = None
        if other_crf == "on" and len(ids):
            rgb = np.asarray(load_rgb(safe_join(root, record.image_path)))
            posterior = crf_posterior_for_cams(
                rgb, refined_maps, params=pseudo.crf_params, reference_image_quirk=pseudo.crf_reference_image_quirk
            )
        other = make_pseudo_label(refined_maps, ids, alpha=pseudo.background_alpha, confidence_threshold=None, posterior=posterior)
        update(f"pseudo.crf={other_crf}", gt, other.raw_labels)
        with Image.open(pseudo_dir / "masks" / f"{record.image_id}.png") as handle:
            confident = np.asarray(handle, dtype=np.uint8)
        kept = confident != pseudo.ignore_index
        update(f"pseudo_confident_pixels.crf={stage_crf}", np.where(kept, gt, 255).astype(np.uint8), confident)
    return {key: accumulator.scores() for key, accumulator in sorted(accumulators.items())}


LEARNED_SUFFIX = ".background=learned"


def with_learned_background(fixed: dict[str, SegmentationScores], learned: dict[str, SegmentationScores]) -> dict[str, SegmentationScores]:
    """Both passes in one mapping: the learned pass's keys get `.background=learned`.

    The unsuffixed keys stay the fixed-background-word (reference) scores, so `dvc metrics show`
    lists e.g. `cam_refined.alpha=1` and `cam_refined.alpha=1.background=learned` side by side.
    """
    return {**fixed, **{key + LEARNED_SUFFIX: score for key, score in learned.items()}}


def background_comparison_rows(scores: dict[str, SegmentationScores]) -> list[dict[str, Any]]:
    """Rows `{artifact, fixed, learned, delta}` (mIoU) for every key scored in both passes."""
    rows = []
    for key, learned in scores.items():
        if not key.endswith(LEARNED_SUFFIX) or key[: -len(LEARNED_SUFFIX)] not in scores:
            continue
        fixed = scores[key[: -len(LEARNED_SUFFIX)]].mean_iou
        rows.append({
            "artifact": key[: -len(LEARNED_SUFFIX)],
            "fixed": round(float(fixed), 4),
            "learned": round(float(learned.mean_iou), 4),
            "delta": round(float(learned.mean_iou - fixed), 4),
        })
    return rows


def metrics_document(split: str, scores: dict[str, SegmentationScores], class_names: Sequence[str]) -> dict[str, Any]:
    """Nested metrics: `<split>.<artifact>.<variant>.miou` etc. for `dvc metrics show`."""
    document: dict[str, Any] = {}
    for key, score in scores.items():
        artifact, variant = key.split(".", 1)
        document.setdefault(artifact, {})[variant] = {
            "miou": None if np.isnan(score.mean_iou) else round(float(score.mean_iou), 6),
            "pixel_accuracy": None if np.isnan(score.pixel_accuracy) else round(float(score.pixel_accuracy), 6),
            "num_pixels": int(score.num_pixels),
        }
    return {split: document}


def per_class_rows(scores: dict[str, SegmentationScores], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Rows `{artifact, step, order, class, class_index, iou}`: one bar series per artifact (`wsss.plots`)."""
    return per_class_iou_rows(scores, class_names)


@task(cache_policy=NONE)
def evaluate_model(
    records: Sequence[ImageRecord],
    root: Path,
    checkpoint: Path,
    settings: TrainSettings,
    class_names: Sequence[str],
    crf: CrfParams | None = None,
) -> SegmentationScores:
    """Scores of the trained segmenter on the images with ground truth (max-fused test scales)."""
    from functools import partial

    from wsss_mmseg.training import score_segmenter_on

    num_classes = len(class_names) + 1
    samples = [
        (safe_join(root, r.image_path), partial(read_ground_truth, root, r, num_classes))
        for r in records if r.ground_truth_path
    ]
    return score_segmenter_on(
        Path(settings.config).resolve(), checkpoint, samples, class_names=["background", *class_names],
        scales=settings.test_scales, device=settings.device, crf=crf,
    )


@task(cache_policy=NONE)
def write_overlays(
    records: Iterable[ImageRecord], root: Path, refined: CamStore, pseudo_dir: Path, output: Path,
    class_names: Sequence[str] = (), cams: CamStore | None = None,
) -> list[Path]:
    """Image | refined map per tag (with its probability) | pseudo mask | GT, with a class legend."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for record in records:
        rgb = np.asarray(load_rgb(safe_join(root, record.image_path)))
        gt = read_ground_truth(root, record) if record.ground_truth_path else None
        inputs = stored_overlay_inputs(
            record.image_id, rgb, refined, class_names, cams=cams,
            pseudo_mask=pseudo_dir / "masks" / f"{record.image_id}.png", ground_truth=gt,
        )
        path = output / f"{record.image_id}.png"
        Image.fromarray(overlay_figure(inputs)).save(path)
        written.append(path)
    return written


def protocol_markdown(split: str, num_images: int, pseudo: PseudoSettings, settings: EvaluateSettings) -> str:
    """The evaluation protocol, stated next to the numbers (CLIP-ES papers are often ambiguous)."""
    crf = pseudo.crf_params
    return f"""# Evaluation protocol

* Split: `{split}`, {num_images} images with ground truth (others are labelled but not scored).
* mIoU: one confusion matrix over all pixels of the split whose ground truth is in `[0, C)`
  (255 ignored); IoU averaged over classes that have ground-truth pixels.
* `cam_raw.alpha=a`: Grad-CAM maps upsampled bilinearly to full size; background `(1 - max)^a`; argmax.
* `cam_refined.alpha=a`: CAA-refined maps (float16 as stored), same rule. Alphas: {list(settings.background_alphas)}.
* `pseudo.crf=on|off`: pseudo labels before the confidence filter (the reference's `--eval_only`);
  CRF: {crf.iterations} iterations, Gaussian sxy={crf.gaussian_sxy} compat={crf.gaussian_compat}, bilateral
  sxy={crf.bilateral_sxy} srgb={crf.bilateral_srgb} compat={crf.bilateral_compat}, reference image quirk
  {"on" if pseudo.crf_reference_image_quirk else "off"}; background alpha {pseudo.background_alpha:g}.
* `pseudo_confident_pixels`: the same labels scored only where confidence >= {pseudo.confidence_threshold}
  (the pixels the trainer learns from).
* No multi-scale, no flip (the reference's CAM stage uses neither).
* `<key>.background=learned` (only when `learn_prompts.enabled`): the same artifact from the second
  pass (`artifacts/learned/`), whose softmax uses the SemPLeS learned per-class background prompts;
  unsuffixed keys use the fixed background words.
"""
