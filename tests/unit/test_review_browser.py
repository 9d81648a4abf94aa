"""The review report in a real browser (headless Chromium, file://): images, legends, sort, filter, pages."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmarks.browser import chromium, dump_dom
from benchmarks.review_tree import build_tree
from wsss.review.build import build_review
from wsss.review.sources import PipelineOutputs

pytestmark = pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)")


class Page(HTMLParser):
    """Rows (with their images and legend labels) and the status line of a dumped DOM."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.status: dict[str, str] = {}
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "article" and "row" in values.get("class", ""):
            self.rows.append({"id": values.get("data-id"), "iou": values.get("data-iou"), "images": [], "legend": []})
        elif tag == "img" and self.rows:
            self.rows[-1]["images"].append(values)
        elif tag == "li" and self.rows and "data-label" in values:
            self.rows[-1]["legend"].append(int(values["data-label"]))
        elif values.get("id") == "status":
            self.status = values

    @property
    def ids(self) -> list[str]:
        return [row["id"] for row in self.rows]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    build_tree(root)
    build_review(PipelineOutputs.at(root), root / "artifacts" / "review", page_size=4)
    return root / "artifacts" / "review" / "index.html"


def open_page(index: Path, fragment: str = "") -> Page:
    page = Page(dump_dom(index.as_uri() + fragment, window=(1400, 6000)))
    assert page.status.get("data-state") == "ready", page.status
    return page


def test_first_page_renders_images_and_legends_worst_first(index: Path) -> None:
    page = open_page(index)
    assert page.ids == ["img05", "img04", "img03", "img02"] and page.status["data-total"] == "6"
    for row in page.rows:
        sources = [image["src"] for image in row["images"]]
        assert len(sources) == (4 if row["id"] == "img05" else 5), sources  # photo, map, mask, confidence (+ GT)
        assert all(image.get("data-loaded") == "1" for image in row["images"]), row["images"]
    worst = page.rows[0]
    assert worst["legend"] == [0, 3, 255]  # pseudo mask of img05 (person, label 3): background, person, ignored
    assert page.rows[1]["legend"][:3] == [0, 2, 255] and page.rows[1]["legend"][3:] == [0, 2]  # mask legend, GT legend


def test_sort_by_iou_from_the_url(index: Path) -> None:
    page = open_page(index, "#sort=iou-desc")
    assert page.ids == ["img00", "img01", "img02", "img03"] and page.status["data-total"] == "5"  # img05 has no GT
    ious = [float(row["iou"]) for row in page.rows]
    assert ious == sorted(ious, reverse=True)
    assert open_page(index, "#sort=iou").ids == ["img04", "img03", "img02", "img01"]


def test_filters_and_pagination(index: Path) -> None:
    assert open_page(index, "#cls=2").ids == ["img04", "img01"]  # tagged dog
    assert open_page(index, "#tmin=0.8&tmax=0.95").ids == ["img02", "img01"]
    assert open_page(index, "#imax=0.8&sort=id").ids == ["img03", "img04"]
    second = open_page(index, "#page=2")
    assert second.ids == ["img01", "img00"] and second.status["data-shown"] == "2"
    assert open_page(index, "#q=img03").ids == ["img03"]
