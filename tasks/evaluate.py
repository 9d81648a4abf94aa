"""evaluate: the evaluation protocol (`wsss.evaluation`) over the stores, the model, plots and overlays.

This entry only reads artifacts and writes documents; which keys exist and how every number is
computed is the core protocol's. Ground truth is read by the one GT reader
(`wsss.datasets.GroundTruthFiles`: dataset masks and derived COCO masks alike) for every metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from prefect import get_run_logger

from tasks.progress import Progress
from tasks.run_names import params_digest
from tasks.runtime import flow_run_id, in_flow, named_step
from wsss.catalog import ArtifactLayout, PseudoLayout
from wsss.datasets import ImageRecord, manifest_sha256, safe_join
from wsss.devices import torch_device
from wsss.evaluation import protocol
from wsss.evaluation.headline import headline
from wsss.imaging import load_rgb
from wsss.io import CamStore
from wsss.io.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from wsss.io.overlay_inputs import stored_overlay_inputs
from wsss.io.pseudo_store import PseudoMaskStore, png_bytes
from wsss.io.records import EvaluationRun, ModelRecord
from wsss.metrics import SegmentationScores
from wsss.model_card import ModelCardFacts, write_model_card
from wsss.params import Params
from wsss.plots import per_class_iou_rows, pipeline_miou_rows
from wsss.provenance import code_version
from wsss.stage_inputs import ground_truth_files, read_manifest
from wsss.stage_result import StageResult
from wsss.stages import stage
from wsss.viz import overlay_figure


def photo(root: Path, record: ImageRecord) -> np.ndarray:
    """The image's RGB pixels (read only when a CRF variant needs them)."""
    return np.asarray(load_rgb(safe_join(root, record.image_path)))


def score_pass(params: Params, layout: ArtifactLayout, records: Sequence[ImageRecord]) -> dict[str, SegmentationScores]:
    """Every map and mask key of one pass (main or learned) over the images with ground truth."""
    scores = protocol.ProtocolScores(params.vocabulary.num_classes + 1)
    cams, refined, masks = CamStore(layout.cams), CamStore(layout.refined), PseudoMaskStore(layout.pseudo)
    truth = ground_truth_files(params, layout)
    name = "learned" if layout.pass_name else "maps"
    progress = Progress(f"wsss-evaluate-{name}-progress", f"Images scored ({name}: CAM, CAA, pseudo masks)", f"evaluate {name}")
    progress.start(len(records))
    for record in records:
        maps = refined.read(record.image_id, ["refined"], keep_dtype=True)
        protocol.score_image(
            scores,
            protocol.ImageMaps(
                ground_truth=truth.read(record, params.vocabulary.num_classes),
                gradcam=cams.read(record.image_id, ["gradcam"]).arrays["gradcam"],
                refined=maps.arrays["refined"],
                class_ids=np.asarray(maps.attrs["class_ids"], dtype=np.int64),
                stage_raw_labels=masks.labels(record.image_id, raw=True),
                stage_labels=masks.labels(record.image_id),
                rgb=partial(photo, params.dataset_root, record),
            ),
            params.pseudo,
            params.evaluate.background_alphas,
        )
        progress.tick(1, "scored")
    progress.finish()
    return scores.scores()


def score_model(params: Params, layout: ArtifactLayout, records: Sequence[ImageRecord]) -> dict[str, SegmentationScores]:
    """The trained segmenter (max-fused test scales, with and without CRF) on the images with ground truth,
    scored on exactly the pixels the maps are (the same GT reader). One forward per image gives
    every variant (`score_segmenter_variants`): `crf=on` post-processes the logits `crf=off` scores.

    The last validation during training is not reused: it scores a subset (`train.val_max_images`)
    at scale 1 without CRF through mmseg's own predict path, while evaluate scores every image with
    ground truth at `train.test_scales` (and with CRF), through the one prediction path of `wsss predict`.
    """
    from wsss_mmseg.training import score_segmenter_variants

    truth, num_classes = ground_truth_files(params, layout), params.vocabulary.num_classes
    samples = [(safe_join(params.dataset_root, r.image_path), partial(truth.read, r, num_classes)) for r in records]
    settings = params.train
    torch_device(settings.device, "train.device")  # a device this machine lacks: one line naming the key, before loading
    variants = protocol.model_keys(settings.test_scales, settings.test_crf)
    words = " and ".join(f"crf={'on' if with_crf else 'off'}" for _, with_crf in variants)
    progress = Progress("wsss-evaluate-model-progress", f"Images scored by the trained model ({words})", "evaluate model")
    progress.start(len(samples))
    scored = named_step(
        "evaluate model",
        partial(
            score_segmenter_variants,
            Path(settings.config).resolve(),
            layout.model,
            samples,
            class_names=["background", *params.vocabulary.class_names],
            scales=settings.test_scales,
            device=settings.device,
            crfs=[params.pseudo.crf_params if with_crf else None for _, with_crf in variants],
            on_image=lambda _path: progress.tick(1, "scored"),
        ),
    )
    progress.finish()
    return {key: score for (key, _), score in zip(variants, scored, strict=True)}


def write_overlays(params: Params, layout: ArtifactLayout, records: Sequence[ImageRecord]) -> list[Path]:
    """Image | refined map per tag (with its probability) | pseudo mask | GT, with a class legend;
    one PNG per chosen image (`wsss.viz.overlay_figure`)."""
    refined, masks, truth = CamStore(layout.refined), PseudoMaskStore(layout.pseudo), ground_truth_files(params, layout)
    cams = CamStore(layout.cams) if layout.cams.is_dir() else None
    written, progress = [], Progress("wsss-evaluate-overlays-progress", "Overlays drawn", "evaluate overlays")
    progress.start(len(records))
    for record in records:
        rgb = np.asarray(load_rgb(safe_join(params.dataset_root, record.image_path)))
        inputs = stored_overlay_inputs(
            record.image_id,
            rgb,
            refined,
            params.vocabulary.class_names,
            cams=cams,
            pseudo_labels=masks.labels(record.image_id) if masks.has_mask(record.image_id) else None,
            ground_truth=truth.read(record, params.vocabulary.num_classes) if record.ground_truth_path else None,
        )
        path = layout.overlays / f"{record.image_id}.png"
        write_bytes_atomic(path, png_bytes(overlay_figure(inputs)))
        written.append(path)
        progress.tick(1, "drawn")
    progress.finish()
    return written


def write_card(params: Params, layout: ArtifactLayout, scores: dict[str, SegmentationScores], scored_images: int) -> Path:
    """The model card from train's record, the CLIP weights of the CAM store and every score."""
    record = ModelRecord.read(layout.model_record)
    if record is None:  # evaluate scored the maps only; the card says so rather than describe an older model
        write_text_atomic(layout.model_card, f"# Model card\n\nNo trained model: {layout.model_record} is missing (run the train stage).\n")
        return layout.model_card
    cams = CamStore(layout.cams) if layout.cams.is_dir() else None
    root = cams.root_attrs(cams.shards[0]) if cams and cams.shards else {}
    facts = ModelCardFacts(
        record=record,
        clip_identity=root.get("clip"),
        template=root.get("template"),
        dataset=params.section_dict("data"),
        scores=scores,
        split=params.data.split,
        scored_images=scored_images,
        code_version=code_version(),
        params_digest=params_digest(params),
        evaluation_flow_run_id=flow_run_id(),
    )
    return write_model_card(layout.model_card, facts)


def run_evaluate(params: Params, layout: ArtifactLayout) -> StageResult:
    """metrics.json, plot rows (per-class IoU, mIoU along the pipeline), overlays and
    evaluation_run.json (who computed them). `details`: `metrics` (the document), `summary_rows`,
    `comparison_rows` (tables) and `protocol` (how every number was computed, markdown)."""
    manifest = read_manifest(layout)
    with_gt = [r for r in manifest.records if r.ground_truth_path]
    scores = named_step("evaluate maps", partial(score_pass, params, layout, with_gt))
    learned = layout.learned()
    if any(learned.refined.glob("shard-*.h5")) and learned.pseudo.folder(PseudoLayout.RAW).is_dir():
        scores = protocol.with_learned_background(scores, named_step("evaluate learned maps", partial(score_pass, params, learned, with_gt)))
    if layout.model.is_file() and with_gt:
        scores.update(score_model(params, layout, with_gt))
    split = params.data.split
    document = {**protocol.metrics_document(split, scores), "num_images_with_ground_truth": len(with_gt)}
    write_json_atomic(layout.metrics, document)
    write_json_atomic(layout.metrics_headline, headline(document))  # what `dvc metrics show` prints: mIoU per artifact
    write_json_atomic(layout.per_class_iou, per_class_iou_rows(scores, params.vocabulary.class_names))
    write_json_atomic(layout.pipeline_miou, pipeline_miou_rows(scores))
    chosen, not_found = protocol.overlay_choice(params.evaluate, [r.image_id for r in manifest.records])
    if not_found and in_flow():  # also recorded in evaluation_run.json
        get_run_logger().warning(
            "evaluate.overlay_ids: %d id(s) name no image of the manifest, not drawn: %s", len(not_found), ", ".join(not_found[:20])
        )
    overlays = named_step("evaluate overlays", partial(write_overlays, params, layout, [r for r in manifest.records if r.image_id in set(chosen)]))
    card = [write_card(params, layout, scores, len(with_gt))]
    # metrics.json stays numbers only (dvc metrics); who computed them goes next to it for lineage.
    EvaluationRun(
        flow_run_id=flow_run_id(),
        code_version=code_version(),
        params=params.sections(*dict.fromkeys(key.split(".")[0] for key in stage("evaluate").params)),
        input_manifest_sha256=manifest_sha256(manifest),
        model=str(layout.model) if layout.model.is_file() else None,
        scored_images=[r.image_id for r in with_gt],
        overlay_ids_not_found=not_found,
    ).write(layout.evaluation_run)
    written = (layout.metrics, layout.metrics_headline, layout.evaluation_run, layout.per_class_iou, layout.pipeline_miou, *card, *overlays)
    return StageResult(
        "evaluate",
        tuple(r.image_id for r in with_gt),
        written=tuple(str(p) for p in written),
        details={
            "metrics": document,
            "summary_rows": protocol.summary_rows(scores),
            "comparison_rows": protocol.background_comparison_rows(scores),
            "protocol": protocol.protocol_markdown(split, len(with_gt), params.pseudo, params.evaluate),
        },
    )
