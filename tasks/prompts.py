"""prompts: rank candidate templates by sharpness on the multi-label images; record the selected one
and, next to the scores, what CLIP is asked with it (`vocabulary.json`: every prompt string).

Each scoring image's feature is kept under its content key (`features/<key>.npy`, a persisted
output), so a run after adding images embeds only the new ones: without it every dataset change
re-embedded up to `prompts.max_images` images (about as long as `cams` on them).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from prefect import get_run_logger

from tasks.clip_model import cam_extractor, load_stage_clip
from tasks.progress import Progress
from tasks.runtime import in_flow, log_protocol
from wsss.cam import ClipEsCamExtractor
from wsss.catalog import ArtifactLayout
from wsss.clip import LoadedClip
from wsss.datasets import ImageRecord, safe_join
from wsss.imaging import load_rgb
from wsss.incremental import content_key, key_identity
from wsss.io.atomic import is_temporary, write_bytes_atomic, write_json_atomic
from wsss.params import Params
from wsss.prompts import rank_templates
from wsss.stage_code import code_digest
from wsss.stage_inputs import read_manifest
from wsss.stage_result import StageResult
from wsss.stages import stage
from wsss.text import REFERENCE_TEMPLATE, default_candidate_templates
from wsss.text.vocabulary import background_note_lines, background_word_notes, vocabulary_document


def run_prompts(params: Params, layout: ArtifactLayout) -> StageResult:
    """Sharpness of every candidate template; the selection is the pin or the best-ranked one.

    `scores.json` (also the result's `details`) records the params it was made with.
    """
    settings = params.prompts
    log_protocol(params)  # every key the class preset fixes, as this run (and those after it) use them
    manifest = read_manifest(layout)
    clip = load_stage_clip(params)
    extractor = cam_extractor(params, clip, manifest.class_names, (REFERENCE_TEMPLATE,))  # scoring embeds every candidate itself
    multi = [r for r in manifest.records if len(set(r.tags)) >= 2][: settings.max_images]
    candidates = settings.candidates or default_candidate_templates()
    ranking: list[dict[str, Any]] = []
    outcomes: dict[str, str] = {}
    if multi:
        progress = Progress("wsss-prompts-progress", "Images through CLIP (template scoring)", "prompts")
        progress.start(len(multi))
        features = cached_image_features(params, layout, clip, extractor, multi, progress, outcomes)
        tag_sets = [[extractor.vocabulary.class_id(t) for t in r.tags] for r in multi]
        scored = rank_templates(features, tag_sets, candidates, extractor.class_text, extractor.logit_scale, settings.ddof)
        ranking = [
            {"rank": i + 1, "template": s.template, "sharpness": s.sharpness, "num_images": s.num_images,
             "mean_tag_probability": s.mean_tag_probability}
            for i, s in enumerate(scored)
        ]
        progress.finish(f"{len(candidates)} templates ranked")
    best = ranking[0]["template"] if ranking else REFERENCE_TEMPLATE
    scores = {
        "ranking": ranking,
        "num_multi_label_images": len(multi),
        "pooling": settings.pooling,
        "ddof": settings.ddof,
        "best": best,
        "pinned": settings.pin,
        "selected": settings.pin or best,
        "note": "" if multi else "no multi-label images: nothing to score; the pin or the reference template is used",
        "clip": clip.identity(),
        "params": params.sections(*stage("prompts").params),
    }
    write_json_atomic(layout.prompt_scores, scores)
    # The final prompt strings (the selected template applied to every class and background word),
    # with the background words the classes dropped and the near-synonyms kept, each also logged.
    notes = background_word_notes(params.vocabulary, params.classes.background_derived)
    write_json_atomic(layout.vocabulary, vocabulary_document(params.vocabulary, scores["selected"], notes))
    for line in background_note_lines(notes) if in_flow() else ():
        get_run_logger().warning("%s", line)
    return StageResult("prompts", tuple(sorted(i for i, o in outcomes.items() if o == "embedded")),
                       tuple(sorted(i for i, o in outcomes.items() if o == "reused")),
                       written=(str(layout.prompt_scores), str(layout.vocabulary)), details=scores)


def cached_image_features(
    params: Params,
    layout: ArtifactLayout,
    clip: LoadedClip,
    extractor: ClipEsCamExtractor,
    records: Sequence[ImageRecord],
    progress: Progress | None = None,
    outcomes: dict[str, str] | None = None,
) -> torch.Tensor:
    """`(N, E)` features of `records`: stored ones reused by key, the others computed and stored;
    features of images no longer scored are deleted. Each image is embedded alone either way, so
    the values are the same. `outcomes` gets "embedded" or "reused" per image id.

    A feature's key: the stage's params (the one key rule: only `prompts.pooling` of its own
    section counts), the weights and the code that computes it (stage table), the image bytes.
    """
    identity = key_identity({"params": params.sections(*stage("prompts").params), "clip": clip.identity(),
                             "code": code_digest("prompts")})
    folder = layout.prompt_features
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{content_key(identity, sha256=record.sha256)}.npy" for record in records]
    features = []
    for record, name in zip(records, names, strict=True):
        path = folder / name
        stored = _read_feature(path)
        outcome = "reused"
        if stored is None:
            outcome = "embedded"
            image = extractor.prepare(load_rgb(safe_join(params.dataset_root, record.image_path)))
            stored = extractor.image_features([image], params.prompts.pooling)[0].detach().cpu().numpy()
            buffer = io.BytesIO()
            np.save(buffer, stored, allow_pickle=False)
            write_bytes_atomic(path, buffer.getvalue(), durable=False)
        features.append(torch.from_numpy(stored))
        if outcomes is not None:
            outcomes[record.image_id] = outcome
        if progress is not None:
            progress.tick(1, outcome)
    keep = set(names)
    for stale in folder.iterdir():
        if stale.name not in keep or is_temporary(stale):
            stale.unlink(missing_ok=True)
    return torch.stack(features)


def _read_feature(path: Path) -> np.ndarray | None:
    """A stored feature, or None when missing or unreadable (then it is computed again)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
