"""The model card (`artifacts/train/MODEL_CARD.md`): what the trained segmenter is, what it learned
from, how it scored, where it came from, and what it cannot be trusted for.

Written by `evaluate`, the stage that knows everything: `train`'s record (`model.json`: recipe,
architecture, initial weights, data, pseudo-mask params, corrections), the CLIP weights the pseudo
masks came from (the CAM store's `clip` attribute), and every score `evaluate` computed. Two DVC
stages cannot write one file, and `train` runs before any score exists, so `train` records its
facts in `model.json` and `evaluate` renders the card from them: `dvc repro` regenerates it whenever
the model or a score changes. What makes the model untrustworthy is said first, in capitals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsss.io.atomic import write_text_atomic
from wsss.io.overlay_inputs import weights_are_random
from wsss.io.records import ModelRecord
from wsss.metrics import SegmentationScores

# Fewer scored images than this make the scores anecdotes, not measurements.
FEW_SCORED_IMAGES = 50


@dataclass(frozen=True)
class ModelCardFacts:
    """Everything the card states; each field comes from one artifact (see the module docstring)."""

    record: ModelRecord
    clip_identity: Mapping[str, Any] | None  # the CAM store's `clip` root attribute
    template: str | None
    dataset: Mapping[str, Any]  # the `data` section
    scores: Mapping[str, SegmentationScores]  # metric key -> scores (evaluate's keys)
    split: str
    scored_images: int
    code_version: Mapping[str, Any]
    params_digest: str  # the flow-run names' params hash
    evaluation_flow_run_id: str | None


def limits(facts: ModelCardFacts) -> list[str]:
    """The warnings a reader must see before any number, loudest first."""
    record, found = facts.record, []
    if facts.clip_identity is None:
        found.append("**CLIP WEIGHTS UNKNOWN**: no CAM store recorded which weights made the pseudo masks.")
    elif weights_are_random(facts.clip_identity):
        found.append(
            f"**RANDOM CLIP WEIGHTS** ({facts.clip_identity.get('weights')}): the pseudo masks this model learned "
            "from are not meaningful, so neither is the model. Set `clip.checkpoint` to real ViT-B/16 weights and "
            "rerun `dvc repro`."
        )
    if record.init_weights is None:
        found.append(
            "**NO IMAGENET INIT**: the backbone started from random weights (`train.init_checkpoint` is null); "
            "the CLIP-ES recipe starts from ImageNet (or COCO) weights."
        )
    recipe = record.recipe
    if str(record.params.get("config", "")).endswith("deeplabv2_tiny_cpu.py"):
        found.append(
            f"**SMOKE-TEST RECIPE**: `deeplabv2_tiny_cpu.py` (ResNet-18, crop {recipe.get('crop_size')}, "
            f"{record.trained_iterations} iterations), not the reference DeepLabV2-R101 recipe."
        )
    if facts.scored_images < FEW_SCORED_IMAGES:
        found.append(f"**SCORED ON {facts.scored_images} IMAGE(S)** with ground truth: the scores below are anecdotes, not a measure of quality.")
    return found


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def _miou(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"  # NaN: no class with ground truth


def render_model_card(facts: ModelCardFacts) -> str:
    """The card as Markdown (deterministic for the same facts)."""
    record, recipe, architecture = facts.record, facts.record.recipe, facts.record.architecture or {}
    backbone, head = architecture.get("backbone", {}), architecture.get("decode_head", {})
    init = record.init_weights
    corrections = record.corrections or {}  # `StagedLabels.summary()`: rows with the image id of each correction
    used = [str(row.get("image_id")) for row in corrections.get("used") or []]
    stale = [str(row.get("image_id")) for row in corrections.get("stale") or []]
    lines = [f"# Model card: DeepLabV2 on CLIP-ES pseudo masks ({len(record.class_names) - 1} classes + background)", ""]
    warnings = limits(facts)
    if warnings:
        lines += ["## Limits (read first)", "", *(f"* {w}" for w in warnings), ""]
    lines += [
        "## What the model is",
        "",
        f"* Checkpoint: `{record.checkpoint}` (plain data, loads weights-only); record `model.json`",
        (
            f"* Recipe: `{record.params.get('config')}` (SHA-256 `{record.config_sha256 or 'not recorded'}`), "
            f"{record.trained_iterations} iterations, batch {recipe.get('batch_size')}, crop {recipe.get('crop_size')}, "
            f"lr {recipe.get('lr')}, seed {recipe.get('seed')}; multi-scale training {record.params.get('msc_training')}"
        ),
        (
            f"* Network: {architecture.get('segmentor', '?')}, backbone {backbone.get('type', '?')}-{backbone.get('depth', '?')} "
            f"(strides {backbone.get('strides')}, dilations {backbone.get('dilations')}, {backbone.get('norm')}), head "
            f"{head.get('type', '?')} (dilations {head.get('dilations')}), loss {head.get('loss')}"
        ),
        "* Initial weights: " + (f"`{init['path']}` (SHA-256 `{init['sha256']}`)" if init else "none (random initialisation)"),
        (
            f"* Input: RGB, normalised with mean {architecture.get('mean')} / std {architecture.get('std')}; "
            "images decoded on their stored pixel grid (EXIF orientation not applied)"
        ),
        f"* Classes (label = index): {', '.join(f'{i} {name}' for i, name in enumerate(record.class_names))}; 255 = ignored",
        "",
        "## What it was trained on",
        "",
        (
            f"* Dataset: kind `{facts.dataset.get('kind')}`, root `{facts.dataset.get('root')}`, split `{facts.dataset.get('split')}`; "
            f"{record.num_images} training images (manifest SHA-256 `{record.input_manifest_sha256}`)"
        ),
        (
            f"* Pseudo masks: CLIP {(facts.clip_identity or {}).get('model', '?')} weights "
            f"`{(facts.clip_identity or {}).get('weights', 'unknown')}`, template `{facts.template}`; pseudo params "
            f"`{record.pseudo_params}`"
        ),
        f"* Human-corrected masks used: {len(used)} ({', '.join(used) or 'none'}); stale (not used): {len(stale)}",
        "",
        f"## Scores (`evaluate`, split `{facts.split}`, {facts.scored_images} image(s) with ground truth)",
        "",
    ]
    model_rows = [(f"`{key}`", _miou(s.mean_iou), f"{s.pixel_accuracy:.4f}") for key, s in facts.scores.items() if key.startswith("model.")]
    other_rows = [(f"`{key}`", _miou(s.mean_iou), f"{s.pixel_accuracy:.4f}") for key, s in facts.scores.items() if not key.startswith("model.")]
    no_scores = ["No image has ground truth: nothing was scored."]
    lines += _table(("variant", "mIoU", "pixel accuracy"), model_rows + other_rows) if facts.scores else no_scores
    lines += [
        "",
        (
            "Model variants: test scales max-fused, with and without dense CRF (`pseudo.crf_params`); the other rows are the "
            "pipeline's maps and pseudo masks on the same images, for comparison."
        ),
        "",
        "## Lineage",
        "",
        (f"* Code: commit `{facts.code_version.get('git_commit')}`{' (with uncommitted changes)' if facts.code_version.get('git_dirty') else ''}"),
        f"* Params hash: `{facts.params_digest}` (as in the flow-run names); train params `{record.params}`",
        f"* Data hash: manifest SHA-256 `{record.input_manifest_sha256}`",
        f"* Flow runs: train `{record.flow_run_id}`, pseudo `{record.pseudo_flow_run_id}`, evaluate `{facts.evaluation_flow_run_id}`",
        "",
        "Use it: `wsss predict`, `wsss export-model --format onnx` (docs/use-the-model.md).",
        "",
    ]
    return "\n".join(lines)


def write_model_card(path: Path, facts: ModelCardFacts) -> Path:
    write_text_atomic(path, render_model_card(facts))
    return path
