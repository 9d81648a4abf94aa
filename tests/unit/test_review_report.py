"""The review report built from a hand-made pipeline tree: records, ranking, run page, page weight."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks.review_tree import build_tree
from wsss.pseudo.settings import PseudoSettings
from wsss.review.build import build_review
from wsss.review.records import ReviewRecord, RunSummary
from wsss.review.report import record_file, write_report
from wsss.review.sources import PipelineOutputs

WORST_FIRST = ["img05", "img04", "img03", "img02", "img01", "img00"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    build_tree(root)
    build_review(PipelineOutputs.at(root), root / "artifacts" / "review", page_size=4)
    return root / "artifacts" / "review"


def js_payload(path: Path) -> list:
    call = re.fullmatch(r"REVIEW\.\w+\((.*)\);\n", path.read_text(), re.DOTALL)
    assert call, path
    return json.loads(f"[{call.group(1)}]")


def test_records_are_named_by_worst_first_rank(report: Path) -> None:
    ranks = [js_payload(report / record_file(rank)) for rank in range(6)]
    assert [rank for rank, _ in ranks] == list(range(6))
    assert [record["image_id"] for _, record in ranks] == WORST_FIRST
    worst = ranks[0][1]
    assert worst["iou"] is None and worst["ground_truth_labels"] is None  # img05 has no GT
    best = ranks[-1][1]
    assert best["iou"] == 1.0 and best["tag_probabilities"] == [0.95] and best["tags"] == ["cat"]
    assert best["lineage"]["flow_run_ids"] == {"cams": "flow-cams-1", "refine": "flow-refine-1", "pseudo": "flow-pseudo-1"}
    assert best["lineage"]["template"] == "a clean origami {}." and best["lineage"]["model"]["weights"] == "random-init (test)"
    for key in ("photo", "mask", "confidence", "ground_truth"):
        assert (report / best["panels"][key]).is_file(), key
    assert len(best["panels"]["maps"]) == 1 and "corrected" not in best["panels"]


def test_index_and_triage_json_hold_every_image(report: Path) -> None:
    (columns,) = js_payload(report / "data" / "index.js")
    assert columns["id"] == WORST_FIRST and columns["score"] == sorted(columns["score"])
    assert columns["iou"][0] is None and columns["tags"][1] == [2]  # img04 is tagged dog (label 2)
    triage = json.loads((report / "triage.json").read_text())
    assert [row["image_id"] for row in triage["images"]] == WORST_FIRST
    assert set(triage["weights"]) == set(triage["images"][0]["terms"])


def test_run_page_has_the_chart_protocol_and_counts(report: Path) -> None:
    page = (report / "run.html").read_text()
    # per-class IoU of the raw labels: background and the three classes
    assert page.count("<rect") == 4 and ">0.875</text>" in page.replace("0.875</text>", ">0.875</text>")
    assert "Evaluation protocol" in page and "before</em> the confidence filter" in page
    assert re.search(r"images with ground truth</th><td>5<", page)
    assert re.search(r"Spearman\(triage score, per-image IoU\)</th><td>1\.000<", page)
    assert 'href="index.html#q=img05"' in page


def fake_records(count: int) -> list[ReviewRecord]:
    return [
        ReviewRecord(
            f"image{i:06d}",
            500,
            375,
            ["cat"],
            [0.5],
            [1],
            [0, 1],
            None,
            0.5,
            {"tag_doubt": 0.0},
            None,
            0.1,
            0.9,
            panels={"photo": "p.webp", "maps": ["m.webp"], "mask": "k.webp", "confidence": "c.webp"},
        )
        for i in range(count)
    ]


def test_first_page_weight_does_not_grow_with_the_number_of_images(tmp_path: Path) -> None:
    def first_page_bytes(count: int) -> int:
        run = RunSummary("t", ["background", "cat"], 255, count, 0, 0, [], {}, None, None, PseudoSettings(), {}, {"tag_doubt": 1.0})
        folder = tmp_path / str(count)
        write_report(fake_records(count), run, folder, page_size=20)
        loaded = [folder / "index.html", folder / "static" / "review.js", folder / "static" / "review.css", folder / "data" / "meta.js"]
        loaded += [folder / record_file(rank) for rank in range(20)]
        return sum(path.stat().st_size for path in loaded)

    small, large = first_page_bytes(40), first_page_bytes(1000)
    assert abs(large - small) <= 20, (small, large)  # a few digits of the total count
    assert (tmp_path / "1000" / "data" / "index.js").stat().st_size > 20 * (tmp_path / "40" / "data" / "index.js").stat().st_size
