"""Evaluation protocol of the pipeline: metric keys, variants and their documents (pure functions)."""

from wsss.evaluation.protocol import (
    LEARNED_SUFFIX,
    EvaluateSettings,
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

__all__ = [
    "LEARNED_SUFFIX",
    "EvaluateSettings",
    "ImageMaps",
    "ProtocolScores",
    "background_comparison_rows",
    "metrics_document",
    "model_keys",
    "protocol_markdown",
    "score_image",
    "summary_rows",
    "with_learned_background",
]
