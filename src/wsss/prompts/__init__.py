"""Prompt template selection by sharpness."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.prompts.sharpness import TemplateSharpness, rank_templates, sharpness_of_scores

__all__ = ["TemplateSharpness", "rank_templates", "sharpness_of_scores"]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
