"""COCO as published: official names through the vocabulary's table, ground truth from the JSON's masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.unit.dataset_builders import HEIGHT, WIDTH, compressed_rle, rect_mask, uncompressed_rle, write_coco_set
from wsss.datasets import load_coco, load_dataset
from wsss.datasets.coco_masks import instance_mask, rle_string_counts, semantic_label_map
from wsss.datasets.validation import validate_images
from wsss.errors import DatasetError
from wsss.failures import FailureReport
from wsss.text import coco_vocabulary

JSON = "annotations/instances_val2014.json"


def test_hand_drawn_polygon_is_rasterised_pixel_for_pixel() -> None:
    """An L-shaped polygon with corners on pixel corners covers exactly the unit squares inside it."""
    ring = [2.0, 1.0, 4.0, 1.0, 4.0, 4.0, 7.0, 4.0, 7.0, 6.0, 2.0, 6.0]
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(instance_mask([ring], 8, 9), expected)


def test_overlap_rule_smaller_wins_ties_first_listed_crowd_ignored_only_where_unlabelled() -> None:
    big, small = rect_mask(0, 0, 30, 30), rect_mask(10, 10, 20, 20)
    tie_a, tie_b = rect_mask(40, 0, 50, 10), rect_mask(45, 0, 55, 10)
    crowd = rect_mask(0, 25, 64, 48)
    annotations = [
        {"id": 1, "segmentation": uncompressed_rle(big)},
        {"id": 2, "segmentation": compressed_rle(small)},
        {"id": 3, "segmentation": compressed_rle(tie_a)},
        {"id": 4, "segmentation": compressed_rle(tie_b)},
        {"id": 5, "segmentation": uncompressed_rle(crowd), "iscrowd": 1},
    ]
    labels = semantic_label_map(annotations, [1, 2, 3, 4, 9], HEIGHT, WIDTH)
    expected = np.zeros((HEIGHT, WIDTH), np.uint8)
    expected[25:48, :] = 255
    expected[0:30, 0:30] = 1
    expected[10:20, 10:20] = 2
    expected[0:10, 45:55] = 4
    expected[0:10, 40:50] = 3
    np.testing.assert_array_equal(labels, expected)
    # The order in the JSON decides only ties: listing the small one first changes nothing.
    swapped = semantic_label_map([annotations[1], annotations[0], *annotations[2:]], [2, 1, 3, 4, 9], HEIGHT, WIDTH)
    np.testing.assert_array_equal(swapped, expected)


def test_rle_string_decoder_matches_pycocotools() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = (rng.random((HEIGHT, WIDTH)) < rng.random()).astype(np.uint8)
        rle = compressed_rle(mask)
        assert rle_string_counts(rle["counts"]) == uncompressed_rle(mask)["counts"]
        np.testing.assert_array_equal(instance_mask(rle, HEIGHT, WIDTH), mask)


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        ({"size": [HEIGHT, WIDTH], "counts": [0, HEIGHT * WIDTH + 100]}, r"cover 3172 pixels, the image has 3072"),
        ({"size": [HEIGHT, WIDTH], "counts": "00000000000000000000009"}, r"cover"),
        ({"size": [10, 10], "counts": [100]}, r"RLE size \[10, 10\] is not the image's"),
        ({"size": [HEIGHT, WIDTH], "counts": "ab\x01"}, r"not in the RLE alphabet"),
        ({"size": [HEIGHT, WIDTH], "counts": "o"}, r"ends inside a number"),
        ([[1.0, 2.0, float("nan"), 3.0, 4.0, 4.0]], r"not finite"),
        ([[1.0, 2.0, 1e9, 3.0, 4.0, 4.0]], r"far outside"),
        ([[1.0, 2.0, 3.0]], r"odd number of coordinates"),
        ([["1", 2, 3, 4, 5, 6]], r"list of number lists"),
        ("polygon", r"polygon list or an RLE object"),
        # prepare and the corrections import share these checks (issue 23): an outline pycocotools would
        # need gigabytes for, and a run length whose digits alone cost quadratic time.
        ([[float(v) for i in range(12_000) for v in ((WIDTH - 1) * (i % 2), i / 400)]], r"outline is \d+ pixels long"),
        ({"size": [HEIGHT, WIDTH], "counts": "o" * 50_000 + "0"}, r"run length at 13 has more than 64 bits"),
    ],
)
def test_malformed_segmentations_are_refused_before_pycocotools(segmentation: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        instance_mask(segmentation, HEIGHT, WIDTH)


def test_degenerate_ring_is_not_read_as_a_box() -> None:
    """pycocotools reads a 4-number first ring as a bbox; two-point rings enclose nothing and are dropped."""
    mask = instance_mask([[0.0, 0.0, 30.0, 30.0], [1.0, 1.0, 3.0, 1.0, 3.0, 2.0, 1.0, 2.0]], HEIGHT, WIDTH)
    np.testing.assert_array_equal(mask, rect_mask(1, 1, 3, 2))


@pytest.fixture
def coco_set(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "coco"
    return root, write_coco_set(root)


def test_official_coco_json_loads_with_the_preset_and_masks_become_ground_truth(coco_set, tmp_path: Path) -> None:
    """Official names map through the preset's table; every label map equals the hand-written one."""
    root, expected = coco_set
    vocabulary = coco_vocabulary()
    derived = tmp_path / "derived"
    failures = FailureReport("prepare")
    manifest = load_dataset(
        "coco",
        root,
        vocabulary.class_names,
        rename=vocabulary.rename,
        instances_json=JSON,
        images_dir="val2014",
        derived_ground_truth=derived,
        failures=failures,
    )
    assert failures.failures == []
    assert [r.image_id for r in manifest.records] == sorted(expected)
    tags = {r.image_id: r.tags for r in manifest.records}
    # Ascending class id, as the reference's coco14 lists (not the JSON's annotation order).
    assert tags["COCO_val2014_000000000042"] == ("person", "motorbike", "dog")
    assert tags["COCO_val2014_000000000073"] == ("person", "sofa", "tvmonitor")
    assert tags["COCO_val2014_000000000139"] == ("aeroplane", "pottedplant", "diningtable")
    for record in manifest.records:
        assert record.ground_truth_root == "derived"
        assert record.ground_truth_path.startswith(record.image_id + ".")
        with Image.open(derived / record.ground_truth_path) as handle:
            assert handle.mode == "P"
            np.testing.assert_array_equal(np.asarray(handle), expected[record.image_id], err_msg=record.image_id)
    checked = validate_images(manifest, root, None, failures, derived)
    assert checked.records == manifest.records and failures.failures == []


def test_derived_ground_truth_is_cached_by_content(coco_set, tmp_path: Path) -> None:
    root, _ = coco_set
    vocabulary = coco_vocabulary()
    derived = tmp_path / "derived"

    def load() -> dict[str, str]:
        manifest = load_coco(root, JSON, "val2014", vocabulary.class_names, category_to_class=vocabulary.rename, derived_ground_truth=derived)
        return {r.image_id: r.ground_truth_path for r in manifest.records}

    first = load()
    stamps = {name: (derived / name).stat().st_mtime_ns for name in first.values()}
    (derived / "stale.0123456789abcdef.png").write_bytes(b"old")
    assert load() == first
    assert {name: (derived / name).stat().st_mtime_ns for name in first.values()} == stamps  # reused, not rewritten
    assert not (derived / "stale.0123456789abcdef.png").exists()
    data = json.loads((root / JSON).read_text())
    data["annotations"][1]["segmentation"] = [[20.0, 20.0, 30.0, 20.0, 30.0, 30.0, 20.0, 30.0]]  # 42's dog changes
    (root / JSON).write_text(json.dumps(data))
    second = load()
    changed = {image_id for image_id in first if first[image_id] != second[image_id]}
    assert changed == {"COCO_val2014_000000000042"}
    assert sorted(p.name for p in derived.iterdir()) == sorted(second.values())


def test_malformed_segmentation_costs_one_image_naming_the_annotation(coco_set, tmp_path: Path) -> None:
    root, expected = coco_set
    data = json.loads((root / JSON).read_text())
    data["annotations"][4]["segmentation"]["counts"][-1] += 5  # the couch of 73 overruns the image
    (root / JSON).write_text(json.dumps(data))
    vocabulary = coco_vocabulary()
    failures = FailureReport("prepare")
    manifest = load_coco(
        root,
        JSON,
        "val2014",
        vocabulary.class_names,
        category_to_class=vocabulary.rename,
        derived_ground_truth=tmp_path / "derived",
        failures=failures,
    )
    assert [r.image_id for r in manifest.records] == sorted(set(expected) - {"COCO_val2014_000000000073"})
    (failure,) = failures.failures
    assert failure.image == "COCO_val2014_000000000073" and failure.file.endswith("instances_val2014.json")
    assert "annotation 5: RLE runs cover 3077 pixels, the image has 3072" in failure.reason


def test_partly_segmented_image_is_refused_and_box_only_sets_get_no_ground_truth(coco_set, tmp_path: Path) -> None:
    root, _ = coco_set
    vocabulary = coco_vocabulary()
    data = json.loads((root / JSON).read_text())
    del data["annotations"][0]["segmentation"]
    (root / JSON).write_text(json.dumps(data))
    failures = FailureReport("prepare")
    load_coco(
        root,
        JSON,
        "val2014",
        vocabulary.class_names,
        category_to_class=vocabulary.rename,
        derived_ground_truth=tmp_path / "derived",
        failures=failures,
    )
    assert [(f.image, "annotation(s) [1] have no 'segmentation'" in f.reason) for f in failures.failures] == [("COCO_val2014_000000000042", True)]
    for entry in data["annotations"]:
        entry.pop("segmentation", None)
    (root / JSON).write_text(json.dumps(data))
    manifest = load_coco(
        root, JSON, "val2014", vocabulary.class_names, category_to_class=vocabulary.rename, derived_ground_truth=tmp_path / "derived"
    )
    assert len(manifest.records) == 3 and all(r.ground_truth_path is None for r in manifest.records)


def test_ready_made_png_folder_replaces_the_json_masks_and_must_exist(coco_set, tmp_path: Path) -> None:
    root, _ = coco_set
    vocabulary = coco_vocabulary()
    args = (root, JSON, "val2014", vocabulary.class_names)
    with pytest.raises(DatasetError, match=r"ground_truth_dir 'masks': no such folder .*data\.ground_truth_dir"):
        load_coco(*args, "masks", category_to_class=vocabulary.rename, derived_ground_truth=tmp_path / "d")
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((HEIGHT, WIDTH), np.uint8)).save(root / "masks/COCO_val2014_000000000073.png")
    manifest = load_coco(*args, "masks", category_to_class=vocabulary.rename, derived_ground_truth=tmp_path / "d")
    assert [(r.image_id, r.ground_truth_path, r.ground_truth_root) for r in manifest.records if r.ground_truth_path] == [
        ("COCO_val2014_000000000073", "masks/COCO_val2014_000000000073.png", "dataset")
    ]
    assert not (tmp_path / "d").exists()


def test_custom_coco_format_set_maps_its_names_from_params(tmp_path: Path) -> None:
    """A custom COCO-format set spells its classes its own way; classes.dataset_names maps them."""
    from wsss.settings import build_section
    from wsss.text.classes import ClassesSettings

    root = tmp_path / "custom"
    write_coco_set(root)
    vocabulary = build_section(ClassesSettings, {
        "names": ["human", "hound", "moped", "plane", "settee", "plant", "table", "screen"],
        "dataset_names": {"person": "human", "dog": "hound", "motorcycle": "moped", "airplane": "plane",
                          "couch": "settee", "potted plant": "plant", "dining table": "table", "tv": "screen"},
    }, "classes").vocabulary()  # fmt: skip
    manifest = load_coco(
        root, JSON, "val2014", vocabulary.class_names, category_to_class=vocabulary.rename, derived_ground_truth=tmp_path / "derived"
    )
    assert manifest.records[0].tags == ("human", "hound", "moped")
    with Image.open(tmp_path / "derived" / manifest.records[0].ground_truth_path) as handle:
        assert set(np.unique(np.asarray(handle)).tolist()) == {0, 1, 2, 3}
