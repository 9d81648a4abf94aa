"""Pseudo label generation: CAMs -> background scores -> (optional dense CRF) -> label maps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wsss.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from wsss.pseudo.crf import DEFAULT_CRF_PARAMS, REFERENCE_MEAN_BGR, crf_posterior_for_cams, dense_crf, reference_crf_image
    from wsss.pseudo.labels import PseudoLabel, background_score, labels_from_scores, make_pseudo_label, scores_with_background
    from wsss.pseudo.settings import CrfParams, PseudoSettings
    from wsss.pseudo.step import pseudo_label

__all__ = [
    "DEFAULT_CRF_PARAMS",
    "REFERENCE_MEAN_BGR",
    "CrfParams",
    "PseudoLabel",
    "PseudoSettings",
    "background_score",
    "crf_posterior_for_cams",
    "dense_crf",
    "labels_from_scores",
    "make_pseudo_label",
    "pseudo_label",
    "reference_crf_image",
    "scores_with_background",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
