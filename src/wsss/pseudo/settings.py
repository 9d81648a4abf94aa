"""The `pseudo` params section and its dense-CRF parameters (torch-free, so that loading the
params never loads torch or the CRF)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from wsss.settings import AUTO, Auto, check_fields, setting

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class CrfParams:
    """Dense CRF hyper-parameters (`pseudo.crf_params`); the defaults are the reference's
    (deeplab-pytorch VOC). Standard deviations must be > 0: pydensecrf divides by them and
    crashes the process on 0."""

    SECTION: ClassVar[str] = "pseudo.crf_params"

    iterations: int = setting(10, "mean-field inference steps", ge=1, le=1000)
    gaussian_sxy: float = setting(1.0, "spatial standard deviation of the smoothness kernel, pixels", gt=0.0, le=10000.0)
    gaussian_compat: float = setting(3.0, "weight of the smoothness kernel", ge=0.0, le=10000.0)
    bilateral_sxy: float = setting(67.0, "spatial standard deviation of the appearance kernel, pixels", gt=0.0, le=10000.0)
    bilateral_srgb: float = setting(3.0, "colour standard deviation of the appearance kernel", gt=0.0, le=10000.0)
    bilateral_compat: float = setting(4.0, "weight of the appearance kernel", ge=0.0, le=10000.0)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class PseudoSettings:
    """The `pseudo` params section: how refined CAMs become pseudo masks."""

    SECTION: ClassVar[str] = "pseudo"

    background_alpha: float = setting(1.0, "exponent of the background score `(1 - max cam)^alpha`", gt=0.0, le=100.0)
    crf: bool = setting(True, "run the dense CRF")
    crf_reference_image_quirk: bool = setting(True, "feed the CRF the reference's wrapped, mean-subtracted uint8 image")
    confidence_threshold: float | None = setting(0.95, "pixels with a lower confidence become `ignore_index`; null keeps every pixel", ge=0.0, le=1.0)
    ignore_index: int = setting(255, "label of ignored pixels", ge=0, le=255)
    crf_params: CrfParams = setting(CrfParams(), "dense CRF parameters")
    jobs: int | Auto = setting(
        AUTO, "worker processes of the pseudo stage (the CRF is CPU-bound); auto: every usable core", ge=1, le=1024, identity=False
    )

    def __post_init__(self) -> None:
        check_fields(self)

    def needs_image(self, class_ids: np.ndarray) -> bool:
        """Whether `pseudo_label` needs the RGB image (the CRF runs only for images with tags)."""
        return self.crf and len(class_ids) > 0
