"""Prompt templates: the reference's choice and the CLIP ImageNet candidates for sharpness scoring."""

from __future__ import annotations

from open_clip import zero_shot_metadata

from wsss.errors import ConfigError
from wsss.text.vocabulary import REFERENCE_TEMPLATE


def imagenet_templates() -> tuple[str, ...]:
    """The 80 CLIP ImageNet prompt templates as "{}" format strings (taken from open_clip)."""
    return tuple(make("{}") for make in zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES)


def default_candidate_templates() -> tuple[str, ...]:
    """Candidates scored by prompt sharpness: the ImageNet templates plus the reference's pick."""
    candidates = imagenet_templates()
    return candidates if REFERENCE_TEMPLATE in candidates else (*candidates, REFERENCE_TEMPLATE)


def check_template(template: str) -> str:
    """A template must hold exactly one "{}" where the class name goes."""
    if template.count("{}") != 1:
        raise ConfigError(f"prompt template {template!r} must contain exactly one '{{}}'")
    return template
