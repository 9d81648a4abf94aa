"""Text side of CLIP-ES: vocabularies, prompt templates and cached prompt embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.text.encoder import PromptEmbeddingCache
    from wsss.text.templates import check_template, default_candidate_templates, imagenet_templates
    from wsss.text.vocabulary import REFERENCE_TEMPLATE, ClassVocabulary, coco_vocabulary, voc_vocabulary

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

__getattr__, __dir__ = lazy_exports(__name__, __file__)
