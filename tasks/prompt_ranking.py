"""The prompts stage's template ranking (CLIP, torch): each scoring image's feature
(`features/<key>.npy`) and each template's class prompt embeddings (`text_features/<key>.npy`) are
kept under their content keys in the stage's persisted output, so a run after adding images embeds
only the new images and no text: the text side (every class name under the 81 default templates)
took minutes on a CPU at every run. Imported by `tasks.prompts` only when it ranks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from tasks.clip_model import cam_extractor
from tasks.progress import Progress
from wsss.cam import ClipEsCamExtractor
from wsss.catalog import ArtifactLayout
from wsss.clip import LoadedClip
from wsss.datasets import ImageRecord, safe_join
from wsss.imaging import load_rgb
from wsss.incremental import content_key, key_identity
from wsss.params import Params
from wsss.prompts import rank_templates
from wsss.prompts.feature_store import FeatureStore
from wsss.stage_code import code_digest
from wsss.stages import stage
from wsss.text import REFERENCE_TEMPLATE, default_candidate_templates


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
