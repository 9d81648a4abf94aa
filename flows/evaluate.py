"""evaluate: mIoU / per-class IoU of every artifact with ground truth, plots, overlays."""

from __future__ import annotations

import sys

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.cli import run_stage
from tasks import evaluate as eval_tasks
from tasks.learn_prompts import LEARNED_CAMS, LEARNED_PSEUDO, LEARNED_REFINED
from tasks.common import (
    CAM_STORE, EVALUATION_RUN, METRICS, PLOTS, PSEUDO_DIR, REFINED_STORE, TRAIN_DIR, core_config, dataset_root, flow_run_id,
    load_params, markdown, read_manifest, write_json,
)
from tasks.reporting import link_written_files
from wsss.config import data_settings, evaluate_settings, train_settings
from wsss.datasets import manifest_sha256
from wsss.io import CamStore
from wsss.plots import pipeline_miou_rows
from wsss.provenance import code_version


@flow(name="wsss-evaluate")
def evaluate_flow(params_path: str = "params.yaml") -> dict:
    """mIoU and per-class IoU of every artifact with ground truth; overlays of a fixed sample."""
    params = load_params(params_path)
    config = core_config(params)
    settings = evaluate_settings(params)
    manifest = read_manifest()
    root = dataset_root(params)
    with_gt = [r for r in manifest.records if r.ground_truth_path]
    cams, refined = CamStore(CAM_STORE), CamStore(REFINED_STORE)
    scores = eval_tasks.evaluate_maps(
        with_gt, root, cams, refined, PSEUDO_DIR, config.pseudo, settings.background_alphas, config.vocabulary.num_classes + 1
    )
    if any(LEARNED_REFINED.glob("shard-*.h5")) and (LEARNED_PSEUDO / "raw").is_dir():
        learned = eval_tasks.evaluate_maps(
            with_gt, root, CamStore(LEARNED_CAMS), CamStore(LEARNED_REFINED), LEARNED_PSEUDO, config.pseudo,
            settings.background_alphas, config.vocabulary.num_classes + 1,
        )
        scores = eval_tasks.with_learned_background(scores, learned)
        comparison = eval_tasks.background_comparison_rows(scores)
        if comparison:
            create_table_artifact(comparison, key="wsss-background-prompts", description="mIoU: fixed background words vs learned prompts")
    split = data_settings(params).split
    if (TRAIN_DIR / "model.pth").is_file() and with_gt:
        training = train_settings(params)
        scales = "scales=" + ",".join(f"{s:g}" for s in training.test_scales)
        model = TRAIN_DIR / "model.pth"
        names = config.vocabulary.class_names
        scores[f"model.{scales}.crf=off"] = eval_tasks.evaluate_model(with_gt, root, model, training, names)
        if training.test_crf:
            scores[f"model.{scales}.crf=on"] = eval_tasks.evaluate_model(
                with_gt, root, model, training, names, config.pseudo.crf_params
            )
    document = eval_tasks.metrics_document(split, scores, config.vocabulary.class_names)
    document["num_images_with_ground_truth"] = len(with_gt)
    write_json(METRICS, document)
    rows = eval_tasks.per_class_rows(scores, config.vocabulary.class_names)
    write_json(PLOTS / "per_class_iou.json", rows)
    write_json(PLOTS / "pipeline_miou.json", pipeline_miou_rows(scores))
    overlay_ids = settings.overlay_ids or tuple(r.image_id for r in manifest.records[: settings.max_overlays])
    chosen = [r for r in manifest.records if r.image_id in set(overlay_ids)]
    eval_tasks.write_overlays(chosen, root, refined, PSEUDO_DIR, PLOTS / "overlays", config.vocabulary.class_names, cams)
    table = [{"artifact": k, "miou": round(float(s.mean_iou), 4), "pixels": int(s.num_pixels)} for k, s in scores.items()]
    if table:
        create_table_artifact(table, key="wsss-metrics", description=f"mIoU on {split} ({len(with_gt)} images with GT)")
    markdown("wsss-evaluation-protocol", eval_tasks.protocol_markdown(split, len(with_gt), config.pseudo, settings), "How every number was computed")
    # metrics.json stays numbers only (dvc metrics); who computed them goes next to it for lineage.
    write_json(EVALUATION_RUN, {
        "flow_run_id": flow_run_id(),
        "code_version": code_version(),
        "params": {"evaluate": params.get("evaluate"), "pseudo": params.get("pseudo"), "train": params.get("train")},
        "input_manifest_sha256": manifest_sha256(manifest),
        "model": str(TRAIN_DIR / "model.pth") if (TRAIN_DIR / "model.pth").is_file() else None,
        "scored_images": [r.image_id for r in with_gt],
    })
    link_written_files("wsss-evaluate-files", [METRICS, EVALUATION_RUN, PLOTS / "per_class_iou.json", PLOTS / "pipeline_miou.json"], "Files written by this evaluate run")
    return document


if __name__ == "__main__":
    sys.exit(run_stage({"evaluate": evaluate_flow}))
