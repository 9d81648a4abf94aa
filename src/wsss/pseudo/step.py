"""The pseudo-mask step (docs/method.md, "Pseudo masks") as one call: refined CAMs -> (dense CRF) -> labels + confidence.

`pseudo_label(rgb, cams, class_ids, settings)` is what the `pseudo` stage, relabeling, the
second (SemPLeS) pass, evaluation, `wsss demo` and `wsss overlay` all call, so the mask a
number was computed from is always made the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from wsss.pseudo.crf import CrfParams, crf_posterior_for_cams
from wsss.pseudo.labels import PseudoLabel, make_pseudo_label
from wsss.settings import check_fields, setting


@dataclass(frozen=True)
class PseudoSettings:
    """The `pseudo` params section: how refined CAMs become pseudo masks."""

    SECTION: ClassVar[str] = "pseudo"

    background_alpha: float = setting(1.0, "exponent of the background score `(1 - max cam)^alpha`", gt=0.0, le=100.0)
    crf: bool = setting(True, "run the dense CRF")
    crf_reference_image_quirk: bool = setting(True, "feed the CRF the reference's wrapped, mean-subtracted uint8 image")
    confidence_threshold: float | None = setting(
        0.95, "pixels with a lower confidence become `ignore_index`; null keeps every pixel", ge=0.0, le=1.0
    )
    ignore_index: int = setting(255, "label of ignored pixels", ge=0, le=255)
    crf_params: CrfParams = setting(CrfParams(), "dense CRF parameters")
    jobs: int = setting(1, "worker processes of the pseudo stage (the CRF is CPU-bound); not part of any result", ge=1, le=1024)

    def __post_init__(self) -> None:
        check_fields(self)

    def needs_image(self, class_ids: np.ndarray) -> bool:
        """Whether `pseudo_label` needs the RGB image (the CRF runs only for images with tags)."""
        return self.crf and len(class_ids) > 0


def pseudo_label(rgb: np.ndarray | None, cams: np.ndarray, class_ids: np.ndarray, settings: PseudoSettings) -> PseudoLabel:
    """Pseudo labels, confidence and raw labels of one image.

    Args:
        rgb: the image in RGB order at the maps' size; only read when `settings.needs_image`.
        cams: refined maps in [0, 1] (float16 as stored, like the reference's `.npy`).
        class_ids: 0-based class of each map.
        settings: background exponent, CRF switch and parameters, confidence threshold.

    Shape:
        rgb: `(H, W, 3)` uint8; cams: `(K, H, W)`; class_ids: `(K,)`; output fields `(H, W)`.
    """
    posterior = None
    if settings.needs_image(class_ids):
        if rgb is None:
            raise ValueError("pseudo_label: the dense CRF needs the RGB image")
        posterior = crf_posterior_for_cams(
            rgb, cams, params=settings.crf_params, reference_image_quirk=settings.crf_reference_image_quirk
        )
    return make_pseudo_label(
        cams,
        class_ids,
        alpha=settings.background_alpha,
        confidence_threshold=settings.confidence_threshold,
        ignore_index=settings.ignore_index,
        posterior=posterior,
    )
