"""Dataset files that broke `prepare` as a whole or slipped through (issue 11.9, dataset parts)."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from tests.unit.dataset_builders import photo
from wsss.datasets import load_coco, load_folder, load_voc
from wsss.errors import DatasetError
from wsss.failures import FailureReport

CLASSES = ("cat", "dog")
DEEP = 100_000


@pytest.mark.parametrize("name", ["tags.json", "instances.json"])
def test_deeply_nested_json_is_refused_naming_the_file(tmp_path: Path, name: str) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / name).write_text('{"a.jpg": ' + "[" * DEEP + "]" * DEEP + "}")
    with pytest.raises(DatasetError, match=rf"{name}: JSON nested deeper than 64 levels"):
        if name == "tags.json":
            load_folder(tmp_path, "images", name, CLASSES, failures=FailureReport("prepare"))
        else:
            load_coco(tmp_path, name, "images", CLASSES, failures=FailureReport("prepare"))


def voc_tree(root: Path, ids: list[str]) -> None:
    for sub in ("JPEGImages", "Annotations", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in ids))
    for seed, image_id in enumerate(ids):
        Image.fromarray(photo(seed)).save(root / f"JPEGImages/{image_id}.jpg")
        (root / f"Annotations/{image_id}.xml").write_text("<annotation><object><name>cat</name></object></annotation>")


def test_annotation_symlinked_out_of_the_root_costs_only_its_image(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    voc_tree(root, ["inside", "escaping"])
    outside = tmp_path / "secret.xml"
    outside.write_text("<annotation><object><name>dog</name></object></annotation>")
    (root / "Annotations/escaping.xml").unlink()
    os.symlink(outside, root / "Annotations/escaping.xml")
    failures = FailureReport("prepare")
    manifest = load_voc(root, "train", CLASSES, None, failures=failures)
    assert [r.image_id for r in manifest.records] == ["inside"]
    (failure,) = failures.failures
    assert failure.image == "escaping" and failure.file.endswith("Annotations/escaping.xml")
    assert "outside the dataset root" in failure.reason


NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")


@pytest.mark.parametrize(("first", "later"), [("cat_01", "CAT_01"), (NFC, NFD)])
def test_ids_differing_by_case_or_normalisation_refuse_the_later_one(tmp_path: Path, first: str, later: str) -> None:
    """On macOS/Windows the two names are one file: keep the first, refuse the later naming both."""
    assert first != later
    root = tmp_path / "folder"
    (root / "images").mkdir(parents=True)
    for seed, stem in enumerate((first, "other", later)):
        Image.fromarray(photo(seed)).save(root / "images" / f"{stem}.jpg")
    (root / "tags.json").write_text(json.dumps({f"{first}.jpg": ["cat"], "other.jpg": ["dog"], f"{later}.jpg": ["cat"]}))
    failures = FailureReport("prepare")
    manifest = load_folder(root, "images", "tags.json", CLASSES, failures=failures)
    assert sorted(r.image_id for r in manifest.records) == sorted([first, "other"])
    (failure,) = failures.failures
    assert failure.image == later
    assert f"image id {later!r} differs from the earlier id {first!r} only by case or Unicode normalisation" in failure.reason
    with pytest.raises(DatasetError, match="only by case or Unicode normalisation"):
        load_folder(root, "images", "tags.json", CLASSES)


def test_voc_and_coco_ids_differing_by_case_refuse_the_later_one(tmp_path: Path) -> None:
    voc = tmp_path / "voc"
    voc_tree(voc, ["img_b", "IMG_A", "img_a"])
    failures = FailureReport("prepare")
    manifest = load_voc(voc, "train", CLASSES, None, failures=failures)
    assert [r.image_id for r in manifest.records] == ["IMG_A", "img_b"]
    assert [(f.image, "'img_a' differs from the earlier id 'IMG_A'" in f.reason) for f in failures.failures] == [("img_a", True)]
    coco = tmp_path / "coco"
    (coco / "images").mkdir(parents=True)
    for seed, stem in enumerate(("Dog", "dog")):
        Image.fromarray(photo(seed)).save(coco / "images" / f"{stem}.jpg")
    (coco / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "dog.jpg"}, {"id": 2, "file_name": "Dog.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1}, {"id": 2, "image_id": 2, "category_id": 1}],
        "categories": [{"id": 1, "name": "dog"}],
    }))  # fmt: skip
    failures = FailureReport("prepare")
    manifest = load_coco(coco, "instances.json", "images", CLASSES, failures=failures)
    assert [r.image_id for r in manifest.records] == ["Dog"]  # file-name order: "Dog.jpg" < "dog.jpg"
    assert [(f.image, "'dog' differs from the earlier id 'Dog'" in f.reason) for f in failures.failures] == [("dog", True)]
