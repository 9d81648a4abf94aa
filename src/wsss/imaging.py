"""Image decoding and the CLIP-ES input transform (native aspect ratio, no crop).

The reference resizes every image with PIL bicubic to `ceil(side / 16) * 16` on each side and
applies CLIP's normalisation (docs/method.md, "Model and input"). Pixels are used as stored: EXIF orientation is NOT
applied, because dataset masks are stored in the same raw pixel orientation as the JPEGs. The
one rule everywhere (CAMs, refined maps, pseudo masks, GT checks): the raw pixel grid, i.e. the
size in the file header; a GT mask of the EXIF-rotated size is reported as a size mismatch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsss.errors import ImageError

if TYPE_CHECKING:
    import torch

# EXIF orientations 5-8 swap width and height when a viewer applies them.
EXIF_ORIENTATION_TAG = 0x0112
TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})

T = TypeVar("T")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_rgb(path: Path | str, max_pixels: int | None = None) -> Image.Image:
    """Decode an image file fully into an RGB PIL image, in raw (not EXIF-rotated) orientation.

    Args:
        path: the image file.
        max_pixels: refuse images whose header announces more pixels, before decoding them
            (bounds memory); None = no limit of ours (PIL's decompression-bomb guard remains).

    Raises:
        ImageError: naming the file, when it is missing, empty, truncated, not an image or too large.
    """
    return _decode(Path(path), max_pixels, to_rgb)


def check_decodes(path: Path | str, max_pixels: int | None = None) -> tuple[int, int]:
    """Decode an image fully (as `load_rgb` would) without converting it; return `(width, height)`.

    Raises:
        ImageError: as `load_rgb`.
    """
    return _decode(Path(path), max_pixels, _size_if_convertible)


def _size_if_convertible(image: Image.Image) -> tuple[int, int]:
    # Converting one pixel proves the mode converts to RGB without a full-size copy; a float
    # image is scaled by its own maximum, which every pixel must be checked for.
    to_rgb(image if image.mode == "F" else image.crop((0, 0, 1, 1)))
    return image.size


def _decode(path: Path, max_pixels: int | None, convert: Callable[[Image.Image], T]) -> T:
    try:
        with warnings.catch_warnings():
            # Our own limit is checked below; PIL's warning above ~89 Mpx would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as handle:
                width, height = handle.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageError(
                        f"{path}: image is {width}x{height} = {width * height} pixels, more than the limit "
                        f"of {max_pixels} (reliability.max_image_pixels)"
                    )
                handle.load()
                try:
                    return convert(handle)
                except ImageError as error:  # what the pixels hold (to_rgb): name the file
                    raise ImageError(f"{path}: {error}") from None
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except Image.DecompressionBombError as error:
        raise ImageError(f"{path}: refused as a decompression bomb ({error})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"{path}: cannot decode image ({type(error).__name__}: {error})") from error


def exif_orientation(path: Path | str) -> int:
    """The EXIF Orientation tag (1-8; 1 when absent or unreadable). Pixels are never rotated by it."""
    try:
        with Image.open(path) as handle:
            return int(handle.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except (OSError, ValueError, SyntaxError, TypeError):
        return 1


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy of any PIL image; 16-bit grayscale is scaled to 8 bits first, 32-bit integer and
    floating-point grayscale by their maximum (at least 1: a float image in [0, 1] spans 0..255;
    PIL's own conversion clipped it to 0..1 of 255, an all-black image).

    Raises:
        ImageError: for a floating-point image holding NaN or infinity.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if image.mode == "F" and not np.isfinite(array).all():
            raise ImageError(f"floating-point image holds {int((~np.isfinite(array)).sum())} NaN or infinite pixels")
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(array.max(initial=0.0)), 1.0)
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return image.convert("RGB") if image.mode != "RGB" else image.copy()


def clip_input_size(height: int, width: int, patch_size: int = 16, max_side: int | None = None) -> tuple[int, int]:
    """Network input size: each side rounded up to the patch size, after an optional downscale.

    Images whose longer side exceeds `max_side` are first scaled by `max_side / max(H, W)`
    (aspect kept) so that attention memory stays bounded; maps are still returned at the
    original size. With `max_side=None`, or images within it, this is the reference's rule.
    """
    if height < 1 or width < 1:
        raise ImageError(f"image size {height}x{width} is empty")
    scale = 1.0
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
    return (
        max(patch_size, int(math.ceil(scale * height / patch_size) * patch_size)),
        max(patch_size, int(math.ceil(scale * width / patch_size) * patch_size)),
    )


def clip_pixels(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize to `size = (h, w)`, scale to [0, 1], CLIP mean/std normalisation.

    Shape: returns `(3, h, w)` float32. The arithmetic follows torchvision's `ToTensor` and
    `Normalize` step for step so that inputs match the reference bit for bit.
    """
    import torch  # only where the network input is made: decoding alone (prepare, pseudo) stays torch-free

    if image.mode != "RGB":
        raise ImageError(f"clip_pixels needs an RGB image, got mode {image.mode!r} (convert with to_rgb)")
    height, width = size
    resized = image.resize((width, height), Image.Resampling.BICUBIC)
    # PIL's band split gives channel-first planes directly; a uint8 HWC -> CHW permute copy in
    # torch costs several times more. The values are the same bytes either way.
    planes = np.stack([np.asarray(band) for band in resized.split()])
    pixels = torch.from_numpy(planes).to(torch.float32).div_(255)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32).view(3, 1, 1)
    return pixels.sub_(mean).div_(std)
