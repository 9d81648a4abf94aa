"""train: DeepLabV2 (MMSegmentation) on the pseudo masks with the confidence-guided loss.

The mmseg config file is the recipe; `train.*` keys override single values only when set.
Human corrections (`corrections/`, `wsss.review`) replace the pseudo masks of their images with
confidence 1. Training runs in a scratch work dir keyed by its inputs (corrections included), so
an interrupted run resumes from its last checkpoint (mmengine `resume`) even though DVC empties
the stage output first; the final checkpoint, log and training curves are then copied into the
output, with `model.json` recording what was trained, on what, with which effective recipe.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, TypedDict

from prefect import get_run_logger

from tasks.progress import Progress
from tasks.runtime import flow_run_id, in_flow
from wsss.catalog import ArtifactLayout, PseudoLayout
from wsss.datasets import Manifest, file_sha256, manifest_sha256
from wsss.incremental import content_key, key_identity
from wsss.io.atomic import copy_file_atomic, write_bytes_atomic, write_json_atomic, write_text_atomic
from wsss.io.pseudo_store import PseudoMaskStore
from wsss.io.records import ModelRecord
from wsss.palette import palette_png_bytes, voc_palette
from wsss.params import Params
from wsss.plots import training_curve_rows
from wsss.review.corrections import CorrectionStore, ImageSpec
from wsss.review.training_labels import StagedLabels, stage_training_labels
from wsss.stage_code import code_digest
from wsss.stage_inputs import ground_truth_files, read_manifest
from wsss.stage_result import StageResult
from wsss.stages import stage
from wsss.training import common_image_dir, validation_subset


class TrainingInputs(TypedDict):
    """What the model was trained on: part of the resume key and of `model.json` (`ModelRecord`'s fields)."""

    input_manifest_sha256: str
    pseudo_params: dict[str, Any] | None
    pseudo_flow_run_id: str | None


def staged_labels(manifest: Manifest, layout: ArtifactLayout, work_root: Path) -> StagedLabels:
    """The masks and confidence maps training reads: corrections (confidence 1) over pseudo masks."""
    ids = [r.image_id for r in manifest.records if r.tags]
    specs = {r.image_id: ImageSpec(r.image_id, r.width, r.height, r.sha256) for r in manifest.records}
    labels = stage_training_labels(ids, specs, layout.pseudo.folder(PseudoLayout.MASKS),
                                   layout.pseudo.folder(PseudoLayout.CONFIDENCE), CorrectionStore(layout.corrections),
                                   work_root, len(manifest.class_names) + 1)  # fmt: skip
    for entry in labels.stale if in_flow() else ():  # also listed in model.json
        get_run_logger().warning("correction of %s not used: %s", entry["image_id"], entry["reason"])
    return labels


def validation_data(params: Params, layout: ArtifactLayout, manifest: Manifest, work_dir: Path) -> Any:
    """The val loop's images (training curves): at most `train.val_max_images` of the images with
    ground truth (`wsss.training.validation_subset`), every `train.val_interval` iterations; None
    without ground truth or with `val_max_images: 0`.

    Their label maps are read by the one GT reader (dataset masks and derived COCO masks alike,
    values checked) and written as index PNGs into the work dir, so the val loop scores exactly
    the pixels `evaluate` scores, wherever the ground truth lives.
    """
    from wsss_mmseg.validation import ValidationData

    with_truth = {r.image_id: r for r in manifest.records if r.ground_truth_path}
    scored = [with_truth[i] for i in validation_subset(list(with_truth), params.train.val_max_images)]
    if not scored:
        return None
    folder, _ = common_image_dir(manifest)
    truth, gt_dir = ground_truth_files(params, layout), work_dir / "val-ground-truth"
    for record in scored:
        write_bytes_atomic(gt_dir / f"{record.image_id}.png", palette_png_bytes(truth.read(record, params.vocabulary.num_classes)))
    split = work_dir / "val.txt"
    write_text_atomic(split, "".join(f"{r.image_id}\n" for r in scored))
    return ValidationData(
        image_dir=str((params.dataset_root / folder).resolve()),
        gt_dir=str(gt_dir.resolve()),
        split_file=str(split.resolve()),
        interval=params.train.val_interval,
    )


def write_curves(work_dir: Path, layout: ArtifactLayout) -> list[Path]:
    """Loss, lr and validation mIoU by iteration (mmengine's scalars, every resumed part) as DVC plot files."""
    logs = [path.read_text() for path in sorted(work_dir.glob("*/vis_data/scalars.json"))]
    train_rows, val_rows = training_curve_rows(logs)
    write_json_atomic(layout.train_curve("train"), train_rows)
    if val_rows:
        write_json_atomic(layout.train_curve("val"), val_rows)
    return [layout.train_curve("train"), *([layout.train_curve("val")] if val_rows else [])]


def train_config(
    params: Params,
    layout: ArtifactLayout,
    manifest: Manifest,
    work_dir: Path,
    split_file: Path,
    labels: StagedLabels | None = None,
    validation: Any = None,
) -> Any:
    """The mmengine config of this run: the file's recipe with the set `train.*` keys on top.

    `labels`: the staged masks and confidence maps (corrections over pseudo masks); None = the
    pass's pseudo folders as they are. `validation`: the val loop's data (`validation_data`).
    """
    from wsss_mmseg.training import build_train_config

    settings = params.train
    mask_dir = labels.mask_dir if labels else layout.pseudo.folder(PseudoLayout.MASKS)
    confidence_dir = labels.confidence_dir if labels else layout.pseudo.folder(PseudoLayout.CONFIDENCE)
    folder, suffix = common_image_dir(manifest)
    class_names = ["background", *manifest.class_names]
    return build_train_config(
        Path(settings.config).resolve(),
        work_dir.resolve(),
        data_root=Path.cwd(),
        image_dir=str(params.dataset_root / folder),
        mask_dir=str(mask_dir),
        confidence_dir=str(confidence_dir) if settings.use_confidence else None,
        split_file=str(split_file.resolve()),
        class_names=class_names,
        palette=[list(map(int, c)) for c in voc_palette()[: len(class_names)]],
        img_suffix=suffix,
        init_checkpoint=settings.init_checkpoint,
        resume=True,
        checkpoint_interval=settings.checkpoint_interval,
        num_workers=0,
        validation=validation,
        cfg_options={"model.type": "MultiScaleEncoderDecoder"} if settings.msc_training else None,
        **settings.recipe_overrides(),
    )


def record_images(manifest: Manifest) -> int:
    return sum(1 for r in manifest.records if r.tags)


def resume_key(params: Params, lineage: TrainingInputs, corrections: dict[str, Any]) -> str:
    """The scratch work dir's key: an interrupted run resumes only a run of the same params, code
    (the stage table's training code) and inputs (the one key rule, as every reuse key)."""
    identity = key_identity({"params": params.sections(*stage("train").params), "code": code_digest("train")})
    return content_key(identity, **lineage, **corrections)


def run_train(params: Params, layout: ArtifactLayout) -> StageResult:
    """Train, copy the last checkpoint, log and curves into the output, write `model.json`
    (the result's `details["model"]`)."""
    from wsss_mmseg.recipe import effective_recipe, model_description
    from wsss_mmseg.training import train_segmenter

    manifest = read_manifest(layout)
    summary = PseudoMaskStore(layout.pseudo).read_summary()
    lineage: TrainingInputs = {
        "input_manifest_sha256": manifest_sha256(manifest),
        "pseudo_params": summary.params if summary else None,
        "pseudo_flow_run_id": summary.flow_run_id if summary else None,
    }
    labels = staged_labels(manifest, layout, layout.scratch("train-labels"))
    corrections = {"corrections": labels.digest} if labels.used else {}
    work_dir = layout.scratch(f"train-{resume_key(params, lineage, corrections)[:16]}")
    work_dir.mkdir(parents=True, exist_ok=True)
    split = work_dir / "split.txt"
    write_text_atomic(split, "".join(f"{r.image_id}\n" for r in manifest.records if r.tags))
    validation = validation_data(params, layout, manifest, work_dir)
    cfg = train_config(params, layout, manifest, work_dir, split, labels, validation)
    recipe = effective_recipe(cfg)
    if in_flow():
        with_truth = sum(1 for r in manifest.records if r.ground_truth_path)
        get_run_logger().info(
            "validation during training: %s",
            "none (no image has ground truth, or train.val_max_images is 0)"
            if validation is None
            else f"{len(Path(validation.split_file).read_text().split())} of {with_truth} "
            f"images with ground truth (train.val_max_images) every {cfg.train_cfg.val_interval} iterations "
            "and at the end",
        )
    progress = Progress("wsss-train-progress", "Training iterations", "train", unit="iteration")
    # The first call comes before training: iterations already done there were resumed.
    # mmengine's environment, config and iteration lines go to train.log; the console shows our progress.
    checkpoint = train_segmenter(
        cfg, on_iteration=lambda done, total: progress.reach(done, total, "trained" if progress.started else "resumed"), quiet_console=True
    )
    progress.finish(f"{record_images(manifest)} images")
    copy_file_atomic(checkpoint, layout.model)
    for log in sorted(work_dir.rglob("*.log"))[-1:]:
        copy_file_atomic(log, layout.train_log)
    curves = write_curves(work_dir, layout)
    shutil.rmtree(work_dir, ignore_errors=True)
    record = ModelRecord(
        checkpoint=str(layout.model),
        trained_iterations=recipe["max_iters"],
        num_images=record_images(manifest),
        class_names=["background", *manifest.class_names],
        params=params.section_dict("train"),
        flow_run_id=flow_run_id(),
        recipe=recipe,
        corrections=labels.summary(),
        architecture=model_description(cfg),
        config_sha256=file_sha256(params.train.config),
        init_weights={"path": init, "sha256": file_sha256(init)} if (init := params.train.init_checkpoint) else None,
        **lineage,
    )
    record.write(layout.model_record)
    written = (layout.model, *([layout.train_log] if layout.train_log.is_file() else []), layout.model_record, *curves)
    return StageResult(
        "train", tuple(r.image_id for r in manifest.records if r.tags), written=tuple(str(p) for p in written), details={"model": record.to_dict()}
    )
