"""The pseudo-mask step (docs/method.md, "Pseudo masks") as one call: refined CAMs -> (dense CRF) -> labels + confidence.

`pseudo_label(rgb, cams, class_ids, settings)` is what the `pseudo` stage, relabeling, the
second (SemPLeS) pass, evaluation, `wsss demo` and `wsss overlay` all call, so the mask a
number was computed from is always made the same way.
"""

from __future__ import annotations

import numpy as np

from wsss.pseudo.crf import crf_posterior_for_cams
from wsss.pseudo.labels import PseudoLabel, make_pseudo_label
from wsss.pseudo.settings import PseudoSettings


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
        posterior = crf_posterior_for_cams(rgb, cams, params=settings.crf_params, reference_image_quirk=settings.crf_reference_image_quirk)
    return make_pseudo_label(
        cams,
        class_ids,
        alpha=settings.background_alpha,
        confidence_threshold=settings.confidence_threshold,
        ignore_index=settings.ignore_index,
        posterior=posterior,
    )
