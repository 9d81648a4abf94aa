"""Ground truth: accepted encodings checked in prepare, one reader for every metric, GT of every format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.unit.dataset_builders import HEIGHT, WIDTH, photo, write_folder_set, write_voc_masks_only
from wsss.datasets import ImageRecord, Manifest, load_folder, load_voc
from wsss.datasets.validation import validate_images
from wsss.errors import DatasetError
from wsss.failures import FailureReport
from wsss.text.vocabulary import VOC_CLASS_NAMES

CLASSES = ("cat", "dog")


def voc_with_masks(root: Path, masks: dict[str, Image.Image]) -> None:
    """A VOC tree (XML tags "cat") whose SegmentationClass PNGs are the given images."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Segmentation", "SegmentationClass"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in masks))
    for seed, (image_id, mask) in enumerate(masks.items()):
        Image.fromarray(photo(seed)).save(root / f"JPEGImages/{image_id}.jpg")
        (root / f"Annotations/{image_id}.xml").write_text("<annotation><object><name>cat</name></object></annotation>")
        mask.save(root / f"SegmentationClass/{image_id}.png")


def labels16(value: int) -> Image.Image:
    """A 16-bit single-channel PNG image: class 1 everywhere, `value` in one corner."""
    array = np.ones((HEIGHT, WIDTH), np.uint16)
    array[:4, :4] = value
    return Image.fromarray(array)


def test_ground_truth_encodings_are_checked_per_image_naming_the_file(tmp_path: Path) -> None:
    """RGB, two-level and out-of-range masks (8- and 16-bit) leave prepare; good encodings stay."""
    good = np.zeros((HEIGHT, WIDTH), np.uint8)
    good[10:20, 10:20] = 2
    good[0, :] = 255
    voc_with_masks(tmp_path, {
        "index_png": Image.fromarray(good),
        "palette_png": Image.frombytes("P", (WIDTH, HEIGHT), good.tobytes()),
        "sixteen_bit_ok": labels16(255),
        "rgb": Image.fromarray(np.dstack([good] * 3)),
        "two_level": Image.fromarray(good > 0),
        "value_3": Image.fromarray(np.where(good == 2, 3, good).astype(np.uint8)),
        "sixteen_bit_271": labels16(271),
    })  # fmt: skip
    failures = FailureReport("prepare")
    manifest = validate_images(load_voc(tmp_path, "train", CLASSES, failures=failures), tmp_path, None, failures)
    assert [r.image_id for r in manifest.records] == ["index_png", "palette_png", "sixteen_bit_ok"]
    reasons = {failure.image: failure.reason for failure in failures.failures}
    assert set(reasons) == {"rgb", "two_level", "value_3", "sixteen_bit_271"}
    for image_id, reason in reasons.items():
        assert f"SegmentationClass/{image_id}.png" in reason, reason
    assert "is a mode 'RGB' image; label maps must be palette (mode P) or single-channel index PNGs" in reasons["rgb"]
    assert "mode '1'" in reasons["two_level"]
    assert "has values outside 0..2 and 255 (3; 100 pixels) for 2 classes" in reasons["value_3"]
    assert "has values outside 0..2 and 255 (271; 16 pixels)" in reasons["sixteen_bit_271"]


@pytest.fixture
def sixteen_bit_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Manifest]:
    """A 16-bit GT that was valid at prepare time, its pseudo mask, cwd = a pipeline work dir."""
    root = tmp_path / "data"
    voc_with_masks(root, {"img": labels16(2)})
    manifest = load_voc(root, "train", CLASSES)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "artifacts/pseudo/masks").mkdir(parents=True)
    Image.fromarray(np.ones((HEIGHT, WIDTH), np.uint8)).save(tmp_path / "artifacts/pseudo/masks/img.png")
    return root, manifest


def stage_params(root: Path):
    """Params of a pipeline run on the VOC tree at `root` (model scored without CRF)."""
    from wsss.params import Params

    return Params.from_mapping({"data": {"kind": "voc", "root": str(root)}, "classes": {"names": list(CLASSES)},
                                "train": {"test_crf": False}})  # fmt: skip


def model_scores(monkeypatch: pytest.MonkeyPatch, root: Path, manifest: Manifest):
    """The evaluate stage's model metric with a stub network predicting class 1 everywhere."""
    pytest.importorskip("mmseg")
    import torch

    from tasks.evaluate import score_model
    from wsss.catalog import ArtifactLayout
    from wsss_mmseg import inference, training

    monkeypatch.setattr(training, "load_segmenter", lambda *args, **kwargs: None)
    monkeypatch.setattr(
        inference,
        "predict_logits_batch",
        lambda model, images, scales: torch.tensor([0.0, 1.0, 0.0])[None, :, None, None].expand(len(images), 3, *images[0].shape[:2]),
    )
    (score,) = score_model(stage_params(root), ArtifactLayout(), manifest.records).values()
    return score


def test_every_reader_of_ground_truth_counts_the_same_pixels(sixteen_bit_case, monkeypatch: pytest.MonkeyPatch) -> None:
    """Map metrics, relabel metrics and the model metric read one 16-bit GT identically (one reader)."""
    from tasks.relabel import score_pseudo_masks
    from wsss.catalog import ArtifactLayout
    from wsss.stage_inputs import ground_truth_files

    root, manifest = sixteen_bit_case
    (record,) = manifest.records
    expected = np.ones((HEIGHT, WIDTH), np.uint8)
    expected[:4, :4] = 2
    params, layout = stage_params(root), ArtifactLayout()
    np.testing.assert_array_equal(ground_truth_files(params, layout).read(record, 2), expected)
    relabel = score_pseudo_masks(params, layout, manifest)
    assert relabel["images_scored"] == 1 and relabel["pixel_accuracy"] == pytest.approx(1 - 16 / (WIDTH * HEIGHT))
    model = model_scores(monkeypatch, root, manifest)
    assert model.num_pixels == WIDTH * HEIGHT and model.pixel_accuracy == pytest.approx(1 - 16 / (WIDTH * HEIGHT))


def test_a_value_outside_the_classes_stops_every_reader_naming_the_file(sixteen_bit_case, monkeypatch: pytest.MonkeyPatch) -> None:
    """GT changed after prepare to hold 271: no reader wraps it to 15 or drops it; each names the file."""
    from tasks.relabel import score_pseudo_masks
    from wsss.catalog import ArtifactLayout
    from wsss.stage_inputs import ground_truth_files

    root, manifest = sixteen_bit_case
    labels16(271).save(root / "SegmentationClass/img.png")
    pattern = r"SegmentationClass/img\.png has values outside 0\.\.2 and 255 \(271"
    params, layout = stage_params(root), ArtifactLayout()
    with pytest.raises(DatasetError, match=pattern):
        ground_truth_files(params, layout).read(manifest.records[0], 2)
    with pytest.raises(DatasetError, match=pattern):
        score_pseudo_masks(params, layout, manifest)
    with pytest.raises(DatasetError, match=pattern):
        model_scores(monkeypatch, root, manifest)


def test_folder_ground_truth_dir_is_honoured(tmp_path: Path) -> None:
    """Palette and index PNGs mirroring the image folder become ground truth; values checked."""
    expected = write_folder_set(tmp_path)
    manifest = load_folder(tmp_path, "images", "tags.csv", CLASSES, "masks")
    assert [(r.image_id, r.ground_truth_path) for r in manifest.records] == [
        ("kitten", "masks/kitten.png"), ("puppy", "masks/sub/puppy.png"),
    ]  # fmt: skip
    failures = FailureReport("prepare")
    assert validate_images(manifest, tmp_path, None, failures).records == manifest.records and not failures.failures
    from wsss.datasets import GroundTruthFiles

    for record in manifest.records:
        np.testing.assert_array_equal(GroundTruthFiles(tmp_path).read(record, 2), expected[record.image_id])


def test_folder_ground_truth_dir_that_does_not_exist_names_the_key(tmp_path: Path) -> None:
    write_folder_set(tmp_path)
    with pytest.raises(DatasetError, match=r"ground_truth_dir 'SegmentationClass': no such folder under the dataset root"):
        load_folder(tmp_path, "images", "tags.csv", CLASSES, "SegmentationClass")


def test_voc_tags_from_ground_truth_needs_no_annotations(tmp_path: Path) -> None:
    """As the reference does for VOC: image labels are the classes present in the mask."""
    expected = write_voc_masks_only(tmp_path)
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("2007_000001\n2007_000002\n2007_000003\n")
    Image.fromarray(photo(9)).save(tmp_path / "JPEGImages/2007_000003.jpg")  # no mask: no tags to derive
    assert not (tmp_path / "Annotations").exists()
    failures = FailureReport("prepare")
    manifest = load_voc(tmp_path, "train", VOC_CLASS_NAMES, tags_from="ground_truth", failures=failures)
    assert {r.image_id: r.tags for r in manifest.records} == expected
    assert all(r.ground_truth_path == f"SegmentationClass/{r.image_id}.png" for r in manifest.records)
    (failure,) = failures.failures
    assert failure.image == "2007_000003" and "no ground-truth mask to take the tags from" in failure.reason
    with pytest.raises(DatasetError, match=r"Annotations/2007_000001\.xml.*not found"):
        load_voc(tmp_path, "train", VOC_CLASS_NAMES)


def test_derived_ground_truth_needs_its_folder(tmp_path: Path) -> None:
    from wsss.datasets import GroundTruthFiles

    record = ImageRecord("a", "a.jpg", ("cat",), "a.0123.png", "0" * 64, 2, 2, "derived")
    with pytest.raises(DatasetError, match="no folder of derived label maps"):
        GroundTruthFiles(tmp_path).path(record)
    assert GroundTruthFiles(tmp_path, tmp_path / "gt").path(record) == (tmp_path / "gt/a.0123.png").resolve()
    text = Manifest("m", (record,), CLASSES).to_json()
    assert json.loads(text)["version"] == 2 and Manifest.from_json(text, "m.json").records == (record,)


def test_load_dataset_applies_each_kinds_ground_truth_default(tmp_path: Path) -> None:
    """VOC: SegmentationClass when present (absent is fine); folder: none unless named; tags_from only for VOC."""
    from wsss.datasets import load_dataset
    from wsss.datasets.settings import DataSettings
    from wsss.errors import ConfigError

    write_voc_masks_only(tmp_path / "voc")
    voc = load_dataset("voc", tmp_path / "voc", VOC_CLASS_NAMES, tags_from="ground_truth")
    assert all(r.ground_truth_path for r in voc.records)
    (tmp_path / "voc/SegmentationClass").rename(tmp_path / "voc/masks")
    with pytest.raises(DatasetError, match="tags_from 'ground_truth' needs a ground_truth_dir"):
        load_dataset("voc", tmp_path / "voc", VOC_CLASS_NAMES, tags_from="ground_truth")
    assert len(load_dataset("voc", tmp_path / "voc", VOC_CLASS_NAMES, ground_truth_dir="masks", tags_from="ground_truth").records) == 2
    write_folder_set(tmp_path / "folder")
    folder = load_dataset("folder", tmp_path / "folder", CLASSES, images_dir="images", tags_file="tags.csv")
    assert [r.ground_truth_path for r in folder.records] == [None, None]
    with pytest.raises(ConfigError, match=r"data\.tags_from: ground_truth is only available for VOC layouts"):
        DataSettings(kind="folder", tags_from="ground_truth")
    with pytest.raises(ConfigError, match=r"data\.tags_from must be one of"):
        DataSettings(tags_from="xml")
