"""Dense CRF post-processing of CAM scores, as in the CLIP-ES reference.

``pydensecrf`` is an optional dependency (the ``crf`` extra, ``pydensecrf2==1.1``) and is
imported only when a CRF is actually run, so the rest of the package imports without it.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from wsss.pseudo.labels import scores_with_background
from wsss.pseudo.settings import CrfParams

__all__ = ["DEFAULT_CRF_PARAMS", "REFERENCE_MEAN_BGR", "CrfParams", "crf_posterior_for_cams", "dense_crf", "reference_crf_image"]

# The Caffe ImageNet mean the reference subtracts before handing the image to the CRF.
REFERENCE_MEAN_BGR: tuple[float, float, float] = (104.008, 116.669, 122.675)


DEFAULT_CRF_PARAMS = CrfParams()


def _check_rgb_image(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"{name} must be an (H, W, 3) array, got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got dtype {image.dtype}")


def reference_crf_image(rgb: np.ndarray) -> np.ndarray:
    """Reproduce the image the reference feeds to its dense CRF.

    The reference reads the image with ``cv2.imread`` (BGR), casts it to float32, subtracts
    the Caffe mean and casts back to uint8. The cast wraps negative values around, so the
    bilateral kernel sees a corrupted colour image. The published CLIP-ES number (75.0 mIoU
    of the VOC train pseudo masks) was produced with this image, so it is kept here for a
    bit-exact reproduction; :func:`crf_posterior_for_cams` can switch it off.

    numpy's float -> uint8 cast of out-of-range values is undefined in C; on x86 it truncates
    toward zero and keeps the low 8 bits (-104.008 -> -104 -> 152). That arithmetic is done
    explicitly here so the result does not depend on the platform.

    Args:
        rgb: The image in RGB order.

    Returns:
        ``uint8(trunc(bgr - mean_bgr) mod 256)``, in BGR order.

    Raises:
        ValueError: If ``rgb`` is not an ``(H, W, 3)`` uint8 array.

    Shape:
        rgb: ``(H, W, 3)``.
        Output: ``(H, W, 3)`` uint8.
    """
    _check_rgb_image(rgb, "rgb")
    bgr = rgb[..., ::-1].astype(np.float32)
    # In-place subtraction keeps float32, matching ``image -= mean`` on a float32 image.
    bgr -= np.asarray(REFERENCE_MEAN_BGR)
    # Values lie in (-123, 151]: the cast to int16 truncates toward zero (defined in range) and the
    # integer cast to uint8 keeps the low 8 bits, i.e. trunc + mod 256 (the x86 wrap), with no
    # int64 temporaries (tests/unit/test_crf.py checks every input value).
    return bgr.astype(np.int16).astype(np.uint8)


def _import_pydensecrf() -> tuple[ModuleType, ModuleType]:
    try:
        import pydensecrf.utils as densecrf_utils
        from pydensecrf import densecrf
    except ImportError as error:
        raise ImportError(
            "The dense CRF needs pydensecrf: install it with `pip install pydensecrf2==1.1` or the package's `crf` extra (`pip install wsss[crf]`)."
        ) from error
    return densecrf, densecrf_utils


def dense_crf(image: np.ndarray, probs: np.ndarray, params: CrfParams = DEFAULT_CRF_PARAMS) -> np.ndarray:
    """Run a fully connected CRF over per-pixel class probabilities.

    The unary is ``-log(clip(probs, 1e-5, 1))`` computed in the dtype of ``probs``: the
    reference passes float16 probabilities, and keeping them float16 keeps its rounding.

    Args:
        image: The colour image the bilateral kernel compares (any channel order).
        probs: Per-pixel class probabilities or scores in [0, 1].
        params: CRF hyper-parameters.

    Returns:
        The mean-field posterior Q; each pixel's column sums to 1.

    Raises:
        ImportError: If pydensecrf is not installed.
        ValueError: If the image is not ``(H, W, 3)`` uint8 or its size differs from ``probs``.

    Shape:
        image: ``(H, W, 3)``.
        probs: ``(C, H, W)``.
        Output: ``(C, H, W)`` float32.
    """
    _check_rgb_image(image, "image")
    if not isinstance(probs, np.ndarray) or probs.ndim != 3 or probs.shape[0] < 1:
        shape = getattr(probs, "shape", None)
        raise ValueError(f"probs must be a (C, H, W) array with C >= 1, got shape {shape}")
    num_classes, height, width = probs.shape
    if image.shape[:2] != (height, width):
        raise ValueError(f"image size {image.shape[:2]} does not match probs size {(height, width)}")
    if int(params.iterations) < 0:
        raise ValueError(f"iterations must be >= 0, got {params.iterations}")

    densecrf, densecrf_utils = _import_pydensecrf()
    unary = densecrf_utils.unary_from_softmax(probs)
    crf = densecrf.DenseCRF2D(width, height, num_classes)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        # pydensecrf needs a writable buffer; images decoded by PIL are read-only views.
        rgbim=np.array(image, dtype=np.uint8, order="C", copy=True),
        compat=params.bilateral_compat,
    )
    posterior = crf.inference(int(params.iterations))
    return np.asarray(posterior, dtype=np.float32).reshape((num_classes, height, width))


def crf_posterior_for_cams(
    rgb_image: np.ndarray, cams: np.ndarray, *, params: CrfParams = DEFAULT_CRF_PARAMS, reference_image_quirk: bool = True
) -> np.ndarray:
    """Dense-CRF posterior for refined CAMs, built the way the reference builds it.

    The CRF input is ``concat[(1 - max_k cams)^1, cams]``: alpha is fixed at 1 on the
    reference's CRF path and the scores are not renormalised (the unary is their negative
    log, so only their ratios per pixel matter after inference).

    Args:
        rgb_image: The image in RGB order, at the resolution of the CAMs.
        cams: Foreground activation maps in [0, 1], one per image-level tag; float16 CAMs
            stay float16 up to the unary, as in the reference.
        params: CRF hyper-parameters.
        reference_image_quirk: Feed the CRF the reference's wrapped, mean-subtracted BGR image
            (see :func:`reference_crf_image`) instead of the plain RGB image.

    Returns:
        The posterior; channel 0 is background, channel ``k + 1`` is tag ``k``. Pass it to
        :func:`wsss.pseudo.labels.make_pseudo_label` as ``posterior``.

    Raises:
        ImportError: If pydensecrf is not installed.
        ValueError: On a malformed image or CAMs, or if their sizes differ.

    Shape:
        rgb_image: ``(H, W, 3)`` uint8.
        cams: ``(K, H, W)``.
        Output: ``(K + 1, H, W)`` float32.
    """
    _check_rgb_image(rgb_image, "rgb_image")
    probs = scores_with_background(cams, alpha=1.0)
    if rgb_image.shape[:2] != probs.shape[1:]:
        raise ValueError(f"rgb_image size {rgb_image.shape[:2]} does not match cams size {probs.shape[1:]}")
    image = reference_crf_image(rgb_image) if reference_image_quirk else rgb_image
    return dense_crf(image, probs, params)
