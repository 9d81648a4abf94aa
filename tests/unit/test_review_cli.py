"""`wsss review --worst`, `wsss export`, `wsss import-corrections` and the lineage of a corrected mask."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.review_tree import HEIGHT, WIDTH, build_tree
from tests.in_process import wsss_cli as run
from wsss.lineage import format_lineage, image_lineage
from wsss.viz import voc_palette


def test_review_worst_prints_the_lowest_scores_first(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    build_tree(tmp_path)
    code, out, _ = run(["review", "--root", str(tmp_path), "--worst", "3"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["rank", "triage", "IoU", "ignored", "image"]
    assert [line.split()[-1] for line in lines[1:4]] == ["img05", "img04", "img03"]
    assert "Spearman(triage score, IoU) on 5 images with GT: 1.000" in out
    assert not (tmp_path / "artifacts" / "review").exists()  # --worst alone draws nothing
    code, out, _ = run(["review", "--root", str(tmp_path), "--worst", "2", "--json"], capsys)
    assert [row["image_id"] for row in json.loads(out)] == ["img05", "img04"]


def test_export_then_import_a_corrected_mask_changes_training_masks_and_lineage(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    build_tree(tmp_path)
    code, out, _ = run(["export", "--root", str(tmp_path), "--format", "png"], capsys)
    assert code == 0 and "exported 6 masks (0 human-corrected) as png" in out
    exported = tmp_path / "artifacts" / "export" / "png" / "masks" / "img03.png"
    # A person fixes img03 in an annotation tool: the whole box is its class now.
    with Image.open(exported) as png:
        corrected = np.asarray(png).copy()
    corrected[4:20, 6:26] = 3
    corrected[corrected == 255] = 0
    fixed = tmp_path / "fixed" / "img03.png"
    fixed.parent.mkdir()
    image = Image.fromarray(corrected, mode="P")
    image.putpalette(voc_palette().flatten().tolist())
    image.save(fixed)
    code, out, _ = run(["import-corrections", "--root", str(tmp_path), str(fixed.parent)], capsys)
    assert code == 0 and "img03: human-corrected (file fixed/img03.png, sha256 " in out
    assert (tmp_path / "corrections" / "masks" / "img03.png").is_file()

    code, out, _ = run(["export", "--root", str(tmp_path), "--format", "coco"], capsys)
    assert "(1 human-corrected)" in out
    document = json.loads((tmp_path / "artifacts" / "export" / "coco" / "annotations.json").read_text())
    origins = {image["wsss_image_id"]: image["wsss_origin"] for image in document["images"]}
    assert origins["img03"] == "human-corrected" and origins["img02"] == "pseudo"

    lineage = image_lineage("img03", tmp_path)
    assert lineage["correction"]["summary"].startswith("human-corrected (file fixed/img03.png, sha256 ")
    assert lineage["correction"]["stale"] is None
    assert "mask: human-corrected (file fixed/img03.png" in format_lineage(lineage)
    assert image_lineage("img02", tmp_path)["correction"] is None

    code, out, _ = run(["review", "--root", str(tmp_path), "--worst", "6"], capsys)
    assert "img03" not in out and "1 image(s) out of the queue: 1 human-corrected, 0 marked reviewed" in out


def test_a_bad_correction_exits_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    build_tree(tmp_path)
    bad = tmp_path / "img01.png"
    Image.fromarray(np.zeros((HEIGHT + 1, WIDTH), np.uint8)).save(bad)
    code, _, err = run(["import-corrections", "--root", str(tmp_path), str(bad)], capsys)
    assert code == 2 and f"{bad}: is {WIDTH}x{HEIGHT + 1} but its image is {WIDTH}x{HEIGHT}" in err
    assert not (tmp_path / "corrections" / "masks").exists()


def test_registering_the_commands_imports_nothing_heavy() -> None:
    """`wsss --help` builds the parser: the review commands must not pull numpy, PIL or the package's modules."""
    code = (
        "import argparse, sys; from wsss.review.cli import register; register(argparse.ArgumentParser().add_subparsers()); "
        "print(sorted(m for m in sys.modules if m.startswith(('wsss', 'numpy', 'PIL'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['wsss', 'wsss.errors', 'wsss.review', 'wsss.review.cli']"


def test_export_into_an_existing_file_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Was a FileExistsError traceback."""
    build_tree(tmp_path)
    target = tmp_path / "annotations.json"
    target.write_text("keep me")
    code, out, err = run(["export", "--root", str(tmp_path), "--format", "coco", "--out", str(target)], capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {target}: is an existing file; the export writes into a folder (give a folder, it is created if missing)\n"
    assert target.read_text() == "keep me"
