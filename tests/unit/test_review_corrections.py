"""Corrections store: import (PNG, RGB colour PNG, COCO RLE) with validation naming the file,
records (file, sha256, time), history, training staging (confidence 1) and lineage."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.hostile import bomb_png, run_bounded
from wsss.review.corrections import CorrectionError, CorrectionStore, ImageSpec, import_corrections
from wsss.review.exports import ExportImage, coco_document
from wsss.review.training_labels import correction_lineage, stage_training_labels
from wsss.viz import voc_palette

CLASS_NAMES = ["background", "cat", "dog"]
IMAGES = {"a": ImageSpec("a", 6, 4, "aa" * 32), "b": ImageSpec("b", 6, 4, "bb" * 32)}
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def labels(value: int = 1) -> np.ndarray:
    mask = np.zeros((4, 6), dtype=np.uint8)
    mask[1:3, 2:5] = value
    mask[0, 0] = 255
    return mask


def write_png(path: Path, array: np.ndarray, mode: str = "P") -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array) if mode != "P" else Image.fromarray(array, mode="P")
    if mode == "P":
        image.putpalette(voc_palette().flatten().tolist())
    image.save(path)
    return path.read_bytes()


def test_png_import_stores_the_mask_and_its_record(tmp_path: Path) -> None:
    data = write_png(tmp_path / "in" / "a.png", labels())
    store = CorrectionStore(tmp_path / "corrections")
    records, notes = import_corrections(tmp_path / "in", store, IMAGES, CLASS_NAMES, relative_to=tmp_path, now=WHEN)
    (record,) = records
    assert notes == []
    assert record.source_file == "in/a.png" and record.source_sha256 == hashlib.sha256(data).hexdigest()
    assert record.imported_at == "2026-01-02T03:04:05Z" and record.image_sha256 == "aa" * 32 and record.labels == [0, 1, 255]
    assert record.describe() == f"human-corrected (file in/a.png, sha256 {record.source_sha256}, time 2026-01-02T03:04:05Z)"
    np.testing.assert_array_equal(store.read_mask(store.get("a"), len(CLASS_NAMES)), labels())
    assert json.loads(store.record_path("a").read_text())["mask_sha256"] == hashlib.sha256(store.mask_path("a").read_bytes()).hexdigest()


def test_rgb_colour_masks_map_through_the_dataset_palette(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", voc_palette()[labels(2)], mode="RGB")
    store = CorrectionStore(tmp_path / "corrections")
    import_corrections(tmp_path / "a.png", store, IMAGES, CLASS_NAMES, now=WHEN)
    np.testing.assert_array_equal(store.read_mask(store.get("a"), len(CLASS_NAMES)), labels(2))
    strange = voc_palette()[labels(2)].copy()
    strange[3, 5] = (1, 2, 3)
    write_png(tmp_path / "b.png", strange, mode="RGB")
    with pytest.raises(CorrectionError, match=r"b\.png: colour \(1, 2, 3\) \(1 pixels\)"):
        import_corrections(tmp_path / "b.png", store, IMAGES, CLASS_NAMES)


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("a.png", np.zeros((5, 6), np.uint8), r"a\.png: is 6x5 but its image is 6x4"),
        ("a.png", labels(7), r"a\.png: mask has values outside 0\.\.2 and 255 \(7; 6 pixels\)"),
        ("zebra.png", labels(), r"zebra\.png: no image 'zebra' in the manifest"),
    ],
)
def test_bad_masks_are_refused_naming_the_file(tmp_path: Path, name: str, array: np.ndarray, message: str) -> None:
    write_png(tmp_path / "in" / name, array)
    with pytest.raises(CorrectionError, match=message):
        import_corrections(tmp_path / "in", CorrectionStore(tmp_path / "c"), IMAGES, CLASS_NAMES)


def test_one_bad_file_refuses_the_whole_import(tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "a.png", labels())
    write_png(tmp_path / "in" / "b.png", labels(9))
    store = CorrectionStore(tmp_path / "c")
    with pytest.raises(CorrectionError, match="nothing was imported") as error:
        import_corrections(tmp_path / "in", store, IMAGES, CLASS_NAMES)
    assert "b.png" in str(error.value) and "a.png" not in str(error.value)
    assert store.records() == {} and not (tmp_path / "c").exists()


def test_coco_rle_import_matches_categories_by_name(tmp_path: Path) -> None:
    images = [
        ExportImage("a", "JPEGImages/a.jpg", 6, 4, lambda: labels(2)),
        ExportImage("b", "JPEGImages/b.jpg", 6, 4, lambda: np.zeros((4, 6), np.uint8)),
    ]
    document = coco_document(images, CLASS_NAMES)
    # An annotation tool numbers categories its own way: ids change, names stay.
    for category in document["categories"]:
        category["id"] += 100
    for annotation in document["annotations"]:
        annotation["category_id"] += 100
    path = tmp_path / "corrected.json"
    path.write_text(json.dumps(document))
    store = CorrectionStore(tmp_path / "c")
    records, notes = import_corrections(path, store, IMAGES, CLASS_NAMES, now=WHEN)
    assert [r.image_id for r in records] == ["a"] and records[0].source_format == "coco"
    assert notes == [f"{path}: image 'JPEGImages/b.jpg': no annotations, skipped (import an all-background correction as a PNG)"]
    np.testing.assert_array_equal(store.read_mask(store.get("a"), len(CLASS_NAMES)), labels(2))
    document["categories"][0]["name"] = "unicorn"
    path.write_text(json.dumps(document))
    with pytest.raises(CorrectionError, match="category 'unicorn'"):
        import_corrections(path, store, IMAGES, CLASS_NAMES)


def test_reimport_keeps_the_previous_version_and_tampering_is_detected(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "c")
    write_png(tmp_path / "a.png", labels(1))
    import_corrections(tmp_path / "a.png", store, IMAGES, CLASS_NAMES, now=WHEN)
    write_png(tmp_path / "a.png", labels(2))
    import_corrections(tmp_path / "a.png", store, IMAGES, CLASS_NAMES, now=datetime(2026, 2, 1, tzinfo=UTC))
    history = sorted(p.name for p in (tmp_path / "c" / "history" / "a").iterdir())
    assert history == ["2026-02-01T000000Z.json", "2026-02-01T000000Z.png"]
    np.testing.assert_array_equal(store.read_mask(store.get("a"), len(CLASS_NAMES)), labels(2))
    store.mask_path("a").write_bytes(store.mask_path("a").read_bytes() + b"x")
    with pytest.raises(CorrectionError, match="content differs from its record"):
        store.read_mask(store.get("a"), len(CLASS_NAMES))


def pseudo_tree(root: Path) -> tuple[Path, Path]:
    masks, confidence = root / "pseudo" / "masks", root / "pseudo" / "confidence"
    for image_id in IMAGES:
        write_png(masks / f"{image_id}.png", labels(1))
        confidence.mkdir(parents=True, exist_ok=True)
        np.save(confidence / f"{image_id}.npy", np.full((4, 6), 0.5, np.float16))
    return masks, confidence


def test_training_uses_the_correction_with_confidence_one(tmp_path: Path) -> None:
    masks, confidence = pseudo_tree(tmp_path)
    store = CorrectionStore(tmp_path / "c")
    untouched = stage_training_labels(["a", "b"], IMAGES, masks, confidence, store, tmp_path / "staged", len(CLASS_NAMES))
    assert (untouched.mask_dir, untouched.confidence_dir, untouched.used) == (masks, confidence, [])
    write_png(tmp_path / "a.png", labels(2))
    import_corrections(tmp_path / "a.png", store, IMAGES, CLASS_NAMES, now=WHEN)
    staged = stage_training_labels(["a", "b"], IMAGES, masks, confidence, store, tmp_path / "staged", len(CLASS_NAMES))
    with Image.open(staged.mask_dir / "a.png") as a, Image.open(staged.mask_dir / "b.png") as b:
        np.testing.assert_array_equal(np.asarray(a), labels(2))
        np.testing.assert_array_equal(np.asarray(b), labels(1))
    ones = np.load(staged.confidence_dir / "a.npy")
    assert ones.shape == (4, 6) and (ones == 1).all()
    assert (np.load(staged.confidence_dir / "b.npy") == np.float16(0.5)).all()
    assert [u["image_id"] for u in staged.used] == ["a"] and staged.stale == []
    assert staged.digest != untouched.digest


def test_a_correction_of_a_changed_image_is_kept_but_not_used(tmp_path: Path) -> None:
    masks, confidence = pseudo_tree(tmp_path)
    store = CorrectionStore(tmp_path / "c")
    write_png(tmp_path / "a.png", labels(2))
    import_corrections(tmp_path / "a.png", store, IMAGES, CLASS_NAMES, now=WHEN)
    changed = {**IMAGES, "a": ImageSpec("a", 6, 4, "cc" * 32)}
    staged = stage_training_labels(["a", "b"], changed, masks, confidence, store, tmp_path / "staged", len(CLASS_NAMES))
    assert staged.used == [] and staged.mask_dir == masks
    assert staged.stale == [{"image_id": "a", "reason": "the image's bytes changed since the correction was imported", "source_file": "a.png"}]
    assert store.mask_path("a").is_file()
    lineage = correction_lineage(tmp_path / "c", "a", changed["a"])
    assert lineage is not None and lineage["stale"].startswith("the image's bytes changed")
    current = correction_lineage(tmp_path / "c", "a", IMAGES["a"])
    assert current is not None and current["stale"] is None and current["summary"].startswith("human-corrected (file a.png, sha256 ")
    assert correction_lineage(tmp_path / "c", "b") is None


def test_corrections_are_a_dvc_input_of_train_and_review_never_an_output() -> None:
    """`dvc repro` deletes a stage's outputs before running it: the store must not be one."""
    import yaml

    stages = yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml").read_text())["stages"]
    for name in ("train", "review"):
        assert "corrections" in stages[name]["deps"], name
    for name, stage in stages.items():
        for out in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            path = next(iter(out)) if isinstance(out, dict) else out
            output, store = Path(path), Path("corrections")
            assert output != store and store not in output.parents and output not in store.parents, (name, path)
    assert (Path(__file__).resolve().parents[2] / "corrections" / "README.md").is_file()  # the dep exists in a fresh clone


def test_a_damaged_record_is_refused_naming_its_file(tmp_path: Path) -> None:
    folder = tmp_path / "c" / "records"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text("{")
    with pytest.raises(CorrectionError, match=r"a\.json: unreadable correction record"):
        CorrectionStore(tmp_path / "c").records()


# ---- hostile and unlucky corrections (issue 23): each crafted import runs in a child process with a
# memory ceiling, since before these were refused some segfaulted and one allocated ~37 GiB.

BIG = ImageSpec("big", 512, 512, "dd" * 32)  # 262,144 pixels, as in the issue


def coco_file(path: Path, segmentation: object, spec: ImageSpec = BIG) -> Path:
    document = {
        "images": [{"id": 1, "file_name": f"{spec.image_id}.jpg", "width": spec.width, "height": spec.height}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": segmentation, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "cat"}],
    }
    path.write_text(json.dumps(document))  # NaN is written as NaN, which Python's json reads back
    return path


HOSTILE_IMPORTS = {
    "polygon of 1e12 coordinates": (
        lambda folder: coco_file(folder / "c.json", [[0, 0, 1e12, 0, 1e12, 1e12, 0, 1e12]]),
        r"annotation 7: a polygon has coordinates that are not finite or far outside the 512x512 image",
    ),
    "polygon with NaN coordinates": (
        lambda folder: coco_file(folder / "c.json", [[0, 0, float("nan"), 0, 10, 10, 0, 10]]),
        r"annotation 7: a polygon has coordinates that are not finite",
    ),
    "RLE declaring 200000x200000": (
        lambda folder: coco_file(folder / "c.json", {"size": [200000, 200000], "counts": "0" + "1" * 20}),
        r"annotation 7: RLE size \[200000, 200000\] is not the image's \[height, width\] = \[512, 512\]",
    ),
    "RLE counts of 2**64": (
        lambda folder: coco_file(folder / "c.json", {"size": [512, 512], "counts": [2**64]}),
        r"annotation 7: RLE runs cover 18446744073709551616 pixels, the image has 262144",
    ),
    "RLE covering 5 of 262,144 pixels": (
        lambda folder: coco_file(folder / "c.json", {"size": [512, 512], "counts": [2, 3]}),
        r"annotation 7: RLE runs cover 5 pixels, the image has 262144",
    ),
    "polygon zigzagging 12,000 times across the image": (  # pycocotools would need ~1 GB for its outline
        lambda folder: coco_file(folder / "c.json", [[float(v) for i in range(12_000) for v in (511 * (i % 2), i / 24)]]),
        r"annotation 7: the polygons' outline is \d+ pixels long, more than 256 times the 512x512 image's width \+ height",
    ),
    "RLE string holding a 25,000-bit run": (
        lambda folder: coco_file(folder / "c.json", {"size": [512, 512], "counts": "o" * 5000 + "0"}),
        r"annotation 7: a run length at 13 has more than 64 bits",
    ),
    "image size as a string": (
        lambda folder: coco_file(folder / "c.json", [[0, 0, 9, 0, 9, 9]], ImageSpec("big", "512", 512, "")),  # type: ignore[arg-type]
        r"image 'big\.jpg': is '512'x512 in the file but 512x512 in the manifest",
    ),
    "1 GiB decompression-bomb PNG": (
        lambda folder: _bytes(folder / "big.png", bomb_png(32768, 32768)),
        r"big\.png: cannot be decoded \(DecompressionBombError",
    ),
    "100 Mpx PNG under PIL's own limit": (
        lambda folder: _bytes(folder / "big.png", bomb_png(10000, 10000)),
        r"big\.png: is 10000x10000 but its image is 512x512",
    ),
}


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(HOSTILE_IMPORTS))
def test_a_hostile_correction_is_refused_naming_the_file_before_decoding(tmp_path: Path, case: str) -> None:
    make, reason = HOSTILE_IMPORTS[case]
    source = make(tmp_path)
    store = tmp_path / "corrections"
    result = run_bounded(
        f"""
        from pathlib import Path
        from wsss.review.corrections import CorrectionError, CorrectionStore, ImageSpec, import_corrections
        images = {{"big": ImageSpec("big", 512, 512, "dd" * 32)}}
        limit_memory()
        try:
            import_corrections(Path({str(source)!r}), CorrectionStore(Path({str(store)!r})), images, ["background", "cat", "dog"])
            print("IMPORTED")
        except CorrectionError as error:
            print(error)
    """,
        extra_memory=256 * 2**20,
    )
    assert result.returncode == 0, (case, result.returncode, result.stderr[-2000:])
    assert "corrections refused, nothing was imported" in result.stdout and re.search(reason, result.stdout), result.stdout
    assert str(source) in result.stdout and "Traceback" not in result.stderr
    assert not store.exists()


def stored_correction(tmp_path: Path, image_id: str = "a") -> CorrectionStore:
    store = CorrectionStore(tmp_path / "c")
    write_png(tmp_path / f"{image_id}.png", labels(2))
    import_corrections(tmp_path / f"{image_id}.png", store, IMAGES, CLASS_NAMES, now=WHEN)
    return store


def hand_edit(store: CorrectionStore, image_id: str, data: bytes, **fields: object) -> None:
    """Replace a stored mask and update its record's sha256 (as a hand edit or a merge leaves it)."""
    store.mask_path(image_id).write_bytes(data)
    record = json.loads(store.record_path(image_id).read_text())
    record.update(mask_sha256=hashlib.sha256(data).hexdigest(), **fields)
    store.record_path(image_id).write_text(json.dumps(record))


def png_bytes_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


STORE_DAMAGE = {
    "labels 40 and 200": (
        lambda: png_bytes_of(np.where(labels(1) == 1, 40, 200).astype(np.uint8)),
        {},
        r"c/masks/a\.png: mask has values outside 0\.\.2 and 255 \(40, 200;",
    ),
    "decompression bomb": (lambda: bomb_png(32768, 32768), {}, r"c/masks/a\.png: cannot be decoded \(DecompressionBombError"),
    "a mask of another size": (lambda: png_bytes_of(np.zeros((40, 60), np.uint8)), {}, r"c/masks/a\.png: is 60x40 but its image is 6x4"),
    "a record pointing outside the store": (
        lambda: png_bytes_of(labels(1)),
        {"mask_file": "../../outside.png"},
        r"records/a\.json: mask_file '\.\./\.\./outside\.png' is not 'masks/a\.png'",
    ),
}


@pytest.mark.parametrize("case", list(STORE_DAMAGE))
def test_training_leaves_out_a_stored_mask_that_fails_the_import_checks_and_says_why(tmp_path: Path, case: str) -> None:
    """`python -m flows.train` used to exit 1 with a traceback naming no file (mmseg on label 200), and all training stopped."""
    make, fields, reason = STORE_DAMAGE[case]
    masks, confidence = pseudo_tree(tmp_path)
    store = stored_correction(tmp_path)
    hand_edit(store, "a", make(), **fields)
    staged = stage_training_labels(["a", "b"], IMAGES, masks, confidence, store, tmp_path / "staged", len(CLASS_NAMES))
    assert staged.used == [] and staged.mask_dir == masks  # the pseudo mask of 'a' is trained on instead
    (entry,) = staged.stale
    assert entry["image_id"] == "a" and re.search(r"^refused: .*" + reason, entry["reason"]), entry
    with pytest.raises(CorrectionError, match=reason):
        store.read_mask(store.get("a"), len(CLASS_NAMES))
    lineage = correction_lineage(tmp_path / "c", "a", IMAGES["a"], len(CLASS_NAMES))
    assert lineage is not None and re.search(reason, lineage["stale"])


def test_a_mask_without_record_and_an_unreadable_record_are_reported_not_ignored(tmp_path: Path) -> None:
    masks, confidence = pseudo_tree(tmp_path)
    store = stored_correction(tmp_path)
    write_png(store.mask_path("b"), labels(1))  # copied in by hand, no record
    write_png(store.mask_path("zebra"), labels(1))
    staged = stage_training_labels(["a", "b"], IMAGES, masks, confidence, store, tmp_path / "staged", len(CLASS_NAMES))
    assert [u["image_id"] for u in staged.used] == ["a"]
    assert [(e["image_id"], e["reason"].split(": ", 1)[1]) for e in staged.stale] == [
        ("b", "a mask without a record, never used (import it with `wsss import-corrections`, or delete it)"),
        ("zebra", "a mask without a record, never used (import it with `wsss import-corrections`, or delete it)"),
    ]
    store.record_path("a").write_text('{"image_id": "a", "image_id": "b"}')
    staged = stage_training_labels(["a", "b"], IMAGES, masks, confidence, store, tmp_path / "staged", len(CLASS_NAMES))
    assert staged.used == [] and "a.json: unreadable correction record" in staged.stale[0]["reason"]


def test_annotations_that_paint_nothing_are_not_imported_as_an_all_background_mask(tmp_path: Path) -> None:
    """A polygon of two points (or an empty RLE) used to import as a correction saying "all background"."""
    path = coco_file(tmp_path / "c.json", [[0, 0, 10, 10]])
    with pytest.raises(CorrectionError, match=r"no corrected masks found .*\n  .*c\.json: image 'big\.jpg': its annotations paint no pixel"):
        import_corrections(path, CorrectionStore(tmp_path / "store"), {"big": BIG}, CLASS_NAMES)
    assert not (tmp_path / "store").exists()


def test_a_record_linked_out_of_the_store_is_refused(tmp_path: Path) -> None:
    masks, confidence = pseudo_tree(tmp_path)
    store = stored_correction(tmp_path)
    outside = tmp_path / "elsewhere.json"
    outside.write_text(store.record_path("a").read_text())
    store.record_path("a").unlink()
    store.record_path("a").symlink_to(outside)
    staged = stage_training_labels(["a", "b"], IMAGES, masks, confidence, store, tmp_path / "staged", len(CLASS_NAMES))
    assert staged.used == [] and staged.stale[0]["reason"].endswith(f"resolves to {outside}, outside the corrections store; refused")
