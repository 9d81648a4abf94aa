"""learn_prompts: SemPLeS background prompts learned on the current pseudo masks (off unless enabled).

Disabled (the default), the stage writes its status record without importing torch or CLIP:
the learning code is imported only when prompts are learned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger

from tasks.progress import Progress
from tasks.runtime import flow_run_id, in_flow
from wsss.catalog import ArtifactLayout
from wsss.datasets import Manifest, file_sha256, manifest_sha256, safe_join
from wsss.io.atomic import write_json_atomic, write_text_atomic
from wsss.params import Params
from wsss.provenance import stage_attributes
from wsss.stage_inputs import read_manifest
from wsss.stage_result import StageResult
from wsss.stages import stage

if TYPE_CHECKING:
    import torch

DISABLED = {"enabled": False, "reason": "learn_prompts.enabled is false"}


def training_pairs(params: Params, layout: ArtifactLayout, manifest: Manifest) -> Iterator[tuple[torch.Tensor, int, torch.Tensor]]:
    """(pixels, class id, M_k) of every (image, tag) pair, from the pseudo masks or the refined maps."""
    from wsss.imaging import load_rgb
    from wsss.io import CamStore
    from wsss.io.pseudo_store import PseudoMaskStore
    from wsss.prompts.assembly import masks_from_labels, masks_from_refined, square_pixels

    settings, vocabulary = params.learn_prompts, params.vocabulary
    refined = CamStore(layout.refined) if settings.mask_source == "refined" else None
    masks = PseudoMaskStore(layout.pseudo)
    for record in manifest.records:
        tags = [vocabulary.class_id(tag) for tag in record.tags]
        if not tags:
            continue
        pixels = square_pixels(load_rgb(safe_join(params.dataset_root, record.image_path)), settings.image_size)
        if refined is not None:
            stored = refined.read(record.image_id, ["refined"])
            pairs = masks_from_refined(stored.arrays["refined"], [int(i) for i in stored.attrs["class_ids"]], settings.image_size)
        else:
            pairs = masks_from_labels(masks.labels(record.image_id, raw=True), tags, settings.image_size)
        for class_id, mask in pairs:
            yield pixels, class_id, mask


def step_reporter(progress: Progress, total: int) -> Callable[[int, Any], None]:
    """Progress per optimiser step; the loss in a log line every 10 steps."""

    def on_step(step: int, loss: Any) -> None:
        progress.reach(step + 1, total, "trained")
        if step % 10 == 0 and in_flow():
            get_run_logger().info("step %d: L_prompt %.4f (match %.4f, push %.4f)", step, float(loss.total), float(loss.match), float(loss.push))

    return on_step


def run_learn_prompts(params: Params, layout: ArtifactLayout) -> StageResult:
    """Learn one background prompt per class. `details`: the status record (also `status.json`) and
    `report` (the markdown report, None when disabled). Disabled: only the status record."""
    settings = params.learn_prompts
    if not settings.enabled:
        write_json_atomic(layout.learn_prompts_status, DISABLED)
        return StageResult("learn_prompts", written=(str(layout.learn_prompts_status),), details={"status": dict(DISABLED), "report": None})
    # torch and CLIP only from here on (the disabled stage above starts without them)
    from tasks.clip_model import load_stage_clip
    from wsss.prompts.assembly import background_features, learn_background_prompts, prompts_report, training_summary
    from wsss.prompts.learned_file import save_learned_prompts
    from wsss.prompts.learning import total_steps

    manifest = read_manifest(layout)
    clip = load_stage_clip(params)
    features, class_ids = background_features(clip, training_pairs(params, layout, manifest))
    progress = Progress("wsss-learn-prompts-progress", "Background prompt learning steps", "learn_prompts", unit="step")
    steps = total_steps(len(class_ids), settings)
    tensors, record = learn_background_prompts(clip, params.vocabulary, features, class_ids, settings, step_reporter(progress, steps))
    progress.finish(f"{len(class_ids)} (image, tag) pairs")
    summary_file = layout.pseudo.summary
    attributes = stage_attributes(
        "learn_prompts",
        params.sections(*stage("learn_prompts").params),
        manifest_sha256(manifest),
        clip=clip.identity(),
        class_names=list(params.vocabulary.class_names),
        prompt_names=list(params.vocabulary.prompt_names),
        pseudo_summary_sha256=file_sha256(summary_file) if summary_file.is_file() else None,
        flow_run_id=flow_run_id(),
    )
    save_learned_prompts(layout.learned_prompts, tensors, attributes)
    summary = training_summary(record, len(class_ids), params.clip.device)
    report = prompts_report(clip, tensors, list(params.vocabulary.class_names), settings, summary)
    write_text_atomic(layout.learn_prompts_report, report)
    status = {
        "enabled": True,
        **summary,
        "losses": [round(v, 6) for v in record.losses],
        "match": [round(v, 6) for v in record.matches],
        "push": [round(v, 6) for v in record.pushes],
        "clip": clip.identity(),
        "params_sha256": attributes["params_sha256"],
        "flow_run_id": attributes["flow_run_id"],
    }
    write_json_atomic(layout.learn_prompts_status, status)
    written = (layout.learned_prompts, layout.learn_prompts_report, layout.learn_prompts_status)
    return StageResult("learn_prompts", written=tuple(str(p) for p in written), details={"status": status, "report": report})
