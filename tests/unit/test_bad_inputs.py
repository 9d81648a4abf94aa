"""The bad-input corpus: every kind of broken or unusual input a real dataset holds, generated here.

A folder dataset mixes good images with broken ones; `load_folder(failures=...)` plus
`validate_images` (what the `prepare` stage runs) must leave out exactly the broken ones, name
the file and the reason for each, and keep every usable image, whatever its mode or size.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.params_edit import read_params, with_values, write_params
from wsss.datasets import load_coco, load_folder, load_voc
from wsss.datasets.validation import validate_images
from wsss.errors import ConfigError, DatasetError, ImageError, TooManyFailuresError
from wsss.failures import DEFAULT_MAX_IMAGE_PIXELS, FailureReport, ReliabilitySettings
from wsss.imaging import load_rgb

CLASSES = ("cat", "dog")
NON_UTF8_NAME = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: not UTF-8


def photo(width: int = 48, height: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """A 48x32 JPEG whose EXIF says 'rotate 90 degrees' (viewers show it 32x48)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(Image.fromarray(photo()), "JPEG", exif=exif.tobytes())


def truncated_jpeg() -> bytes:
    """Header intact, scan data cut in the middle (what an interrupted copy leaves)."""
    data = encoded(Image.fromarray(photo(seed=9)), "JPEG")
    return data[: len(data) * 2 // 3]


def corrupt_png() -> bytes:
    data = bytearray(encoded(Image.fromarray(photo(seed=3)), "PNG"))
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = bytes(40)  # zlib stream destroyed, CRC wrong
    return bytes(data)


# name -> file bytes (None: no file on disk); every image here is tagged "cat" unless TAGS says otherwise.
GOOD_FILES = {
    "good_rgb.jpg": lambda: encoded(Image.fromarray(photo(seed=1)), "JPEG"),
    "cmyk.jpg": lambda: encoded(Image.fromarray(photo(seed=2)).convert("CMYK"), "JPEG"),
    "png16.png": lambda: encoded(Image.fromarray((np.arange(48 * 32).reshape(32, 48) * 40).astype(np.uint16)), "PNG"),
    "rgba.png": lambda: encoded(Image.fromarray(np.dstack([photo(seed=4), np.full((32, 48), 128, np.uint8)])), "PNG"),
    "palette.png": lambda: encoded(Image.fromarray(photo(seed=5)).convert("P"), "PNG"),
    "gray.png": lambda: encoded(Image.fromarray(photo(seed=6)[..., 0]), "PNG"),
    "one.png": lambda: encoded(Image.fromarray(photo(1, 1, seed=7)), "PNG"),
    "ten.png": lambda: encoded(Image.fromarray(photo(10, 10, seed=8)), "PNG"),
    "exif_rotated.jpg": exif_rotated_jpeg,
    # 108 Mpx, 1 bit per pixel: tiny on disk, cheap to make; decoded and checked like any other.
    "huge.png": lambda: encoded(Image.new("1", (12000, 9000), 1), "PNG"),
    # Values in [0, 1] (how float TIFFs are usually written): PIL alone turned them all black.
    "float32.tif": lambda: encoded(Image.fromarray(np.linspace(0, 1, 48 * 32, dtype=np.float32).reshape(32, 48), mode="F"), "TIFF"),
}
BAD_FILES = {
    "truncated.jpg": truncated_jpeg,
    "corrupt.png": corrupt_png,
    "empty.jpg": lambda: b"",
    "not_an_image.jpg": lambda: b"name,tags\nthis is a CSV file, not a JPEG\n",
    "dup.jpg": lambda: encoded(Image.fromarray(photo(seed=10)), "JPEG"),
    "dup.png": lambda: encoded(Image.fromarray(photo(seed=11)), "PNG"),
    "unknown_tag.jpg": lambda: encoded(Image.fromarray(photo(seed=12)), "JPEG"),
    "no_tags.jpg": lambda: encoded(Image.fromarray(photo(seed=13)), "JPEG"),
    NON_UTF8_NAME: lambda: encoded(Image.fromarray(photo(seed=14)), "JPEG"),
    "float_nan.tif": lambda: encoded(Image.fromarray(np.full((32, 48), np.nan, dtype=np.float32), mode="F"), "TIFF"),
}
TAGS = {"unknown_tag.jpg": ["zebra"], "no_tags.jpg": [], "good_rgb.jpg": ["cat", "dog"]}
# Names only in the tags file: they point outside the images folder.
UNSAFE_NAMES = ("../x.jpg", "/etc/passwd.jpg")

# name as written in the tags file -> (failure entry's image field, pattern its reason must match)
EXPECTED_FAILURES = {
    "truncated.jpg": ("truncated", r"cannot decode image.*truncated"),
    "corrupt.png": ("corrupt", r"cannot decode image"),
    "empty.jpg": ("empty", r"not a readable image|cannot decode"),
    "not_an_image.jpg": ("not_an_image", r"not a readable image|cannot decode"),
    "dup.jpg": ("dup", r"duplicate image id 'dup' \(dup.jpg\)"),
    "dup.png": ("dup", r"duplicate image id 'dup' \(dup.png\)"),
    "unknown_tag.jpg": ("unknown_tag", r"unknown tag 'zebra'"),
    "no_tags.jpg": ("no_tags", r"empty tag list"),
    NON_UTF8_NAME: (NON_UTF8_NAME, r"not valid UTF-8"),
    "float_nan.tif": ("float_nan", r"float_nan\.tif: floating-point image holds 1536 NaN or infinite pixels"),
    "../x.jpg": ("../x.jpg", r"'\.\.' component"),
    "/etc/passwd.jpg": ("/etc/passwd.jpg", r"is absolute"),
}


def write_corpus(root: Path) -> None:
    images = root / "images"
    images.mkdir(parents=True)
    for name, make in {**GOOD_FILES, **BAD_FILES}.items():
        (images / name).write_bytes(make())
    names = [*GOOD_FILES, *BAD_FILES, *UNSAFE_NAMES]
    # JSON keeps the undecodable name as its surrogate escape, exactly as os.listdir would give it.
    (root / "tags.json").write_text(json.dumps({name: TAGS.get(name, ["cat"]) for name in names}))


def prepare_corpus(root: Path, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[list[str], FailureReport]:
    """What the prepare stage does: load leniently, then decode-validate; returns kept ids and failures."""
    failures = FailureReport("prepare")
    manifest = load_folder(root, "images", "tags.json", CLASSES, failures=failures)
    manifest = validate_images(manifest, root, max_pixels, failures)
    return [record.image_id for record in manifest.records], failures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], FailureReport]:
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root)
    kept, failures = prepare_corpus(root)
    return root, kept, failures


def test_every_good_image_is_kept(corpus: tuple[Path, list[str], FailureReport]) -> None:
    _, kept, _ = corpus
    assert sorted(kept) == sorted(Path(name).stem for name in GOOD_FILES)


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_bad_input_is_reported_with_file_and_reason(name: str, corpus: tuple[Path, list[str], FailureReport]) -> None:
    _, kept, failures = corpus
    image, pattern = EXPECTED_FAILURES[name]
    entries = [failure for failure in failures.failures if failure.image == image]
    matching = [failure for failure in entries if re.search(pattern, failure.reason)]
    assert matching, f"no failure for {name!r} matching {pattern!r}: {entries}"
    failure = matching[0]
    named = failure.file + " " + failure.reason
    assert name in named or repr(name)[1:-1] in named, f"{name!r} not named in {named!r}"
    assert image not in kept


def test_report_counts_every_bad_input_once(corpus: tuple[Path, list[str], FailureReport]) -> None:
    _, kept, failures = corpus
    failed_images = failures.failed_images()
    assert len(failures.failures) == len(EXPECTED_FAILURES)
    assert failed_images == {image for image, _ in EXPECTED_FAILURES.values()}
    summary = failures.to_dict(len(kept) + len(failed_images), 0.5)
    json.dumps(summary)  # surrogates in names must still serialise
    assert summary["images_failed"] == len(failed_images)


@pytest.mark.parametrize("name", ["cmyk.jpg", "png16.png", "rgba.png", "palette.png", "gray.png", "one.png", "float32.tif"])
def test_unusual_modes_decode_to_rgb(name: str, corpus: tuple[Path, list[str], FailureReport]) -> None:
    root, _, _ = corpus
    image = load_rgb(root / "images" / name)
    assert image.mode == "RGB"
    assert np.asarray(image).shape[2] == 3


def test_sixteen_bit_png_keeps_its_range(corpus: tuple[Path, list[str], FailureReport]) -> None:
    root, _, _ = corpus
    values = np.asarray(load_rgb(root / "images" / "png16.png"))[..., 0]
    assert values.min() == 0 and values.max() > 14  # 16-bit scaled, not clipped to 255 or wrapped


def test_float_tiff_is_scaled_like_other_wide_images_not_black(corpus: tuple[Path, list[str], FailureReport]) -> None:
    """A float32 TIFF used to decode as all black and be kept."""
    root, _, _ = corpus
    values = np.asarray(load_rgb(root / "images" / "float32.tif"))[..., 0]
    assert (values.min(), values.max()) == (0, 255)
    assert values[16, 24] == round(float(np.float32((16 * 48 + 24) / (48 * 32 - 1))) * 255)


def test_pixel_limit_refuses_huge_image_before_decoding(corpus: tuple[Path, list[str], FailureReport]) -> None:
    root, _, _ = corpus
    with pytest.raises(ImageError, match=r"huge.png: image is 12000x9000 = 108000000 pixels, more than the limit"):
        load_rgb(root / "images" / "huge.png", max_pixels=50_000_000)


def test_share_threshold_on_both_sides(corpus: tuple[Path, list[str], FailureReport]) -> None:
    _, kept, failures = corpus
    total = len(kept) + len(failures.failed_images())
    share = failures.failed_share(total)
    failures.check(total, share, "failures.json")  # exactly at the threshold: passes
    with pytest.raises(TooManyFailuresError, match=r"of .* images failed.*failures.json"):
        failures.check(total, share - 0.01, "failures.json")


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("tags.json", '{"a.jpg": ["cat"],\n "b.jpg": ["dog"]', r"tags.json: invalid JSON at line 2"),
        ("tags.csv", 'image,tags\na.jpg,cat\n"b.jpg,dog\n', r"tags.csv: line \d+: CSV syntax error"),
    ],
)
def test_tags_file_syntax_error_fails_the_whole_run(tmp_path: Path, name: str, text: str, where: str) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / name).write_text(text)
    with pytest.raises(DatasetError, match=where):
        load_folder(tmp_path, "images", name, CLASSES, failures=FailureReport("prepare"))


def voc_tree(root: Path, masks: dict[str, tuple[int, int]], images: dict[str, bytes]) -> None:
    for sub in ("JPEGImages", "Annotations", "ImageSets/Segmentation", "SegmentationClass"):
        (root / sub).mkdir(parents=True)
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(images) + "\n")
    for image_id, data in images.items():
        (root / f"JPEGImages/{image_id}.jpg").write_bytes(data)
        (root / f"Annotations/{image_id}.xml").write_text("<annotation><object><name>cat</name></object></annotation>")
        width, height = masks[image_id]
        Image.fromarray(np.zeros((height, width), np.uint8)).save(root / f"SegmentationClass/{image_id}.png")


def test_ground_truth_of_another_size_is_reported(tmp_path: Path) -> None:
    good = encoded(Image.fromarray(photo()), "JPEG")
    voc_tree(tmp_path, {"fits": (48, 32), "smaller": (24, 16)}, {"fits": good, "smaller": good})
    failures = FailureReport("prepare")
    manifest = validate_images(load_voc(tmp_path, "train", CLASSES, failures=failures), tmp_path, None, failures)
    assert [record.image_id for record in manifest.records] == ["fits"]
    (failure,) = failures.failures
    assert failure.image == "smaller"
    assert failure.file.endswith("JPEGImages/smaller.jpg")
    assert "SegmentationClass/smaller.png is 24x16 but its image is 48x32" in failure.reason


def test_exif_rotation_one_rule_for_images_and_masks(tmp_path: Path) -> None:
    """Raw pixel orientation everywhere: a raw-sized mask fits, a mask of the rotated view does not."""
    rotated = exif_rotated_jpeg()
    voc_tree(tmp_path, {"raw_mask": (48, 32), "rotated_mask": (32, 48)}, {"raw_mask": rotated, "rotated_mask": rotated})
    failures = FailureReport("prepare")
    manifest = validate_images(load_voc(tmp_path, "train", CLASSES, failures=failures), tmp_path, None, failures)
    assert [(r.image_id, r.width, r.height) for r in manifest.records] == [("raw_mask", 48, 32)]
    assert load_rgb(tmp_path / "JPEGImages/raw_mask.jpg").size == (48, 32)  # never rotated
    (failure,) = failures.failures
    assert failure.image == "rotated_mask" and "EXIF-rotated view" in failure.reason


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"reliability.max_failed_share": "lots"}, r"reliability.max_failed_share must be float, got str"),
        ({"reliability.max_faled_share": 0.1}, r"unknown key\(s\) reliability.max_faled_share"),
        ({"reliabilty": {}}, r"unknown key\(s\) reliabilty"),
        ({"cam.max_side": "big"}, r"cam.max_side"),
    ],
)
def test_bad_params_rejected_naming_the_key(tmp_path: Path, edit: dict, named: str) -> None:
    from wsss.params import load_params

    path = write_params(tmp_path / "params.yaml", with_values(read_params(), edit))
    with pytest.raises(ConfigError, match=named):
        load_params(path)


def test_reliability_settings_ranges() -> None:
    with pytest.raises(ConfigError, match="max_failed_share must be in"):
        ReliabilitySettings(max_failed_share=1.5)
    with pytest.raises(ConfigError, match=r"reliability.max_image_pixels must be in \[1, "):
        ReliabilitySettings(max_image_pixels=0)


@pytest.fixture(scope="module")
def extractor():  # a ClipEsCamExtractor (unannotated: the type lives behind a torch import)
    from wsss.cam import CamSettings, ClipEsCamExtractor
    from wsss.clip import ClipSource, load_clip
    from wsss.text import voc_vocabulary

    clip = load_clip(ClipSource(random_init=True, seed=0))
    return ClipEsCamExtractor(clip, voc_vocabulary(), CamSettings(max_side=224))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["one.png", "ten.png", "exif_rotated.jpg", "png16.png"])
def test_unusual_images_go_through_the_cam_extractor(name: str, corpus: tuple[Path, list[str], FailureReport], extractor) -> None:
    """Tiny images get one 16x16 token; EXIF-rotated maps use the raw pixel grid, like its GT mask."""
    root, _, _ = corpus
    image = load_rgb(root / "images" / name)
    result = extractor.extract(image, [7, 11])
    width, height = Image.open(root / "images" / name).size  # header size = GT mask size rule
    assert result.refined.shape == (2, height, width)
    assert result.original_size == (height, width)
    assert np.isfinite(result.refined).all() and np.isfinite(result.gradcam).all()


def test_coco_per_image_problems_are_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images/good.jpg").write_bytes(encoded(Image.fromarray(photo()), "JPEG"))
    (tmp_path / "images/wrong_size.jpg").write_bytes(encoded(Image.fromarray(photo()), "JPEG"))
    images = [("good.jpg", 48, 32, 1), ("missing.jpg", 48, 32, 1), ("../up.jpg", 48, 32, 1), ("wrong_size.jpg", 10, 10, 1), ("zebra.jpg", 48, 32, 2)]
    data = {
        "images": [{"id": i, "file_name": name, "width": w, "height": h} for i, (name, w, h, _) in enumerate(images)],
        "annotations": [{"id": i, "image_id": i, "category_id": cat} for i, (*_, cat) in enumerate(images)],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "zebra"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(data))
    failures = FailureReport("prepare")
    manifest = load_coco(tmp_path, "instances.json", "images", CLASSES, failures=failures)
    assert [record.image_id for record in manifest.records] == ["good"]
    reasons = {failure.image: failure.reason for failure in failures.failures}
    assert set(reasons) == {"missing", "../up.jpg", "wrong_size", "zebra"}
    assert "image file not found" in reasons["missing"] and "'..' component" in reasons["../up.jpg"]
    assert "48x32 in its header but 10x10 in the JSON" in reasons["wrong_size"]
    assert "unknown tag 'zebra'" in reasons["zebra"]


def partial_coco(root: Path, extra_annotations: list[dict], images: int = 2) -> None:
    (root / "images").mkdir(exist_ok=True)
    names = [f"img{i}.jpg" for i in range(images)]
    for seed, name in enumerate(names):
        (root / "images" / name).write_bytes(encoded(Image.fromarray(photo(seed=seed)), "JPEG"))
    data = {
        "images": [{"id": i, "file_name": name, "width": 48, "height": 32} for i, name in enumerate(names)],
        "annotations": [{"id": i, "image_id": i, "category_id": 1} for i in range(images)] + extra_annotations,
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    (root / "instances.json").write_text(json.dumps(data))


def test_coco_annotations_that_refer_to_nothing_are_reported_and_the_rest_kept(tmp_path: Path) -> None:
    """One annotation naming an unknown image id or category id used to stop the whole prepare (exit 2, nothing kept)."""
    partial_coco(
        tmp_path,
        [
            {"id": 90, "image_id": 999, "category_id": 1},  # no such image
            {"id": 91, "image_id": 1, "category_id": 77},  # no such category: img1's tags incomplete
            {"id": 92, "image_id": "0", "category_id": 1},
        ],
    )  # not an integer id
    failures = FailureReport("prepare")
    manifest = load_coco(tmp_path, "instances.json", "images", CLASSES, failures=failures)
    assert [record.image_id for record in manifest.records] == ["img0"]
    reasons = {failure.image: failure.reason for failure in failures.failures}
    assert set(reasons) == {"annotations[2] (id 90)", "annotations[4] (id 92)", "img1"}
    assert re.search(r"annotations\[2\] refers to unknown image id 999; the annotation is left out", reasons["annotations[2] (id 90)"])
    assert re.search(r"annotations\[3\] refers to unknown category id 77; the image's tags and ground truth would be incomplete", reasons["img1"])
    assert "needs an integer 'image_id', got '0'" in reasons["annotations[4] (id 92)"]
    with pytest.raises(DatasetError, match=r"annotations\[2\] refers to unknown image id 999"):
        load_coco(tmp_path, "instances.json", "images", CLASSES)  # without a report: the strict reader


def test_a_coco_file_in_which_no_image_has_annotations_is_an_error_not_an_empty_manifest(tmp_path: Path) -> None:
    """Was exit 0 with an empty manifest and no message."""
    partial_coco(tmp_path, [])
    data = json.loads((tmp_path / "instances.json").read_text())
    data["annotations"] = []
    (tmp_path / "instances.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"instances\.json: no image has a usable annotation \(2 images, 0 annotations\)"):
        load_coco(tmp_path, "instances.json", "images", CLASSES, failures=FailureReport("prepare"))
