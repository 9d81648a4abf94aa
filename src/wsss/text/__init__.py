"""Text side of CLIP-ES: vocabularies, prompt templates and cached prompt embeddings."""

from wsss.text.encoder import PromptEmbeddingCache
from wsss.text.templates import check_template, default_candidate_templates, imagenet_templates
from wsss.text.vocabulary import (
    REFERENCE_TEMPLATE,
    ClassVocabulary,
    coco_vocabulary,
    voc_vocabulary,
)

__all__ = [
    "REFERENCE_TEMPLATE",
    "ClassVocabulary",
    "PromptEmbeddingCache",
    "check_template",
    "coco_vocabulary",
    "default_candidate_templates",
    "imagenet_templates",
    "voc_vocabulary",
]
