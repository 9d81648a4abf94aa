"""prompts: rank candidate templates by sharpness on the multi-label images; record the selected one
and, next to the scores, what CLIP is asked with it (`vocabulary.json`: every prompt string).

With `prompts.pin` set (the default) the ranking cannot change the selection: it is skipped (no
CLIP, no image read, and neither torch nor open_clip imported: the ranking lives in
`tasks.prompt_ranking`, imported only to rank) unless `prompts.rank_when_pinned` asks for the
scores, and scores.json says so.
"""

from __future__ import annotations

from typing import Any

from tasks.progress import run_logger
from tasks.runtime import log_protocol
from wsss.catalog import ArtifactLayout
from wsss.io.atomic import write_json_atomic
from wsss.params import Params
from wsss.stage_inputs import check_classes, read_manifest
from wsss.stage_result import StageResult
from wsss.stages import stage
from wsss.text import REFERENCE_TEMPLATE
from wsss.text.vocabulary import background_note_lines, background_word_notes, vocabulary_document


def run_prompts(params: Params, layout: ArtifactLayout) -> StageResult:
    """The selection is the pin or the best-ranked template; the ranking runs only when it can
    matter (`PromptSettings.ranks`). `computed`/`reused`: scoring images embedded or read back.

    `scores.json` (also the result's `details`) records the params it was made with.
    """
    settings = params.prompts
    log_protocol(params)  # every key the class preset fixes, as this run (and those after it) use them
    manifest = read_manifest(layout)
    check_classes(params, manifest.class_names)
    multi = [r for r in manifest.records if len(set(r.tags)) >= 2][: settings.max_images]
    ranking: list[dict[str, Any]] = []
    outcomes: dict[str, str] = {}
    clip_identity = None  # no CLIP is loaded when nothing is ranked
    if not settings.ranks:
        note = settings.skipped_ranking_note()
        run_logger().info("prompts: %s", note)
    else:
        from tasks.clip_model import load_stage_clip
        from tasks.prompt_ranking import rank_candidates

        clip = load_stage_clip(params)
        clip_identity = clip.identity()
        note = "" if multi else "no multi-label images: nothing to score; the pin or the reference template is used"
        if multi:
            ranking = rank_candidates(params, layout, clip, multi, outcomes)
    best = ranking[0]["template"] if ranking else (REFERENCE_TEMPLATE if settings.ranks else None)
    selected: str | None = settings.pin or best
    scores: dict[str, Any] = {
        "ranking": ranking,
        "ranked": bool(ranking),
        "num_multi_label_images": len(multi),
        "pooling": settings.pooling,
        "ddof": settings.ddof,
        "best": best,
        "pinned": settings.pin,
        "selected": selected,
        "note": note,
        "clip": clip_identity,
        "params": params.sections(*stage("prompts").params),
    }
    write_json_atomic(layout.prompt_scores, scores)
    # The final prompt strings (the selected template applied to every class and background word),
    # with the background words the classes dropped and the near-synonyms kept, each also logged.
    notes = background_word_notes(params.vocabulary, params.classes.background_derived)
    write_json_atomic(layout.vocabulary, vocabulary_document(params.vocabulary, selected, notes))
    for line in background_note_lines(notes):
        run_logger().warning("%s", line)
    return StageResult(
        "prompts",
        tuple(sorted(i for i, o in outcomes.items() if o == "embedded")),
        tuple(sorted(i for i, o in outcomes.items() if o == "reused")),
        written=(str(layout.prompt_scores), str(layout.vocabulary)),
        details=scores,
    )
