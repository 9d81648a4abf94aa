"""evaluate: the evaluation protocol (`wsss.evaluation`) over the stores, the model, plots and overlays.

This entry only reads artifacts and writes documents; which keys exist and how every number is
computed is the core protocol's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tasks.prepare import read_manifest
from tasks.runtime import flow_run_id
from wsss.catalog import ArtifactLayout, PseudoLayout
from wsss.datasets import ImageRecord, manifest_sha256, safe_join
from wsss.evaluation import protocol
from wsss.imaging import load_rgb
from wsss.io import CamStore
from wsss.io.atomic import write_bytes_atomic, write_json_atomic
from wsss.io.pseudo_store import PseudoMaskStore, png_bytes
from wsss.io.records import EvaluationRun
from wsss.metrics import SegmentationScores
from wsss.params import Params
from wsss.provenance import code_version
from wsss.viz import overlay_strip


@dataclass
class Evaluation:
    """What the flow publishes: the metrics document, tables and the protocol text."""

    document: dict[str, Any]
    summary_rows: list[dict[str, Any]]
    comparison_rows: list[dict[str, Any]]
    protocol: str
    written: list[Path] = field(default_factory=list)


def read_ground_truth(root: Path, record: ImageRecord) -> np.ndarray:
    with Image.open(safe_join(root, str(record.ground_truth_path))) as handle:
        return np.asarray(handle, dtype=np.uint8)


def score_pass(params: Params, layout: ArtifactLayout, records: Sequence[ImageRecord]) -> dict[str, SegmentationScores]:
    """Every map and mask key of one pass (main or learned) over the images with ground truth."""
    scores = protocol.ProtocolScores(params.vocabulary.num_classes + 1)
    cams, refined, masks = CamStore(layout.cams), CamStore(layout.refined), PseudoMaskStore(layout.pseudo)
    for record in records:
        maps = refined.read(record.image_id, ["refined"], keep_dtype=True)
        protocol.score_image(scores, protocol.ImageMaps(
            ground_truth=read_ground_truth(params.dataset_root, record),
            gradcam=cams.read(record.image_id, ["gradcam"]).arrays["gradcam"],
            refined=maps.arrays["refined"],
            class_ids=np.asarray(maps.attrs["class_ids"], dtype=np.int64),
            stage_raw_labels=masks.labels(record.image_id, raw=True),
            stage_labels=masks.labels(record.image_id),
            rgb=lambda record=record: np.asarray(load_rgb(safe_join(params.dataset_root, record.image_path))),
        ), params.pseudo, params.evaluate.background_alphas)
    return scores.scores()


def score_model(params: Params, layout: ArtifactLayout, records: Sequence[ImageRecord]) -> dict[str, SegmentationScores]:
    """The trained segmenter (max-fused test scales, with and without CRF) on the images with ground truth."""
    from wsss_mmseg.training import score_segmenter

    folders = {str(Path(str(r.ground_truth_path)).parent) for r in records}
    if len(folders) != 1:
        raise ValueError(f"ground truth must be in one folder, found {sorted(folders)}")
    gt_dir = params.dataset_root / folders.pop()
    image_folder = {str(Path(r.image_path).parent) for r in records}.pop()
    suffix = {Path(r.image_path).suffix for r in records}.pop()
    settings, scores = params.train, {}
    with tempfile.TemporaryDirectory() as scratch:
        split = Path(scratch) / "split.txt"
        split.write_text("".join(f"{r.image_id}\n" for r in records))
        for key, with_crf in protocol.model_keys(settings.test_scales, settings.test_crf):
            scores[key] = score_segmenter(
                Path(settings.config).resolve(), layout.model, image_dir=params.dataset_root / image_folder,
                gt_dir=gt_dir,
                split_file=split, class_names=["background", *params.vocabulary.class_names], img_suffix=suffix,
                scales=settings.test_scales, device=settings.device, crf=params.pseudo.crf_params if with_crf else None,
            )
    return scores


def write_overlays(params: Params, layout: ArtifactLayout, records: Sequence[ImageRecord]) -> list[Path]:
    """Image | refined map per tag | pseudo mask, one PNG per chosen image."""
    refined, masks = CamStore(layout.refined), PseudoMaskStore(layout.pseudo)
    written = []
    for record in records:
        rgb = np.asarray(load_rgb(safe_join(params.dataset_root, record.image_path)))
        maps = refined.read(record.image_id, ["refined"]).arrays["refined"]
        path = layout.overlays / f"{record.image_id}.png"
        write_bytes_atomic(path, png_bytes(overlay_strip(rgb, maps, masks.labels(record.image_id))))
        written.append(path)
    return written


def run_evaluate(params: Params, layout: ArtifactLayout) -> Evaluation:
    """metrics.json, per-class IoU rows, overlays and evaluation_run.json (who computed them)."""
    manifest = read_manifest(layout)
    with_gt = [r for r in manifest.records if r.ground_truth_path]
    scores = score_pass(params, layout, with_gt)
    learned = layout.learned()
    if any(learned.refined.glob("shard-*.h5")) and learned.pseudo.folder(PseudoLayout.RAW).is_dir():
        scores = protocol.with_learned_background(scores, score_pass(params, learned, with_gt))
    if layout.model.is_file() and with_gt:
        scores.update(score_model(params, layout, with_gt))
    split = params.data.split
    document = {**protocol.metrics_document(split, scores), "num_images_with_ground_truth": len(with_gt)}
    write_json_atomic(layout.metrics, document)
    write_json_atomic(layout.per_class_iou, protocol.per_class_rows(scores, params.vocabulary.class_names))
    chosen_ids = set(params.evaluate.overlay_ids or [r.image_id for r in manifest.records[: params.evaluate.max_overlays]])
    overlays = write_overlays(params, layout, [r for r in manifest.records if r.image_id in chosen_ids])
    # metrics.json stays numbers only (dvc metrics); who computed them goes next to it for lineage.
    EvaluationRun(
        flow_run_id=flow_run_id(),
        code_version=code_version(),
        params=params.sections("evaluate", "pseudo", "train"),
        input_manifest_sha256=manifest_sha256(manifest),
        model=str(layout.model) if layout.model.is_file() else None,
        scored_images=[r.image_id for r in with_gt],
    ).write(layout.evaluation_run)
    return Evaluation(
        document, protocol.summary_rows(scores), protocol.background_comparison_rows(scores),
        protocol.protocol_markdown(split, len(with_gt), params.pseudo, params.evaluate),
        [layout.metrics, layout.evaluation_run, layout.per_class_iou, *overlays],
    )
