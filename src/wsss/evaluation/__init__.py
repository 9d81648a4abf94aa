"""Evaluation protocol of the pipeline: metric keys, variants and their documents (pure functions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.evaluation.headline import headline
    from wsss.evaluation.protocol import (
        LEARNED_SUFFIX,
        ImageMaps,
        ProtocolScores,
        background_comparison_rows,
        metrics_document,
        model_keys,
        protocol_markdown,
        score_image,
        summary_rows,
        with_learned_background,
    )
    from wsss.evaluation.settings import EvaluateSettings

__all__ = [
    "LEARNED_SUFFIX",
    "EvaluateSettings",
    "ImageMaps",
    "ProtocolScores",
    "background_comparison_rows",
    "headline",
    "metrics_document",
    "model_keys",
    "protocol_markdown",
    "score_image",
    "summary_rows",
    "with_learned_background",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
