"""prompts: rank candidate templates by sharpness on the multi-label images; record the selected one
and, next to the scores, what CLIP is asked with it (`vocabulary.json`: every prompt string).

With `prompts.pin` set (the default) the ranking cannot change the selection: it is skipped (no
CLIP, no image read) unless `prompts.rank_when_pinned` asks for the scores, and scores.json says
so. When it ranks, each scoring image's feature (`features/<key>.npy`) and each template's class
prompt embeddings (`text_features/<key>.npy`) are kept under their content keys in the persisted
output, so a run after adding images embeds only the new images and no text: the text side (every
class name under the 81 default templates) took minutes on a CPU at every run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from tasks.clip_model import cam_extractor, check_classes, load_stage_clip
from tasks.progress import Progress, run_logger
from tasks.runtime import log_protocol
from wsss.cam import ClipEsCamExtractor
from wsss.catalog import ArtifactLayout
from wsss.clip import LoadedClip
from wsss.datasets import ImageRecord, safe_join
from wsss.imaging import load_rgb
from wsss.incremental import content_key, key_identity
from wsss.io.atomic import write_json_atomic
from wsss.params import Params
from wsss.prompts import rank_templates
from wsss.prompts.feature_store import FeatureStore
from wsss.stage_code import code_digest
from wsss.stage_inputs import read_manifest
from wsss.stage_result import StageResult
from wsss.stages import stage
from wsss.text import REFERENCE_TEMPLATE, default_candidate_templates
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


def rank_candidates(
    params: Params, layout: ArtifactLayout, clip: LoadedClip, multi: Sequence[ImageRecord], outcomes: dict[str, str]
) -> list[dict[str, Any]]:
    """Sharpness of every candidate template on the scoring images, best first (stored features reused)."""
    settings = params.prompts
    candidates = settings.candidates or default_candidate_templates()
    extractor = cam_extractor(params, clip, params.vocabulary.class_names, (REFERENCE_TEMPLATE,))  # scoring embeds every candidate itself
    images = Progress("wsss-prompts-progress", "Images through CLIP (template scoring)", "prompts")
    images.start(len(multi))
    features = cached_image_features(params, layout, clip, extractor, multi, images, outcomes)
    images.finish()
    texts = Progress("wsss-prompts-text-progress", "Class prompts through CLIP's text tower, per template", "prompts text", unit="template")
    texts.start(len(candidates))
    class_text = cached_text_features(params, layout, clip, extractor, candidates, texts)
    tag_sets = [[extractor.vocabulary.class_id(t) for t in r.tags] for r in multi]
    scored = rank_templates(features, tag_sets, candidates, class_text.__getitem__, extractor.logit_scale, settings.ddof)
    texts.finish(f"{len(candidates)} templates ranked")
    return [
        {"rank": i + 1, "template": s.template, "sharpness": s.sharpness, "num_images": s.num_images, "mean_tag_probability": s.mean_tag_probability}
        for i, s in enumerate(scored)
    ]


def feature_identity(params: Params, clip: LoadedClip) -> dict[str, Any]:
    """What every stored feature of the stage is computed from besides its own input: the stage's
    params (the one key rule: of its own section only `prompts.pooling` counts), the weights and
    the code that computes it (stage table)."""
    return key_identity({"params": params.sections(*stage("prompts").params), "clip": clip.identity(), "code": code_digest("prompts")})


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
    """
    identity = feature_identity(params, clip)
    store = FeatureStore(layout.prompt_features)
    keys = [content_key(identity, sha256=record.sha256) for record in records]
    features = []
    for record, key in zip(records, keys, strict=True):
        stored = store.get(key)
        outcome = "reused"
        if stored is None:
            outcome = "embedded"
            image = extractor.prepare(load_rgb(safe_join(params.dataset_root, record.image_path)))
            stored = extractor.image_features([image], params.prompts.pooling)[0].detach().cpu().numpy()
            store.put(key, stored)
        features.append(torch.from_numpy(stored))
        if outcomes is not None:
            outcomes[record.image_id] = outcome
        if progress is not None:
            progress.tick(1, outcome)
    store.keep_only(keys)
    return torch.stack(features)


def cached_text_features(
    params: Params,
    layout: ArtifactLayout,
    clip: LoadedClip,
    extractor: ClipEsCamExtractor,
    templates: Sequence[str],
    progress: Progress | None = None,
) -> Mapping[str, torch.Tensor]:
    """template -> `(C, E)` normalised class prompt embeddings (`extractor.class_text`), stored by
    content key (the stage identity + the exact prompt strings' inputs: template and class
    names); embeddings of templates no longer scored are deleted. Each template is embedded as
    one batch either way, so a reused embedding equals a fresh one bit for bit."""
    identity = feature_identity(params, clip)
    names = list(extractor.vocabulary.prompt_names)
    store = FeatureStore(layout.prompt_text_features)
    embeddings: dict[str, torch.Tensor] = {}
    keys = []
    for template in templates:
        key = content_key(identity, template=template, prompt_names=names)
        keys.append(key)
        stored = store.get(key)
        outcome = "reused"
        if stored is None:
            outcome = "embedded"
            stored = extractor.class_text(template).detach().cpu().numpy()
            store.put(key, stored)
        embeddings[template] = torch.from_numpy(stored)  # beside the image features (CPU), as rank_templates multiplies them
        if progress is not None:
            progress.tick(1, outcome)
    store.keep_only(keys)
    return embeddings
