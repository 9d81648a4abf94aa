"""Exports: COCO RLE round-trips exactly through pycocotools; CVAT and Label Studio files follow
their documented formats (decoded here independently of the encoder)."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image

from wsss.review.brush_rle import encode_rle, mask_to_rle
from wsss.review.exports import CVAT_ZIP, ExportImage, decode_coco_masks, export_masks

CLASS_NAMES = ["background", "cat", "dog", "person"]


def hand_mask(height: int = 7, width: int = 9) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[1:4, 1:5] = 1
    mask[4:7, 5:9] = 3
    mask[0, 6:9] = 255  # ignored
    mask[6, 0] = 1  # a lone pixel (runs of one)
    return mask


def images_of(masks: dict[str, np.ndarray]) -> list[ExportImage]:
    return [ExportImage(i, f"JPEGImages/{i}.jpg", m.shape[1], m.shape[0], lambda m=m: m) for i, m in masks.items()]


def test_coco_rle_decoded_by_pycocotools_equals_the_png(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    masks = {"a": hand_mask(), "b": np.zeros((5, 4), dtype=np.uint8), "c": np.full((3, 3), 2, dtype=np.uint8)}
    export_masks("png", images_of(masks), CLASS_NAMES, tmp_path / "png")
    (path,) = export_masks("coco", images_of(masks), CLASS_NAMES, tmp_path / "coco")
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
        coco = COCO(str(path))
    for image in coco.dataset["images"]:
        with Image.open(tmp_path / "png" / "masks" / f"{image['wsss_image_id']}.png") as png:
            assert png.mode == "P"
            expected = np.asarray(png)
        decoded = np.zeros((image["height"], image["width"]), dtype=np.uint8)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
            decoded[coco.annToMask(annotation).astype(bool)] = annotation["category_id"]
        np.testing.assert_array_equal(decoded, expected)
        np.testing.assert_array_equal(expected, masks[image["wsss_image_id"]])
    assert {c["name"]: c["id"] for c in coco.dataset["categories"]} == {"cat": 1, "dog": 2, "person": 3, "ignore": 255}
    crowd = [a for a in coco.dataset["annotations"] if a["iscrowd"]]
    assert [a["category_id"] for a in crowd] == [255] and crowd[0]["area"] == 3
    assert decode_coco_masks(json.loads(path.read_text()))["a"].tolist() == masks["a"].tolist()


def test_an_unknown_label_is_refused() -> None:
    from wsss.review.exports import coco_document

    with pytest.raises(ValueError, match="label 9"):
        coco_document(images_of({"a": np.full((2, 2), 9, np.uint8)}), CLASS_NAMES)


def test_cvat_segmentation_mask_zip_follows_the_documented_layout(tmp_path: Path) -> None:
    masks = {"a": hand_mask(), "b": np.full((3, 5), 2, dtype=np.uint8)}
    (path,) = export_masks("cvat", images_of(masks), CLASS_NAMES, tmp_path)
    assert path.name == CVAT_ZIP
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert names == {"labelmap.txt", "ImageSets/Segmentation/default.txt", "SegmentationClass/a.png", "SegmentationClass/b.png"}
        assert archive.read("ImageSets/Segmentation/default.txt").decode().split() == ["a", "b"]
        lines = archive.read("labelmap.txt").decode().splitlines()
        assert lines[0].startswith("#")
        colours = {}
        for line in lines[1:]:
            name, colour, parts, actions = line.split(":")  # label:color_rgb:parts:actions
            assert parts == "" and actions == ""
            colours[tuple(int(v) for v in colour.split(","))] = name
        assert list(colours.values()) == ["background", "cat", "dog", "person", "ignore"]
        assert next(k for k, v in colours.items() if v == "background") == (0, 0, 0)
        value_of = {name: (255 if name == "ignore" else CLASS_NAMES.index(name)) for name in colours.values()}
        for image_id, mask in masks.items():
            with Image.open(io.BytesIO(archive.read(f"SegmentationClass/{image_id}.png"))) as png:
                assert png.mode == "RGB"
                rgb = np.asarray(png)
            decoded = np.array([[value_of[colours[tuple(int(c) for c in px)]] for px in row] for row in rgb], dtype=np.uint8)
            np.testing.assert_array_equal(decoded, mask)


def rle_pack_decode(data: list[int]) -> np.ndarray:
    """The documented rle-pack decoder (thi.ng/umbrella `decode`), written out for the test."""
    bits = "".join(f"{byte:08b}" for byte in data)
    position = 0

    def read(count: int) -> int:
        nonlocal position
        value = int(bits[position : position + count], 2) if count else 0
        position += count
        return value

    total, word = read(32), read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(total, dtype=np.uint8)
    index = 0
    while index < total:
        repeated = read(1)
        end = index + 1 + read(sizes[read(2)])
        if repeated:
            out[index:end] = read(word)
            index = end
        else:
            while index < end:
                out[index] = read(word)
                index += 1
    return out


def test_rle_pack_handles_single_values_and_runs_longer_than_two_to_the_sixteen() -> None:
    values = np.concatenate([[7], np.full(70000, 3), [1, 2], np.full(9, 0)]).astype(np.uint8)
    np.testing.assert_array_equal(rle_pack_decode(encode_rle(values)), values)
    assert rle_pack_decode(encode_rle(np.zeros(0, np.uint8))).size == 0


def test_label_studio_tasks_and_config_follow_the_brush_format(tmp_path: Path) -> None:
    masks = {"a": hand_mask(), "big": np.ones((200, 400), dtype=np.uint8)}
    tasks_path, config_path = export_masks("labelstudio", images_of(masks), CLASS_NAMES, tmp_path, image_url_prefix="/data/local-files/?d=ds/")
    config = ElementTree.fromstring(config_path.read_text())  # noqa: S314 - the export's own output
    image = config.find("Image")
    brush = config.find("BrushLabels")
    assert image is not None and brush is not None and image.get("value") == "$image"
    assert brush.get("toName") == image.get("name")
    labels = {label.get("value") for label in brush.findall("Label")}
    assert labels == {"cat", "dog", "person", "ignore"}
    tasks = json.loads(tasks_path.read_text())
    assert [t["data"]["image"] for t in tasks] == ["/data/local-files/?d=ds/JPEGImages/a.jpg", "/data/local-files/?d=ds/JPEGImages/big.jpg"]
    for task in tasks:
        mask = masks[task["data"]["wsss_image_id"]]
        (prediction,) = task["predictions"]
        seen = set()
        for result in prediction["result"]:
            assert result["type"] == "brushlabels" and result["from_name"] == brush.get("name") and result["to_name"] == image.get("name")
            assert (result["original_height"], result["original_width"]) == mask.shape
            assert result["value"]["format"] == "rle"
            (name,) = result["value"]["brushlabels"]
            assert name in labels
            value = 255 if name == "ignore" else CLASS_NAMES.index(name)
            # Label Studio reads the alpha channel of the decoded RGBA image.
            alpha = rle_pack_decode(result["value"]["rle"]).reshape(*mask.shape, 4)[..., 3]
            np.testing.assert_array_equal(alpha > 0, mask == value)
            seen.add(value)
        assert seen == set(np.unique(mask).tolist()) - {0}


def test_mask_to_rle_is_the_alpha_channel_repeated_four_times() -> None:
    mask = np.array([[1, 0], [0, 1]], dtype=bool)
    decoded = rle_pack_decode(mask_to_rle(mask)).reshape(2, 2, 4)
    assert decoded[..., 3].tolist() == [[255, 0], [0, 255]] and (decoded[..., 0] == decoded[..., 3]).all()


def test_palette_png_export_writes_the_pipeline_mask_format(tmp_path: Path) -> None:
    written = export_masks("png", images_of({"a": hand_mask()}), CLASS_NAMES, tmp_path)
    assert [p.name for p in written] == ["a.png", "labelmap.txt"]
    with Image.open(written[0]) as png:
        assert png.mode == "P" and np.asarray(png).tolist() == hand_mask().tolist()
    with pytest.raises(ValueError, match="unknown export format"):
        export_masks("yolo", [], CLASS_NAMES, tmp_path)
