"""Datasets as users have them, end to end: COCO as published under `dvc repro` with `preset: coco`,
a folder set with GT PNGs and a VOC set with masks but no XML through prepare..evaluate.

Every dataset is built by the tests' own code (`tests/unit/dataset_builders.py`); CLIP is
random-init, so only what the data decides is checked: which images, which ground truth, which
pixels and classes are scored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.params_edit import edit_params
from tests.pipeline.repos import copy_repo, golden, make_pipeline_repo, pipeline_env, run
from tests.unit.dataset_builders import write_coco_set, write_folder_set, write_voc_masks_only

pytestmark = pytest.mark.slow
COCO_DATA = {
    "kind": "coco", "root": "data/coco", "split": "val2014", "ground_truth_dir": None,
    "instances_json": "annotations/instances_val2014.json", "images_dir": "val2014", "tags_file": None,
    "tags_from": "annotations",
}  # fmt: skip


def scored_pixels(labels: dict[str, np.ndarray], num_classes: int) -> int:
    return int(sum(((gt < num_classes) & (gt != 255)).sum() for gt in labels.values()))


def scored_classes(labels: dict[str, np.ndarray], names: list[str]) -> set[str]:
    return {names[v] for gt in labels.values() for v in np.unique(gt).tolist() if v != 255}


def build_coco_run(path: Path, api_url: str) -> str:
    make_pipeline_repo(path)
    write_coco_set(path / "data/coco")
    edit_params(path, {"data": COCO_DATA, "classes": {"preset": "coco"}})
    return run([sys.executable, "-m", "dvc", "repro"], path, pipeline_env(path, api_url)).stdout


@pytest.fixture(scope="session")
def coco_run(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> tuple[Path, str]:
    """The COCO set as published through `dvc repro` with `preset: coco`, once per test run."""
    return golden(tmp_path_factory, "coco-run", lambda path: build_coco_run(path, prefect_server))


@pytest.fixture
def coco_repo(coco_run: tuple[Path, str], tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """This test's copy of the finished COCO run, and the ground truth the set was written with."""
    return copy_repo(coco_run[0], tmp_path / "repo"), write_coco_set(tmp_path / "expected")


def test_coco_as_published_runs_under_dvc_repro_with_the_preset(coco_repo) -> None:
    path, expected = coco_repo
    prepare = path / "artifacts/prepare"
    failures = json.loads((prepare / "failures.json").read_text())
    assert failures["images_failed"] == 0, failures
    manifest = json.loads((prepare / "manifest.json").read_text())
    assert sorted(r["image_id"] for r in manifest["records"]) == sorted(expected)
    for record in manifest["records"]:
        assert record["ground_truth_root"] == "derived"
        with Image.open(path / "artifacts/ground_truth" / record["ground_truth_path"]) as handle:
            np.testing.assert_array_equal(np.asarray(handle), expected[record["image_id"]], err_msg=record["image_id"])
    vocabulary = json.loads((path / "artifacts/prompts/vocabulary.json").read_text())
    assert len(vocabulary["classes"]) == 80 and len(vocabulary["background_words"]) == 23
    tv = next(entry for entry in vocabulary["classes"] if entry["name"] == "tvmonitor")
    assert tv["dataset_names"] == ["tv"] and tv["prompt"] == "a clean origami tvmonitor screen."


def test_derived_ground_truth_survives_a_prepare_rerun_and_is_reused(coco_repo, prefect_server: str) -> None:
    """DVC deletes a stage's outputs before it runs it; the rasterised COCO masks are a persisted
    output of their own, so a rerun of `prepare` finds them and rasterises nothing again."""
    path, _ = coco_repo
    derived = sorted((path / "artifacts/ground_truth").glob("*.png"))
    assert len(derived) == 3
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in derived}
    edit_params(path, {"reliability.max_failed_share": 0.5})  # a prepare param: DVC reruns prepare (and empties artifacts/prepare)
    run([sys.executable, "-m", "dvc", "repro", "prepare"], path, pipeline_env(path, prefect_server))
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (path / "artifacts/ground_truth").glob("*.png")}
    assert after == before  # the same files, not written again


def test_coco_scores_come_from_the_json_masks(coco_repo) -> None:
    """Every metric counts the JSON's pixels (crowd ignored) and reports IoU per class present there."""
    from wsss.text.vocabulary import COCO_CLASS_NAMES

    path, expected = coco_repo
    metrics = json.loads((path / "artifacts/metrics.json").read_text())
    assert metrics["num_images_with_ground_truth"] == 3
    pixels = scored_pixels(expected, 81)
    assert pixels == 3 * 64 * 48 - (18 * 40 - 10 * 10)  # the crowd region outside the couch is not scored
    split = metrics["val2014"]
    assert split["cam_raw"]["alpha=1"]["num_pixels"] == pixels
    assert split["pseudo"]["crf=on"]["num_pixels"] == pixels
    assert split["model"]["scales=1.crf=off"]["num_pixels"] == pixels
    names = ["background", *COCO_CLASS_NAMES]
    rows = json.loads((path / "artifacts/plots/per_class_iou.json").read_text())
    present = scored_classes(expected, names)
    assert present == {"background", "person", "dog", "motorbike", "tvmonitor", "sofa", "aeroplane", "pottedplant", "diningtable"}
    for artifact in ("cam_raw.alpha=1", "pseudo.crf=on"):
        assert present <= {row["class"] for row in rows if row["artifact"] == artifact}, artifact


def run_through_evaluate(workdir: Path, data: dict, classes: dict) -> dict:
    from flows.cams import cams_flow
    from flows.evaluate import evaluate_flow
    from flows.prepare import prepare_flow
    from flows.prompts import prompts_flow
    from flows.pseudo import pseudo_flow
    from flows.refine import refine_flow

    edit_params(workdir, {"data": data, "classes": classes})
    prepare_flow("params.yaml")
    prompts_flow("params.yaml")
    cams_flow("params.yaml")
    refine_flow("params.yaml")
    pseudo_flow("params.yaml")
    return evaluate_flow("params.yaml")


def test_folder_set_with_ground_truth_pngs_runs_and_scores(harness, workdir: Path) -> None:
    expected = write_folder_set(workdir / "data/folder")
    edit_params(workdir, {"prompts.pin": None})
    data = {"kind": "folder", "root": "data/folder", "images_dir": "images", "tags_file": "tags.csv", "ground_truth_dir": "masks"}
    metrics = run_through_evaluate(workdir, data, {"names": ["cat", "dog"]})
    assert metrics["num_images_with_ground_truth"] == 2
    assert metrics["train"]["cam_refined"]["alpha=1"]["num_pixels"] == scored_pixels(expected, 3)
    vocabulary = json.loads((workdir / "artifacts/prompts/vocabulary.json").read_text())
    assert [w["word"] for w in vocabulary["background_words"]][:3] == ["ground", "land", "grass"]
    # No pinned template here: the prompts stage's ranking picks it, and the document shows the
    # final prompt strings with it (prepare could only write null prompts).
    selected = json.loads((workdir / "artifacts/prompts/scores.json").read_text())["selected"]
    assert vocabulary["template"] == selected and vocabulary["background_words"][0]["prompt"] == selected.format("ground")
    assert [c["prompt"] for c in vocabulary["classes"]] == [selected.format("cat"), selected.format("dog")]


def test_voc_set_with_masks_and_no_xml_runs_and_scores(harness, workdir: Path) -> None:
    write_voc_masks_only(workdir / "data/voc")
    data = {"kind": "voc", "root": "data/voc", "split": "train", "tags_from": "ground_truth"}
    metrics = run_through_evaluate(workdir, data, {"preset": "voc"})
    manifest = json.loads((workdir / "artifacts/prepare/manifest.json").read_text())
    assert {r["image_id"]: r["tags"] for r in manifest["records"]} == {
        "2007_000001": ["bicycle", "person"], "2007_000002": ["cat"],
    }  # fmt: skip
    assert metrics["num_images_with_ground_truth"] == 2
    assert metrics["train"]["pseudo"]["crf=on"]["num_pixels"] == 2 * 64 * 48 - 2 * 64  # the 255 rows are not scored


def test_a_background_word_equal_to_a_class_stops_prepare_naming_it(harness, workdir: Path) -> None:
    from flows.prepare import prepare_flow
    from wsss.errors import ConfigError

    write_folder_set(workdir / "data/folder")
    edit_params(
        workdir,
        {
            "data": {"kind": "folder", "root": "data/folder", "images_dir": "images", "tags_file": "tags.csv"},
            "classes": {"names": ["cat", "dog", "grass"], "background": ["sky", "grass"]},
        },
    )
    with pytest.raises(ConfigError, match=r"classes: background word 'grass' is also class 'grass'"):
        prepare_flow("params.yaml")
