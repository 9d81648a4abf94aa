"""`dvc plots show` renders in headless Chromium with no network: charts drawn, no bar above IoU 1.

The repository's dvc.yaml, chart templates (`.dvc/plots/`) and `.dvc/config` (offline HTML page)
are copied into a throw-away DVC repository next to plot files made from scores of nine
artifacts whose per-class IoU is high, so bars stacked per class would reach far beyond 1.0.
The page reports what each chart drew (`<pre id="wsss-chart-report">`, see
`wsss.plots.offline_html`); the test reads it from the DOM Chromium dumps.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.browser import chromium, dump_dom
from tests.pipeline.repos import ROOT, pipeline_env, run
from wsss.metrics import ConfusionAccumulator
from wsss.plots import per_class_iou_rows, pipeline_miou_rows

CLASSES = ("bottle", "chair", "person")
ARTIFACTS = (
    "cam_raw.alpha=1",
    "cam_raw.alpha=2",
    "cam_refined.alpha=1",
    "cam_refined.alpha=2",
    "pseudo.crf=off",
    "pseudo.crf=on",
    "pseudo_confident_pixels.crf=on",
    "model.scales=1.crf=off",
    "model.scales=1.crf=on",
)


def sample_scores() -> dict:
    """Nine artifacts, each with IoU >= 0.8 for every class (so stacked bars would reach ~8)."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, len(CLASSES) + 1, (60, 80)).astype(np.uint8)
    scores = {}
    for index, key in enumerate(ARTIFACTS):
        prediction = truth.copy()
        wrong = rng.random(truth.shape) < 0.02 * (1 + index % 3)
        prediction[wrong] = (prediction[wrong] + 1) % (len(CLASSES) + 1)
        accumulator = ConfusionAccumulator(len(CLASSES) + 1)
        accumulator.update(truth, prediction)
        scores[key] = accumulator.scores()
    return scores


def plots_repo(destination: Path) -> Path:
    """A DVC repository with this checkout's plot definitions, templates and config, and plot data."""
    destination.mkdir(parents=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(ROOT / name, destination / name)
    env = pipeline_env(destination)
    run(["git", "init", "-q"], destination, env)
    run([sys.executable, "-m", "dvc", "init", "-q"], destination, env)
    for template in (ROOT / ".dvc" / "plots").glob("*.json"):
        (destination / ".dvc" / "plots").mkdir(exist_ok=True)
        shutil.copy2(template, destination / ".dvc" / "plots" / template.name)
    shutil.copy2(ROOT / ".dvc" / "config", destination / ".dvc" / "config")
    from wsss.plots.offline_html import write_offline_template

    write_offline_template(destination / ".dvc" / "plots" / "offline.html")
    plots = destination / "artifacts" / "plots"
    (plots / "overlays").mkdir(parents=True)
    scores = sample_scores()
    (plots / "per_class_iou.json").write_text(json.dumps(per_class_iou_rows(scores, CLASSES)))
    (plots / "pipeline_miou.json").write_text(json.dumps(pipeline_miou_rows(scores)))
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(plots / "overlays" / "img.png")
    curves = destination / "artifacts" / "train" / "curves"
    curves.mkdir(parents=True)
    train = [{"iter": i, "loss": 2.0 / i, "lr": 0.01 * (1 - i / 21) ** 0.9} for i in range(1, 21)]
    (curves / "train.json").write_text(json.dumps(train))
    (curves / "val.json").write_text(json.dumps([{"iter": 10, "miou": 0.2}, {"iter": 20, "miou": 0.3}]))
    return destination


def chart_report(page: Path) -> tuple[str, list[dict]]:
    dom = dump_dom(page.as_uri(), timeout=180)
    found = re.search(r'<pre id="wsss-chart-report"[^>]*>(.*?)</pre>', dom, re.DOTALL)
    assert found, "no chart report in the rendered page (chart library not loaded?)"
    return dom, json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
def test_dvc_plots_render_offline_with_unstacked_bars(tmp_path: Path) -> None:
    pytest.importorskip("vl_convert", reason="needs vl-convert-python (pinned in requirements.lock) for the chart library")
    repo = plots_repo(tmp_path / "repo")
    env = pipeline_env(repo)
    run([sys.executable, "-m", "dvc", "plots", "show", "-o", "out"], repo, env)
    page = repo / "out" / "index.html"
    text = page.read_text()
    assert "<script src" not in text and "cdn.jsdelivr" not in text  # nothing to fetch

    dom, report = chart_report(page)
    assert all("error" not in chart for chart in report), report
    by_title = {chart["title"]: chart for chart in report}
    assert len(report) == 5, sorted(by_title)  # pipeline, per-class, loss, lr, validation mIoU
    assert all(chart["marks"] > 0 for chart in report), report
    assert dom.count("<svg") >= 5 and "<img" in dom

    per_class = next(chart for title, chart in by_title.items() if title.startswith("Per-class IoU"))
    rows = json.loads((repo / "artifacts" / "plots" / "per_class_iou.json").read_text())
    assert per_class["bars"] == len(rows) == len(ARTIFACTS) * (len(CLASSES) + 1)
    assert 0.8 < per_class["max_x"] <= 1.0 + 1e-9, per_class  # drawn, and no bar beyond IoU 1
    pipeline = next(chart for title, chart in by_title.items() if title.startswith("mIoU along the pipeline"))
    assert pipeline["bars"] == len(ARTIFACTS) and pipeline["max_y"] <= 1.0 + 1e-9
