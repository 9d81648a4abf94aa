"""prompts: rank candidate templates by sharpness on the multi-label images; record the selected one
and, next to the scores, what CLIP is asked with it (`vocabulary.json`: every prompt string)."""

from __future__ import annotations

from typing import Any

import torch

from tasks.clip_model import cam_extractor, load_stage_clip
from tasks.prepare import read_manifest
from tasks.progress import Progress
from wsss.bounded_parsing import loads_json
from wsss.catalog import ArtifactLayout
from wsss.datasets import safe_join
from wsss.errors import ConfigError
from wsss.imaging import load_rgb
from wsss.io.atomic import write_json_atomic
from wsss.params import Params
from wsss.prompts import rank_templates
from wsss.text import REFERENCE_TEMPLATE, default_candidate_templates
from wsss.text.vocabulary import vocabulary_document


def run_prompts(params: Params, layout: ArtifactLayout) -> dict[str, Any]:
    """Sharpness of every candidate template; the selection is the pin or the best-ranked one."""
    settings = params.prompts
    manifest = read_manifest(layout)
    clip = load_stage_clip(params)
    extractor = cam_extractor(params, clip, manifest.class_names, (REFERENCE_TEMPLATE,))  # scoring embeds every candidate itself
    multi = [r for r in manifest.records if len(set(r.tags)) >= 2][: settings.max_images]
    candidates = settings.candidates or default_candidate_templates()
    ranking: list[dict[str, Any]] = []
    if multi:
        progress = Progress("wsss-prompts-progress", "Images through CLIP (template scoring)", "prompts")
        progress.start(len(multi))
        features_per_image = []
        for record in multi:  # one image at a time (the extractor's loop is per image anyway): progress, little memory
            prepared = extractor.prepare(load_rgb(safe_join(params.dataset_root, record.image_path)))
            features_per_image.append(extractor.image_features([prepared], settings.pooling))
            progress.tick(1, "embedded")
        features = torch.cat(features_per_image)
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
    }
    write_json_atomic(layout.prompt_scores, scores)
    # The final prompt strings (the selected template applied to every class and background word).
    write_json_atomic(layout.vocabulary, vocabulary_document(params.vocabulary, scores["selected"]))
    return scores


def selected_template(layout: ArtifactLayout) -> str:
    """The template the prompts stage selected (the one owner of the template)."""
    try:
        return str(loads_json(layout.prompt_scores.read_text(), str(layout.prompt_scores))["selected"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{layout.prompt_scores}: cannot read the selected template ({error}); run the prompts stage") from error
