"""The review queue remembers: corrected and marked-reviewed images leave the worst-first queue,
import-corrections refreshes the report, the corrected mask shows its IoU and legend, and every
page says when CLIP was random, which dataset it is and what its classes did to the method."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.browser import chromium, dump_dom
from benchmarks.review_tree import build_tree
from tests.unit.test_review_cli import run
from tests.unit.test_review_report import js_payload
from wsss.catalog import ArtifactLayout
from wsss.datasets.validation import GroundTruthCensus
from wsss.review.report import RANDOM_WEIGHTS_WARNING, record_file
from wsss.text.vocabulary import ClassVocabulary, background_word_notes, vocabulary_document

WORST_FIRST = ["img05", "img04", "img03", "img02", "img01", "img00"]


def triage(root: Path) -> list[dict]:
    return json.loads((root / "artifacts/review/triage.json").read_text())["images"]


def listed(out: str) -> list[str]:
    """The image ids of `wsss review --worst`'s table."""
    return [line.split()[-1] for line in out.splitlines() if re.match(r"\s+\d+\s+\d\.\d{3}", line)]


def correct_with_its_ground_truth(root: Path, image_id: str) -> Path:
    with Image.open(root / f"data/fake/SegmentationClass/{image_id}.png") as png:
        labels = np.asarray(png).copy()
    fixed = root / "fixed" / f"{image_id}.png"
    fixed.parent.mkdir(exist_ok=True)
    Image.fromarray(labels).save(fixed)  # 8-bit labels
    return fixed


def test_a_corrected_image_leaves_the_queue_and_the_import_refreshes_the_report(tmp_path: Path, capsys) -> None:
    """Before: img04 stayed rank 2 of the worst-first queue after its correction, and the report
    kept showing its pseudo mask until `wsss review` was run by hand."""
    build_tree(tmp_path)
    assert run(["review", "--root", str(tmp_path)], capsys)[0] == 0
    assert [row["image_id"] for row in triage(tmp_path)] == WORST_FIRST

    code, out, _ = run(["import-corrections", "--root", str(tmp_path), str(correct_with_its_ground_truth(tmp_path, "img04"))], capsys)
    assert code == 0 and "report refreshed: " in out
    rows = triage(tmp_path)
    queue = [row["image_id"] for row in rows if row["state"] == "to review"]
    assert queue == ["img05", "img03", "img02", "img01", "img00"]
    assert rows[-1]["image_id"] == "img04" and rows[-1]["state"] == "corrected" and rows[-1]["rank"] == 5
    # The corrected mask's panel: its IoU against the ground truth (it is the ground truth) and its labels' legend.
    _, record = js_payload(tmp_path / "artifacts/review" / record_file(5))
    assert record["corrected_iou"] == 1.0 and record["corrected_labels"] == [0, 2] and record["iou"] < 1.0
    assert (tmp_path / "artifacts/review" / record["panels"]["corrected"]).is_file()

    code, out, _ = run(["review", "--root", str(tmp_path), "--worst", "6"], capsys)
    assert listed(out) == queue and "1 image(s) out of the queue: 1 human-corrected, 0 marked reviewed" in out


def test_marked_reviewed_images_leave_the_queue_until_their_mask_changes(tmp_path: Path, capsys) -> None:
    build_tree(tmp_path)
    code, out, err = run(["review", "--root", str(tmp_path), "--mark-reviewed", "img05", "img03", "--worst", "6"], capsys)
    assert code == 0 and "marked 2 image(s) reviewed" in err
    assert listed(out) == ["img04", "img02", "img01", "img00"]
    marks = json.loads((tmp_path / "reviewed.json").read_text())["images"]
    assert sorted(marks) == ["img03", "img05"] and all(re.fullmatch(r"[0-9a-f]{64}", m["mask_sha256"]) for m in marks.values())

    # A relabel rewrites img03's mask: the mark was for the old one, so img03 is back in the queue.
    mask = tmp_path / "artifacts/pseudo/masks/img03.png"
    with Image.open(mask) as png:
        changed = Image.fromarray(np.where(np.asarray(png) == 255, 0, np.asarray(png)).astype(np.uint8), mode="P")
        changed.putpalette(png.getpalette())
    changed.save(mask)
    code, out, _ = run(["review", "--root", str(tmp_path), "--worst", "6"], capsys)
    assert "img03" in listed(out) and "img05" not in listed(out)
    assert run(["review", "--root", str(tmp_path)], capsys)[0] == 0
    page = (tmp_path / "artifacts/review/run.html").read_text()
    assert "Stale review marks" in page and "img03: the pseudo mask changed since it was marked reviewed" in page
    assert re.search(r"marked reviewed \(reviewed.json\)</th><td>1<", page)

    code, out, err = run(["review", "--root", str(tmp_path), "--unmark-reviewed", "img05", "--worst", "1"], capsys)
    assert code == 0 and "took back 1 review mark(s)" in err and listed(out) == ["img05"]
    assert "img05" not in json.loads((tmp_path / "reviewed.json").read_text())["images"]
    assert next(row["state"] for row in triage(tmp_path)) == "to review"  # a mark change rewrites the report


def test_bad_marks_stop_in_one_line_before_anything_is_written(tmp_path: Path, capsys) -> None:
    build_tree(tmp_path)
    code, out, err = run(["review", "--root", str(tmp_path), "--mark-reviewed", "img01", "nope"], capsys)
    assert (code, out) == (2, "") and "no image with a pseudo mask is called 'nope'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "reviewed.json").exists()
    (tmp_path / "reviewed.json").write_text('{"images": {"img01": {"image_sha256": "x"}}}')
    code, out, err = run(["review", "--root", str(tmp_path), "--worst", "1"], capsys)
    assert (code, out) == (2, "") and f"{tmp_path / 'reviewed.json'}: images.img01: a mark needs" in err


def test_worst_prints_the_table_on_stdout_and_progress_on_stderr(tmp_path: Path, capsys) -> None:
    build_tree(tmp_path)
    code, out, err = run(["review", "--root", str(tmp_path), "--worst", "2"], capsys)
    assert code == 0 and out.splitlines()[0].split() == ["rank", "triage", "IoU", "ignored", "image"]
    assert "analysed" not in out and "6/6 images analysed" in err


def test_every_page_warns_of_random_weights_and_the_run_page_names_the_dataset_and_its_class_notes(tmp_path: Path, capsys) -> None:
    build_tree(tmp_path)
    layout = ArtifactLayout(tmp_path)
    # What the tree's folder dataset would be called by the loader (its tags file's stem) ...
    manifest = json.loads(layout.manifest.read_text())
    layout.manifest.write_text(json.dumps({**manifest, "name": "tags"}))
    # ... prompts' vocabulary.json with a stuff class, and prepare's census of a ground truth without background.
    vocabulary = ClassVocabulary.build(["water", "cat"], background_words=("lake", "sky"))
    notes = background_word_notes(vocabulary, derived=False) | {"dropped": [{"word": "water", "class": "water", "reason": "is class 'water'"}]}
    layout.vocabulary.parent.mkdir(parents=True, exist_ok=True)
    layout.vocabulary.write_text(json.dumps(vocabulary_document(vocabulary, "a {}.", notes)))
    meta = json.loads(layout.manifest_meta.read_text())
    layout.manifest_meta.write_text(json.dumps({**meta, "ground_truth": GroundTruthCensus(5, 0).to_dict()}))

    assert run(["review", "--root", str(tmp_path)], capsys)[0] == 0
    index, page = ((layout.review / name).read_text() for name in ("index.html", "run.html"))
    for text in (index, page):
        assert RANDOM_WEIGHTS_WARNING.split(":")[0] in text  # the tree's CLIP weights are "random-init (test)"
        assert "<title>wsss review: fake" in text and "tags" not in text.split("</nav>")[0]  # the one name, as Prefect says
    assert "background word <b>water</b> dropped: it is class &#x27;water&#x27;" in page
    assert "background word <b>lake</b> kept, but a near-synonym of &#x27;water&#x27;" in page
    assert "none of the 5 masks has a pixel labelled 0" in page and "classes.background: []" in page


@pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)")
def test_in_the_browser_the_queue_comes_first_and_the_corrected_panel_has_its_legend(tmp_path: Path, capsys) -> None:
    build_tree(tmp_path)
    run(["import-corrections", "--root", str(tmp_path), str(correct_with_its_ground_truth(tmp_path, "img04"))], capsys)
    index = (tmp_path / "artifacts/review/index.html").as_uri()
    dom = dump_dom(index, window=(1400, 6000))
    ids = re.findall(r'<article class="row" data-id="([^"]+)"', dom)
    assert ids == ["img05", "img03", "img02", "img01", "img00", "img04"]
    corrected = dom[dom.index('data-id="img04"') :]
    assert "human-corrected mask (used for training) · IoU 1.000" in corrected
    caption = corrected[corrected.index("human-corrected mask (used for training)") :]
    assert re.search(r'<li data-label="2">', caption[: caption.index("</figure>")])
    assert "5 to review" in dom and RANDOM_WEIGHTS_WARNING.split(":")[0] in dom
    queue = dump_dom(index + "#state=done", window=(1400, 3000))
    assert re.findall(r'<article class="row" data-id="([^"]+)"', queue) == ["img04"]
