"""learned_cams: the SemPLeS second pass, CAMs -> CAA -> pseudo masks with the learned background prompts.

The very same `cams`, `refine` and `pseudo` entries run on `layout.learned()` (artifacts/learned);
only a status record is written while `learn_prompts.enabled` is false.
"""

from __future__ import annotations

from typing import Any

from tasks.cams import run_cams
from tasks.pseudo import run_pseudo
from tasks.refine import run_refine
from wsss.catalog import ArtifactLayout
from wsss.datasets import file_sha256
from wsss.incremental import StageReport
from wsss.io.atomic import write_json_atomic
from wsss.params import Params

DISABLED = {"enabled": False, "reason": "learn_prompts.enabled is false"}


def run_learned_pass(params: Params, layout: ArtifactLayout, report: StageReport | None = None) -> dict[str, Any]:
    """Second pass into artifacts/learned/{cams,refined,pseudo}; returns (and writes) its status."""
    if not params.learn_prompts.enabled:
        write_json_atomic(layout.pass_status, DISABLED)
        return dict(DISABLED)
    learned = layout.learned()
    run_cams(params, learned, report)
    run_refine(params, learned)
    pseudo = run_pseudo(params, learned)
    settings = params.learn_prompts
    status = {
        "enabled": True,
        "images": len(pseudo.computed) + len(pseudo.reused),
        "background_mode": settings.background_mode,
        "rescore_weight": settings.lambda_refine if settings.rescore else None,
        "learned_prompts_sha256": file_sha256(layout.learned_prompts),
    }
    write_json_atomic(layout.pass_status, status)
    return status
