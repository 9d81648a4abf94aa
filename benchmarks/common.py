"""What the benchmarks share: one timer, the JSON output, VOC-like inputs and process shutdown.

* `timed(function)`: wall seconds of one call (CUDA work waited for on both sides when torch is
  in use), and its result.
* `json_option(parser)` + `write_json(path, figures)`: every benchmark takes `--json PATH` and
  writes there the figures it prints.
* VOC-like inputs: real photos cropped, scaled and flipped to the sizes VOC has, 1-3 tags.
  PASCAL VOC images are at most 500 px on their longer side; most are 500x375 landscape, then
  portrait and other aspect ratios. After the CLIP-ES input rule (each side up to a multiple of
  16) the mix below falls into 7 size buckets, as a real VOC list does (it has more, thinner
  ones). Tag counts follow VOC train_aug (about 1.5 tags per image). Photos come from
  `skimage.data`, which ships with scikit-image, so nothing is downloaded.
* `stop_process`: ends a helper process (a Prefect server, Chromium) that a benchmark or test started.

Run every benchmark from the repository root as `python -m benchmarks.<name> [--json PATH]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

T = TypeVar("T")


def _synchronize() -> None:
    torch = sys.modules.get("torch")  # never imported here: the DVC benchmarks run without it
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function: Callable[[], T]) -> tuple[float, T]:
    """(wall seconds, result) of one call of `function`; pending CUDA work is waited for before and after."""
    _synchronize()
    started = time.perf_counter()
    result = function()
    _synchronize()
    return time.perf_counter() - started, result


def json_option(parser: argparse.ArgumentParser) -> None:
    """The `--json PATH` option every benchmark has."""
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the printed figures to this JSON file")


ROOT = Path(__file__).resolve().parents[1]  # the repository (benchmarks/ sits at its top)


def repository_relative(value: Any, root: Path = ROOT) -> Any:
    """`value` with every string (and key) naming a path under `root` made relative to it (`root`
    itself: "."), so committed figures name no folder of the machine that measured them."""
    if isinstance(value, dict):
        return {repository_relative(k, root): repository_relative(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [repository_relative(v, root) for v in value]
    if isinstance(value, str) and (value == str(root) or value.startswith(f"{root}/")):
        return str(Path(value).relative_to(root))
    return value


def write_json(path: Path | None, figures: Any) -> None:
    """Write `figures` as indented JSON to `path` (nothing when it is None), creating its folder;
    paths under the repository are written relative to it (`repository_relative`)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(repository_relative(json.loads(json.dumps(figures, default=str))), indent=2) + "\n")


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """Ask `process` to end (SIGTERM), and kill it when it has not ended after `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# (height, width) and share of images.
VOC_SIZE_MIX: tuple[tuple[tuple[int, int], float], ...] = (
    ((375, 500), 0.45),
    ((500, 375), 0.15),
    ((333, 500), 0.12),
    ((366, 500), 0.10),
    ((500, 500), 0.06),
    ((281, 500), 0.06),
    ((500, 333), 0.06),
)
# MSRC's 21 classes: stuff classes (building, grass, road, sky, ...) next to objects (a vocabulary
# unlike VOC's, for the custom-class benchmark and tests).
MSRC_CLASSES = (
    "building",
    "grass",
    "tree",
    "cow",
    "sheep",
    "sky",
    "aeroplane",
    "water",
    "face",
    "car",
    "bicycle",
    "flower",
    "sign",
    "bird",
    "book",
    "chair",
    "road",
    "cat",
    "dog",
    "body",
    "boat",
)

VOC_SIZE = (375, 500)
TAG_COUNT_MIX: tuple[tuple[int, float], ...] = ((1, 0.6), (2, 0.3), (3, 0.1))
NUM_VOC_CLASSES = 20


@dataclass(frozen=True)
class TaggedImage:
    """One benchmark image: its id, the RGB image and 0-based VOC class ids (1-3, distinct)."""

    image_id: str
    image: Image.Image
    class_ids: tuple[int, ...]


def source_photos() -> list[np.ndarray]:
    """RGB photos bundled with scikit-image (no download)."""
    from skimage import data

    return [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.stereo_motorcycle()[0]]


def _crop_to(photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A random window of `photo` with the aspect ratio of `size`, resized to it, maybe flipped."""
    height, width = size
    photo_h, photo_w = photo.shape[:2]
    scale = min(photo_h / height, photo_w / width) * rng.uniform(0.6, 1.0)
    crop_h, crop_w = max(1, int(height * scale)), max(1, int(width * scale))
    top = int(rng.integers(0, photo_h - crop_h + 1))
    left = int(rng.integers(0, photo_w - crop_w + 1))
    image = Image.fromarray(photo[top : top + crop_h, left : left + crop_w]).resize((width, height), Image.BICUBIC)
    return image.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


def voc_like_images(count: int, *, mix: bool = True, scale: float = 1.0, seed: int = 0) -> list[TaggedImage]:
    """`count` tagged images: sizes drawn from `VOC_SIZE_MIX` (or all 500x375 when `mix` is False).

    `scale` shrinks every size (e.g. 0.3 for a quick CPU run); ids are `img_00000`, ... in order.
    """
    rng = np.random.default_rng(seed)
    photos = source_photos()
    sizes = [size for size, _ in VOC_SIZE_MIX]
    size_p = np.array([share for _, share in VOC_SIZE_MIX])
    counts = [k for k, _ in TAG_COUNT_MIX]
    count_p = np.array([share for _, share in TAG_COUNT_MIX])
    images = []
    for index in range(count):
        height, width = sizes[rng.choice(len(sizes), p=size_p / size_p.sum())] if mix else VOC_SIZE
        size = (max(16, round(height * scale)), max(16, round(width * scale)))
        image = _crop_to(photos[index % len(photos)], size, rng)
        tags = rng.choice(NUM_VOC_CLASSES, size=counts[rng.choice(len(counts), p=count_p / count_p.sum())], replace=False)
        images.append(TaggedImage(f"img_{index:05d}", image, tuple(int(t) for t in tags)))
    return images


def write_jpegs(images: list[TaggedImage], folder: Path, quality: int = 90) -> dict[str, str]:
    """Save the images as `<folder>/<id>.jpg`; returns id -> path relative to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for item in images:
        item.image.save(folder / f"{item.image_id}.jpg", quality=quality)
        paths[item.image_id] = f"{item.image_id}.jpg"
    return paths
