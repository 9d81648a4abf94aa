"""learned_cams: the SemPLeS second pass, CAMs -> CAA -> pseudo masks with the learned background prompts.

The very same `cams`, `refine` and `pseudo` entries (the stages the table says this one `runs`,
in table order) run on `layout.learned()` (artifacts/learned); only a status record is written
while `learn_prompts.enabled` is false, without importing any of them (or torch).
"""

from __future__ import annotations

from functools import partial

from tasks.progress import Progress, shards_outcome
from tasks.runtime import named_step
from tasks.stage_entries import stage_entry
from wsss.catalog import ArtifactLayout
from wsss.datasets import file_sha256
from wsss.io.atomic import write_json_atomic
from wsss.params import Params
from wsss.stage_result import StageResult
from wsss.stages import stage

DISABLED = {"enabled": False, "reason": "learn_prompts.enabled is false"}
WHAT = {"cams": "CAM extraction", "refine": "CAA refinement", "pseudo": "pseudo masks"}


def run_learned_cams(params: Params, layout: ArtifactLayout) -> StageResult:
    """Second pass into artifacts/learned/{cams,refined,pseudo}; writes its status record (the
    result's `details`).

    Each step is its own Prefect task run and progress artifact ("learned cams", ...), apart from
    the main pass's."""
    if not params.learn_prompts.enabled:
        write_json_atomic(layout.pass_status, DISABLED)
        return StageResult("learned_cams", written=(str(layout.pass_status),), details=dict(DISABLED))
    learned, results = layout.learned(), {}
    for step in stage("learned_cams").runs:
        progress = Progress(f"wsss-learned-{step}-progress", f"Images through {WHAT.get(step, step)} with learned prompts", f"learned {step}")
        results[step] = named_step(f"learned {step}", partial(stage_entry(step), params, learned, progress))
        progress.finish(shards_outcome(results[step]) if "untouched" in results[step].details else "")
    last = results[stage("learned_cams").runs[-1]]
    settings = params.learn_prompts
    status = {
        "enabled": True,
        "images": last.images,
        "background_mode": settings.background_mode,
        "rescore_weight": settings.lambda_refine if settings.rescore else None,
        "learned_prompts_sha256": file_sha256(layout.learned_prompts),
    }
    write_json_atomic(layout.pass_status, status)
    return StageResult(
        "learned_cams",
        last.computed,
        last.reused,
        last.failed,
        last.removed,
        (str(layout.pass_status), *(p for r in results.values() for p in r.written)),
        status,
    )
