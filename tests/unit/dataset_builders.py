"""Datasets as users have them, built by the tests' own code (no downloads).

* `write_coco_set`: a COCO 2014-style val split with the *official* category names and ids,
  polygons (one with two rings), a compressed and an uncompressed RLE, a crowd region, two
  overlapping instances and an equal-area tie; returns the label map each image must get.
* `write_folder_set`: a folder of images + tags CSV + ground-truth PNGs (palette and index).
* `write_voc_masks_only`: a VOC layout with SegmentationClass masks and no Annotations XML.

Every expected label map is written down from the rule (rectangles, hand-placed), not computed
with the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from wsss.text.vocabulary import COCO_CLASS_NAMES, VOC_CLASS_NAMES

WIDTH, HEIGHT = 64, 48
# Official COCO 2014 categories (ids and names as published) used by the set.
OFFICIAL_CATEGORIES = [
    {"supercategory": "person", "id": 1, "name": "person"},
    {"supercategory": "vehicle", "id": 4, "name": "motorcycle"},
    {"supercategory": "vehicle", "id": 5, "name": "airplane"},
    {"supercategory": "animal", "id": 18, "name": "dog"},
    {"supercategory": "furniture", "id": 63, "name": "couch"},
    {"supercategory": "furniture", "id": 64, "name": "potted plant"},
    {"supercategory": "furniture", "id": 67, "name": "dining table"},
    {"supercategory": "electronic", "id": 72, "name": "tv"},
]


def coco_label(clip_es_name: str) -> int:
    """Label value of a class of the COCO preset (index + 1)."""
    return COCO_CLASS_NAMES.index(clip_es_name) + 1


def photo(seed: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A smooth random RGB image (JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))


def rect_polygon(x0: int, y0: int, x1: int, y1: int) -> list[float]:
    """Polygon ring of the pixels x0 <= x < x1, y0 <= y < y1 (COCO coordinates are pixel corners)."""
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


def rect_mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd format: column-major run lengths starting with a run of zeros."""
    flat = mask.flatten(order="F")
    runs, current, length = [], 0, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    return {"size": [HEIGHT, WIDTH], "counts": runs}


def _annotation(ann_id: int, image_id: int, category_id: int, segmentation: object, crowd: int = 0) -> dict:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": segmentation,
        "area": 0.0,
        "bbox": [0.0, 0.0, 1.0, 1.0],
        "iscrowd": crowd,
    }


def write_coco_set(root: Path, split: str = "val2014") -> dict[str, np.ndarray]:
    """Images under `<root>/<split>/`, `<root>/annotations/instances_<split>.json` as published.

    Returns:
        image id (file stem) -> the `(H, W)` uint8 label map the COCO preset must give it.
    """
    names = {
        42: f"COCO_{split}_000000000042.jpg",
        73: f"COCO_{split}_000000000073.jpg",
        139: f"COCO_{split}_000000000139.jpg",
        200: f"COCO_{split}_000000000200.jpg",  # no annotations: skipped, as CLIP-ES does
    }
    (root / split).mkdir(parents=True, exist_ok=True)
    for seed, file_name in enumerate(names.values()):
        Image.fromarray(photo(seed)).save(root / split / file_name, quality=95)
    expected = {Path(name).stem: np.zeros((HEIGHT, WIDTH), dtype=np.uint8) for name in names.values()}
    annotations = []
    # 42: a dog inside a person (the smaller dog wins), a motorcycle drawn as an L.
    annotations.append(_annotation(1, 42, 1, [rect_polygon(4, 4, 40, 44)]))
    annotations.append(_annotation(2, 42, 18, [rect_polygon(20, 20, 36, 40)]))
    annotations.append(_annotation(3, 42, 4, [[44.0, 4.0, 50.0, 4.0, 50.0, 30.0, 60.0, 30.0, 60.0, 40.0, 44.0, 40.0]]))
    gt = expected[Path(names[42]).stem]
    gt[4:44, 4:40] = coco_label("person")
    gt[20:40, 20:36] = coco_label("dog")
    gt[4:40, 44:50] = coco_label("motorbike")
    gt[30:40, 50:60] = coco_label("motorbike")
    # 73: tv as compressed RLE, couch as uncompressed RLE, a crowd of people over part of the couch.
    annotations.append(_annotation(4, 73, 72, compressed_rle(rect_mask(8, 8, 24, 24))))
    annotations.append(_annotation(5, 73, 63, uncompressed_rle(rect_mask(30, 10, 60, 40))))
    annotations.append(_annotation(6, 73, 1, uncompressed_rle(rect_mask(0, 30, 40, 48)), crowd=1))
    gt = expected[Path(names[73]).stem]
    gt[8:24, 8:24] = coco_label("tvmonitor")
    gt[30:48, 0:40] = 255
    gt[10:40, 30:60] = coco_label("sofa")  # an instance beats the crowd region
    # 139: an airplane of two rings; potted plant and dining table of equal area overlap: the first listed wins.
    annotations.append(_annotation(7, 139, 5, [rect_polygon(2, 2, 12, 10), rect_polygon(30, 2, 60, 8)]))
    annotations.append(_annotation(8, 139, 64, [rect_polygon(10, 30, 20, 40)]))
    annotations.append(_annotation(9, 139, 67, [rect_polygon(15, 30, 25, 40)]))
    gt = expected[Path(names[139]).stem]
    gt[2:10, 2:12] = coco_label("aeroplane")
    gt[2:8, 30:60] = coco_label("aeroplane")
    gt[30:40, 15:25] = coco_label("diningtable")
    gt[30:40, 10:20] = coco_label("pottedplant")
    del expected[Path(names[200]).stem]
    instances = {
        "info": {"description": "COCO-format test set", "version": "1.0", "year": 2014},
        "licenses": [{"id": 1, "name": "test", "url": ""}],
        "images": [{"id": i, "file_name": n, "width": WIDTH, "height": HEIGHT, "license": 1} for i, n in names.items()],
        "annotations": annotations,
        "categories": OFFICIAL_CATEGORIES,
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(instances))
    return expected


def palette_png(path: Path, labels: np.ndarray) -> None:
    """A palette ("P") PNG whose indices are `labels`, as VOC ships its masks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]), np.ascontiguousarray(labels, np.uint8).tobytes())
    image.putpalette([(i * 37) % 256 for i in range(768)])
    image.save(path)


def write_folder_set(root: Path) -> dict[str, np.ndarray]:
    """`images/` (a JPEG and a PNG in a subfolder), `tags.csv`, `masks/` (palette and index PNGs).

    Classes: cat (label 1), dog (label 2). Returns the label map per image id.
    """
    (root / "images" / "sub").mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo(10)).save(root / "images" / "kitten.jpg", quality=95)
    Image.fromarray(photo(11)).save(root / "images" / "sub" / "puppy.png")
    kitten = np.zeros((HEIGHT, WIDTH), np.uint8)
    kitten[5:40, 10:50] = 1
    kitten[0:2, :] = 255
    puppy = np.zeros((HEIGHT, WIDTH), np.uint8)
    puppy[10:30, 5:30] = 2
    puppy[30:45, 35:60] = 1
    palette_png(root / "masks" / "kitten.png", kitten)
    (root / "masks" / "sub").mkdir(parents=True, exist_ok=True)
    Image.fromarray(puppy).save(root / "masks" / "sub" / "puppy.png")  # mode "L": index PNG
    (root / "tags.csv").write_text("image,tags\nkitten.jpg,cat\nsub/puppy.png,dog;cat\n")
    return {"kitten": kitten, "puppy": puppy}


def write_voc_masks_only(root: Path, split: str = "train") -> dict[str, tuple[str, ...]]:
    """JPEGImages + SegmentationClass palette PNGs + ImageSets, no Annotations folder.

    Returns the tags each image must get from its mask (VOC class order).
    """
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    masks = {}
    first = np.zeros((HEIGHT, WIDTH), np.uint8)
    first[10:40, 10:30] = VOC_CLASS_NAMES.index("person") + 1
    first[5:20, 40:60] = VOC_CLASS_NAMES.index("bicycle") + 1
    first[40:42, :] = 255
    second = np.zeros((HEIGHT, WIDTH), np.uint8)
    second[8:44, 8:56] = VOC_CLASS_NAMES.index("cat") + 1
    masks["2007_000001"], masks["2007_000002"] = first, second
    for seed, (image_id, labels) in enumerate(masks.items()):
        Image.fromarray(photo(20 + seed)).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
        palette_png(root / "SegmentationClass" / f"{image_id}.png", labels)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in masks))
    return {"2007_000001": ("bicycle", "person"), "2007_000002": ("cat",)}
