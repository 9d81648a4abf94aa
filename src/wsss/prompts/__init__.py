"""Prompt template selection by sharpness."""

from wsss.prompts.sharpness import TemplateSharpness, rank_templates, sharpness_of_scores

__all__ = ["TemplateSharpness", "rank_templates", "sharpness_of_scores"]
