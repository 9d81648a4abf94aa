"""Prompt selection by sharpness (CLIP-ES Eq. 9, as reconstructed in docs/method.md).

For a template p and the multi-label images i (two or more tags), with s_i the zero-shot softmax
scores over all classes and s_i[Y_i] those of the image's tags:

    sharpness(p) = sum_i var(s_i[Y_i]) / mean(s_i[Y_i])

A dominant tag that takes the softmax mass makes the ratio large; the template with the lowest
sharpness spreads scores over all present classes and is selected. The variance uses
`ddof=1` (torch's default, as in that reconstruction); both choices are parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TemplateSharpness:
    """Score of one template. Lower sharpness ranks first."""

    template: str
    sharpness: float
    num_images: int
    mean_tag_probability: float


def sharpness_of_scores(probabilities: torch.Tensor, tag_sets: Sequence[Sequence[int]], ddof: int = 1) -> tuple[float, int]:
    """Sum over multi-label images of var/mean of the tags' softmax scores.

    Args:
        probabilities: `(N, C)` softmax scores over all classes, one row per image.
        tag_sets: the class ids present in each image; images with fewer than two are skipped.
        ddof: delta degrees of freedom of the variance.

    Returns:
        (sharpness, number of images used).
    """
    if probabilities.ndim != 2 or probabilities.shape[0] != len(tag_sets):
        raise ValueError(f"expected ({len(tag_sets)}, C) probabilities, got {tuple(probabilities.shape)}")
    total, used = 0.0, 0
    for row, tags in zip(probabilities, tag_sets, strict=True):
        unique = sorted({int(t) for t in tags})
        if len(unique) < 2:
            continue
        scores = row[unique].double()
        total += float(scores.var(correction=ddof) / scores.mean())
        used += 1
    return total, used


def rank_templates(
    image_features: torch.Tensor,
    tag_sets: Sequence[Sequence[int]],
    templates: Sequence[str],
    class_text: Callable[[str], torch.Tensor],
    logit_scale: float,
    ddof: int = 1,
) -> list[TemplateSharpness]:
    """Score every template and return them sorted by ascending sharpness (best first).

    Args:
        image_features: `(N, E)` image features of the scoring images.
        tag_sets: each image's class ids.
        templates: candidate templates ("{}" marks the class name).
        class_text: template -> `(C, E)` normalised class prompt embeddings.
        logit_scale: multiplier of the cosine similarities (CLIP's `exp(logit_scale)`).
    """
    if sum(len(set(t)) >= 2 for t in tag_sets) == 0:
        raise ValueError("prompt sharpness needs at least one image with two or more tags")
    image = F.normalize(image_features.float(), dim=-1)
    scored = []
    for template in templates:
        text = F.normalize(class_text(template).float(), dim=-1)
        probabilities = (logit_scale * image @ text.T).softmax(dim=-1)
        value, used = sharpness_of_scores(probabilities, tag_sets, ddof)
        tag_means = [float(probabilities[i, sorted(set(t))].mean()) for i, t in enumerate(tag_sets) if len(set(t)) >= 2]
        scored.append(TemplateSharpness(template, value, used, sum(tag_means) / len(tag_means)))
    return sorted(scored, key=lambda s: (s.sharpness, s.template))
