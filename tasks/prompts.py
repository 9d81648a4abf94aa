"""prompts: rank candidate templates by sharpness on the multi-label images of the split."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from tasks.common import PROMPT_SCORES, write_json
from wsss.cam import ClipEsCamExtractor
from wsss.config import PromptSettings
from wsss.datasets import Manifest, safe_join
from wsss.imaging import load_rgb
from wsss.prompts import rank_templates
from wsss.text import REFERENCE_TEMPLATE, default_candidate_templates


@task(cache_policy=NONE)
def score_templates(
    extractor: ClipEsCamExtractor, manifest: Manifest, root: Path, settings: PromptSettings
) -> dict[str, object]:
    """Sharpness of every candidate template; the selection is the pin or the best-ranked one."""
    vocabulary = extractor.vocabulary
    multi = [r for r in manifest.records if len(set(r.tags)) >= 2][: settings.max_images]
    candidates = settings.candidates or default_candidate_templates()
    ranking: list[dict[str, object]] = []
    if multi:
        images = [extractor.prepare(load_rgb(safe_join(root, r.image_path))) for r in multi]
        features = extractor.image_features(images, settings.pooling)
        tag_sets = [[vocabulary.class_id(t) for t in r.tags] for r in multi]
        scored = rank_templates(features, tag_sets, candidates, extractor.class_text, extractor.logit_scale, settings.ddof)
        ranking = [
            {"rank": i + 1, "template": s.template, "sharpness": s.sharpness, "num_images": s.num_images,
             "mean_tag_probability": s.mean_tag_probability}
            for i, s in enumerate(scored)
        ]
    best = ranking[0]["template"] if ranking else REFERENCE_TEMPLATE
    return {
        "ranking": ranking,
        "num_multi_label_images": len(multi),
        "pooling": settings.pooling,
        "ddof": settings.ddof,
        "best": best,
        "pinned": settings.pin,
        "selected": settings.pin or best,
        "note": "" if multi else "no multi-label images: nothing to score; the pin or the reference template is used",
    }


@task(cache_policy=NONE)
def write_scores(scores: dict[str, object], clip_identity: dict[str, object], path: Path = PROMPT_SCORES) -> None:
    write_json(path, {**scores, "clip": clip_identity})
