"""What `prepare` says about a dataset: read / kept / skipped counts, one name, ground truth without
background, and a derived ground-truth folder DVC never finds empty (the stage entry, in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.prepare import run_prepare
from tests.unit.dataset_builders import write_coco_set, write_folder_set
from wsss.catalog import ArtifactLayout
from wsss.params import Params
from wsss.stage_inputs import read_manifest_meta, recorded_dataset_name

COCO = {"kind": "coco", "root": "data/coco128", "split": "val2014", "instances_json": "annotations/instances_val2014.json", "images_dir": "val2014"}
FOLDER = {"kind": "folder", "root": "data/pets", "images_dir": "images", "tags_file": "tags.csv", "ground_truth_dir": "masks"}


def prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: dict, classes: dict) -> tuple[dict, ArtifactLayout]:
    monkeypatch.chdir(tmp_path)
    params = Params.from_mapping({"data": data, "classes": classes})
    layout = ArtifactLayout.for_params(params)
    return run_prepare(params, layout).details, layout


def test_prepare_says_how_many_images_it_read_kept_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A COCO image without annotations was left out without a word (as CLIP-ES leaves it out)."""
    write_coco_set(tmp_path / "data/coco128")
    details, layout = prepare(tmp_path, monkeypatch, COCO, {"preset": "coco"})
    assert details["counts"] == "coco128: 4 read, 3 kept, 1 skipped (no annotations), 0 failed"
    report = json.loads(layout.prepare_failures.read_text())
    assert report["images_skipped"] == {"no annotations": 1} and report["images_failed"] == 0
    # The one name of the dataset, recorded for lineage and the review report (not the JSON's stem).
    meta = read_manifest_meta(layout)
    assert meta["dataset"] == "coco128" == recorded_dataset_name(meta)
    assert recorded_dataset_name({k: v for k, v in meta.items() if k != "dataset"}) == "coco128"  # older metas


def test_the_derived_ground_truth_folder_is_never_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DVC warned "'artifacts/ground_truth' is empty" (up to three times a stage) for every dataset whose
    ground truth is not derived; the folder keeps a README that the mask clean-up leaves alone."""
    write_folder_set(tmp_path / "data/pets")
    _, layout = prepare(tmp_path, monkeypatch, FOLDER, {"names": ["cat", "dog"]})
    assert [p.name for p in layout.ground_truth.iterdir()] == ["README.md"]
    write_coco_set(tmp_path / "data/coco128")
    _, layout = prepare(tmp_path, monkeypatch, COCO, {"preset": "coco"})
    names = sorted(p.name for p in layout.ground_truth.iterdir())
    assert "README.md" in names and len(names) == 4  # + the three rasterised masks


def test_ground_truth_without_background_is_warned_with_the_suggestion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    masks = write_folder_set(tmp_path / "data/pets")
    details, layout = prepare(tmp_path, monkeypatch, FOLDER, {"names": ["cat", "dog"]})
    assert details["ground_truth"] == {"masks": 2, "with_background": 2, "warning": None}

    for relative, labels in (("kitten.png", masks["kitten"]), ("sub/puppy.png", masks["puppy"])):
        no_background = np.where(labels == 0, 2, labels).astype(np.uint8)  # every pixel a class or void
        Image.fromarray(no_background).save(tmp_path / "data/pets/masks" / relative)
    details, layout = prepare(tmp_path, monkeypatch, FOLDER, {"names": ["cat", "dog"]})
    census = read_manifest_meta(layout)["ground_truth"]
    assert census["masks"] == 2 and census["with_background"] == 0 and census == details["ground_truth"]
    assert "none of the 2 masks has a pixel labelled 0" in census["warning"]
    assert "classes.background: []" in census["warning"]
