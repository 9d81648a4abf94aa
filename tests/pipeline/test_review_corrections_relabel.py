"""A human correction survives a relabel that rewrites the image's pseudo mask, is what the retrain
learns from, and is what lineage reports; the review stage writes its report from the same run."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.in_process import wsss_cli
from tests.params_edit import edit_params
from tests.pipeline.relabel_data import PAIR, tags_of, write_photo, write_tags
from tests.pipeline.repos import run
from wsss.viz import voc_palette


def tree_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_relabel_keeps_the_correction_and_the_retrain_uses_it(
    relabeled_pair: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, env = relabeled_pair  # after a first relabel run
    monkeypatch.chdir(repo)  # for the in-process `wsss` commands
    tags = tags_of(PAIR)
    python = sys.executable
    pseudo_before = (repo / "artifacts/pseudo/masks/cat_a.png").read_bytes()

    # A person draws the cat as one box (label of "cat" in the sample classes) and imports it.
    classes = json.loads((repo / "artifacts/prepare/manifest.json").read_text())["class_names"]
    corrected = np.zeros((160, 160), dtype=np.uint8)
    corrected[20:140, 30:150] = classes.index("cat") + 1
    fixed = repo / "fixed" / "cat_a.png"
    fixed.parent.mkdir()
    png = Image.fromarray(corrected, mode="P")
    png.putpalette(voc_palette().flatten().tolist())
    png.save(fixed)
    code, output, _ = wsss_cli(["import-corrections", "fixed"], capsys)
    assert code == 0 and "cat_a: human-corrected (file fixed/cat_a.png" in output
    store_before = tree_hashes(repo / "corrections")

    # The scheduled relabel: cat_a's tags changed (its pseudo mask is rewritten), one image added,
    # and enough changed to retrain.
    tags["cat_a"] = ("cat", "person")
    write_photo(repo, "rocket_a")
    write_tags(repo, {**tags, "rocket_a": ("rocket",)})
    edit_params(repo, {"relabel.retrain_share": 0.1})
    run([python, "-m", "flows.relabel", "run"], repo, env)
    log = [json.loads(line) for line in (repo / "artifacts/relabel/runs.jsonl").read_text().splitlines()]
    assert "cat_a" in log[-1]["relabeled"] and log[-1]["retrained"] is True
    assert (repo / "artifacts/pseudo/masks/cat_a.png").read_bytes() != pseudo_before  # the pseudo mask was rewritten

    assert tree_hashes(repo / "corrections") == store_before  # the correction is untouched
    model = json.loads((repo / "artifacts/train/model.json").read_text())
    (used,) = model["corrections"]["used"]
    record = json.loads((repo / "corrections/records/cat_a.json").read_text())
    assert used["image_id"] == "cat_a" and used["mask_sha256"] == record["mask_sha256"] and model["corrections"]["stale"] == []
    with Image.open(repo / ".wsss-scratch/train-labels/masks/cat_a.png") as staged:
        np.testing.assert_array_equal(np.asarray(staged), corrected)  # what the trainer read
    assert (np.load(repo / ".wsss-scratch/train-labels/confidence/cat_a.npy") == 1).all()
    assert "Human-corrected masks used: 1 (cat_a)" in (repo / "artifacts/train/MODEL_CARD.md").read_text()  # the retrain's card

    code, lineage, _ = wsss_cli(["lineage", "cat_a"], capsys)
    assert code == 0 and f"mask: human-corrected (file fixed/cat_a.png, sha256 {record['source_sha256']}, time {record['imported_at']})" in lineage

    # The review stage's flow on the same run: the corrected image is flagged.
    run([python, "-m", "flows.review"], repo, env)
    triage = json.loads((repo / "artifacts/review/triage.json").read_text())
    assert {row["image_id"]: row["origin"] for row in triage["images"]}["cat_a"] == "human-corrected"
    assert (repo / "artifacts/review/index.html").is_file() and len(triage["images"]) == 3
