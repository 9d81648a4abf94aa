"""Masks out to annotation tools: COCO JSON (RLE), CVAT Segmentation Mask 1.1, Label Studio, palette PNGs.

Label values are the pipeline's: 0 background, class c at c (the manifest's class c - 1), 255
ignored. Every format carries the ignored region as its own `ignore` label, so a round trip
through any of them gives back the exact mask:

* COCO: one RLE annotation (pycocotools, `counts` as a string) per image and label present,
  `category_id` = label value; background is not annotated; the ignored region has
  `iscrowd: 1` (COCO's "not scored" flag).
* CVAT "Segmentation mask 1.1" zip: `labelmap.txt`, `ImageSets/Segmentation/default.txt`,
  `SegmentationClass/<image name>.png` (RGB in the labelmap's colours).
* Label Studio: `tasks.json` (one task per image, a `brushlabels` prediction per label with
  Label Studio's RLE) and `labeling_config.xml` for the project.
* palette PNGs: `masks/<image_id>.png` (VOC palette, as the pipeline writes them) + `labelmap.txt`.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image

from wsss.errors import WsssError
from wsss.io.atomic import atomic_path, write_bytes_atomic
from wsss.palette import palette_png_bytes, voc_palette
from wsss.review.brush_rle import mask_to_rle
from wsss.review.corrections import IGNORE_NAME

FORMATS = ("coco", "cvat", "labelstudio", "png")
CVAT_ZIP = "cvat_segmentation_mask_1.1.zip"


@dataclass(frozen=True)
class ExportImage:
    """One image to export: ids and size from the manifest, `labels()` loads its `(H, W)` uint8 mask."""

    image_id: str
    file_name: str
    width: int
    height: int
    labels: Callable[[], np.ndarray]
    origin: str = "pseudo"


def _checked(image: ExportImage) -> np.ndarray:
    labels = np.asarray(image.labels(), dtype=np.uint8)
    if labels.shape != (image.height, image.width):
        raise ValueError(f"mask of {image.image_id!r} is {labels.shape}, the image {image.height}x{image.width}")
    return labels


def label_table(class_names: Sequence[str], ignore_index: int = 255) -> list[tuple[int, str, tuple[int, ...]]]:
    """(label value, name, RGB colour) for background, every class and the ignore label."""
    palette = voc_palette()
    values = [*range(len(class_names)), ignore_index]
    names = [*class_names, IGNORE_NAME]
    return [(value, name, tuple(int(c) for c in palette[value])) for value, name in zip(values, names, strict=True)]


def labelmap_txt(class_names: Sequence[str], ignore_index: int = 255) -> str:
    """CVAT/Datumaro `labelmap.txt`: `# label:color_rgb:parts:actions`, one `name:r,g,b::` per label."""
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{name}:{r},{g},{b}::" for _, name, (r, g, b) in label_table(class_names, ignore_index)]
    return "\n".join(lines) + "\n"


def coco_document(images: Iterable[ExportImage], class_names: Sequence[str], ignore_index: int = 255) -> dict[str, Any]:
    """A COCO instances-style document with one RLE annotation per image and label."""
    from pycocotools import mask as mask_utils

    categories = [
        {"id": value, "name": name, "supercategory": IGNORE_NAME if value == ignore_index else "object"}
        for value, name, _ in label_table(class_names, ignore_index)
        if value != 0
    ]
    document: dict[str, Any] = {
        "info": {"description": "wsss masks (label value = category id; background not annotated)", "version": "1.0"},
        "licenses": [],
        "images": [],
        "annotations": [],
        "categories": categories,
    }
    known = {c["id"] for c in categories}
    for number, image in enumerate(images, start=1):
        labels = _checked(image)
        document["images"].append(
            {
                "id": number,
                "file_name": image.file_name,
                "width": image.width,
                "height": image.height,
                "wsss_image_id": image.image_id,
                "wsss_origin": image.origin,
            }
        )
        for value in (int(v) for v in np.unique(labels)):
            if value == 0:
                continue
            if value not in known:
                raise ValueError(f"mask of {image.image_id!r} holds label {value}, which is not a category")
            rle = mask_utils.encode(np.asfortranarray(labels == value, dtype=np.uint8))
            document["annotations"].append(
                {
                    "id": len(document["annotations"]) + 1,
                    "image_id": number,
                    "category_id": value,
                    "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
                    "area": int(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": int(value == ignore_index),
                }
            )
    return document


def decode_coco_masks(document: dict[str, Any]) -> dict[str, np.ndarray]:
    """Label maps back from a COCO document written by `coco_document` (pycocotools decode)."""
    from pycocotools import mask as mask_utils

    labels = {image["id"]: np.zeros((image["height"], image["width"]), dtype=np.uint8) for image in document["images"]}
    for annotation in document["annotations"]:
        segmentation = dict(annotation["segmentation"])
        segmentation["counts"] = segmentation["counts"].encode("ascii")
        labels[annotation["image_id"]][mask_utils.decode(segmentation).astype(bool)] = annotation["category_id"]
    names = {image["id"]: image.get("wsss_image_id", PurePosixPath(image["file_name"]).stem) for image in document["images"]}
    return {names[key]: value for key, value in labels.items()}


def _rgb_png(labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(voc_palette()[labels]).save(buffer, format="PNG")
    return buffer.getvalue()


def write_cvat_zip(path: Path, images: Iterable[ExportImage], class_names: Sequence[str], ignore_index: int = 255) -> int:
    """CVAT "Segmentation mask 1.1" archive (import with that format name). Returns the image count."""
    names: list[str] = []
    with atomic_path(path) as temporary, zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("labelmap.txt", labelmap_txt(class_names, ignore_index))
        for image in images:
            name = PurePosixPath(image.file_name).stem
            if name in names:
                raise ValueError(f"two images are named {name!r}; CVAT matches masks to images by name")
            names.append(name)
            archive.writestr(f"SegmentationClass/{name}.png", _rgb_png(_checked(image)))
        archive.writestr("ImageSets/Segmentation/default.txt", "".join(f"{n}\n" for n in names))
    return len(names)


def labelstudio_config(class_names: Sequence[str], ignore_index: int = 255) -> str:
    """Labeling config of a Label Studio project the tasks import into (BrushLabels `tag` on `image`)."""
    labels = "\n".join(
        f'    <Label value={quoteattr(name)} background="#{r:02x}{g:02x}{b:02x}"/>'
        for value, name, (r, g, b) in label_table(class_names, ignore_index)
        if value != 0
    )
    return (
        f'<View>\n  <Image name="image" value="$image" zoom="true"/>\n  <BrushLabels name="tag" toName="image">\n'
        f"{labels}\n  </BrushLabels>\n</View>\n"
    )


def labelstudio_tasks(
    images: Iterable[ExportImage], class_names: Sequence[str], image_url_prefix: str = "/data/local-files/?d=", ignore_index: int = 255
) -> list[dict[str, Any]]:
    """One Label Studio task per image with its mask as a `brushlabels` prediction per label."""
    names = {value: name for value, name, _ in label_table(class_names, ignore_index)}
    tasks = []
    for image in images:
        labels = _checked(image)
        results = []
        for value in (int(v) for v in np.unique(labels)):
            if value == 0:
                continue
            if value not in names:
                raise ValueError(f"mask of {image.image_id!r} holds label {value}, which has no name")
            results.append(
                {
                    "id": f"{image.image_id}-{value}",
                    "type": "brushlabels",
                    "from_name": "tag",
                    "to_name": "image",
                    "original_width": image.width,
                    "original_height": image.height,
                    "image_rotation": 0,
                    "value": {"format": "rle", "rle": mask_to_rle(labels == value), "brushlabels": [names[value]]},
                }
            )
        tasks.append(
            {
                "data": {"image": image_url_prefix + image.file_name, "wsss_image_id": image.image_id},
                "predictions": [{"model_version": f"wsss-{image.origin}", "result": results}],
            }
        )
    return tasks


def export_folder(output: Path) -> Path:
    """`output` as the export's folder, created if missing.

    Raises:
        WsssError: naming it when it is an existing file or cannot be created.
    """
    if output.exists() and not output.is_dir():
        raise WsssError(f"{output}: is an existing file; the export writes into a folder (give a folder, it is created if missing)")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WsssError(f"{output}: cannot create the export folder ({error.strerror or error})") from None
    return output


def export_masks(
    kind: str,
    images: Sequence[ExportImage],
    class_names: Sequence[str],
    output: Path,
    ignore_index: int = 255,
    image_url_prefix: str = "/data/local-files/?d=",
) -> list[Path]:
    """Write `images` in format `kind` (one of FORMATS) under `output`; returns the files written."""
    if kind not in FORMATS:
        raise ValueError(f"unknown export format {kind!r}; choose one of {', '.join(FORMATS)}")
    export_folder(output)
    if kind == "coco":
        path = output / "annotations.json"
        write_bytes_atomic(path, json.dumps(coco_document(images, class_names, ignore_index)).encode())
        return [path]
    if kind == "cvat":
        path = output / CVAT_ZIP
        write_cvat_zip(path, images, class_names, ignore_index)
        return [path]
    if kind == "labelstudio":
        tasks, config = output / "tasks.json", output / "labeling_config.xml"
        write_bytes_atomic(tasks, json.dumps(labelstudio_tasks(images, class_names, image_url_prefix, ignore_index)).encode())
        write_bytes_atomic(config, labelstudio_config(class_names, ignore_index).encode())
        return [tasks, config]
    written = []
    (output / "masks").mkdir(exist_ok=True)
    for image in images:
        path = output / "masks" / f"{image.image_id}.png"
        write_bytes_atomic(path, palette_png_bytes(_checked(image)))
        written.append(path)
    labelmap = output / "labelmap.txt"
    write_bytes_atomic(labelmap, labelmap_txt(class_names, ignore_index).encode())
    return [*written, labelmap]
