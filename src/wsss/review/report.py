"""The static review report: plain HTML + one small vanilla JS file, opened from disk (file://).

Layout of the report folder:

    index.html, run.html         the image review page and the run page
    static/review.js, .css       written by this package (no CDN, no network)
    data/meta.js                 class names/colours, counts, colour bars: size grows with classes, not images
    data/records/NNN/RRRRRR.js   one record per image, named by its worst-first rank
    data/index.js                compact columns of every image (score, IoU, tags), loaded only
                                 when the reader sorts or filters away from the default view
    img/NNN/...                  panels (photo, map per tag, mask, confidence, GT, correction)
    triage.json                  every image's triage score, terms, IoU and rank (machine-readable)

Records are loaded with `<script>` tags (`fetch` of file:// URLs is blocked by browsers). The
default view (worst-first) needs only the records of its page, so the first page weighs the
same for 100 or 100,000 images.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from wsss.io.atomic import write_bytes_atomic
from wsss.review.records import ReviewRecord, RunSummary
from wsss.review.render import CONFIDENCE_COLORMAP, HEAT_COLORMAP, colormap_stops, legend_entries
from wsss.review.triage import __doc__ as TRIAGE_DOC
from wsss.settings import plain

PAGE_SIZE = 20
RECORDS_PER_FOLDER = 1000
SORTS = {
    "triage": "triage score, worst first",
    "triage-desc": "triage score, best first",
    "iou": "IoU, lowest first (images with GT)",
    "iou-desc": "IoU, highest first (images with GT)",
    "id": "image id",
}


def _js(call: str, *values: Any) -> bytes:
    arguments = ",".join(json.dumps(v, separators=(",", ":"), sort_keys=True, allow_nan=False) for v in values)
    return f"{call}({arguments});\n".encode()


def record_file(rank: int) -> str:
    return f"data/records/{rank // RECORDS_PER_FOLDER:03d}/{rank:06d}.js"


def write_file(path: Path, data: bytes) -> None:
    """Write atomically without fsync (`wsss.io.atomic`: a report is rebuilt, never precious)."""
    write_bytes_atomic(path, data, durable=False)


_write = write_file


def _static(name: str) -> bytes:
    return resources.files("wsss.review").joinpath("static", name).read_bytes()


def clean_report_folder(output: Path) -> None:
    """Remove what an earlier report left (only the report's own files and folders)."""
    for name in ("data", "img", "static"):
        shutil.rmtree(output / name, ignore_errors=True)
    for name in ("index.html", "run.html", "triage.json"):
        (output / name).unlink(missing_ok=True)


def write_report(records: Sequence[ReviewRecord], run: RunSummary, output: Path, page_size: int = PAGE_SIZE) -> Path:
    """Write the report for `records` (any order; panels already under `output`). Returns index.html."""
    ordered = sorted(records, key=lambda r: r.queue_key)  # the queue first (worst first), then corrected / reviewed
    colours = {
        label: colour for label, _, colour in legend_entries([*range(len(run.class_names)), run.ignore_index], run.class_names, run.ignore_index)
    }
    meta = {
        "title": run.title,
        "total": len(ordered),
        "page_size": page_size,
        "records_per_folder": RECORDS_PER_FOLDER,
        "class_names": run.class_names,
        "ignore_index": run.ignore_index,
        "colors": {str(k): v for k, v in colours.items()},
        "sorts": SORTS,
        "colormaps": {"map": colormap_stops(HEAT_COLORMAP), "confidence": colormap_stops(CONFIDENCE_COLORMAP)},
        "confidence_threshold": run.pseudo.confidence_threshold,
        "num_with_ground_truth": run.num_with_ground_truth,
        "num_corrected": run.num_corrected,
        "num_reviewed": run.num_reviewed,
        "queue_length": sum(r.state == "to review" for r in ordered),
    }
    _write(output / "static" / "review.js", _static("review.js"))
    _write(output / "static" / "review.css", _static("review.css"))
    _write(output / "data" / "meta.js", _js("REVIEW.setMeta", meta))
    for rank, record in enumerate(ordered):
        _write(output / record_file(rank), _js("REVIEW.addRecord", rank, {**record.to_dict(), "rank": rank}))
    columns = {
        "id": [r.image_id for r in ordered],
        "score": [r.triage_score for r in ordered],
        "iou": [r.iou for r in ordered],
        "tags": [r.tag_labels for r in ordered],
        "corrected": [int(r.origin == "human-corrected") for r in ordered],
        "done": [int(r.state != "to review") for r in ordered],
    }
    _write(output / "data" / "index.js", _js("REVIEW.setIndex", columns))
    triage = [
        {
            "rank": rank,
            "image_id": r.image_id,
            "triage_score": r.triage_score,
            "terms": r.triage_terms,
            "iou": r.iou,
            "origin": r.origin,
            "state": r.state,
        }
        for rank, r in enumerate(ordered)
    ]
    _write(output / "triage.json", (json.dumps({"weights": run.triage_weights, "images": triage}, indent=1) + "\n").encode())
    _write(output / "index.html", index_html(run).encode())
    _write(output / "run.html", run_html(run, [r for r in ordered if r.state == "to review"][:10]).encode())
    return output / "index.html"


def _head(title: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="stylesheet" href="static/review.css">\n</head>\n'
    )


RANDOM_WEIGHTS_WARNING = (
    "RANDOM CLIP WEIGHTS - NOT MEANINGFUL: CLIP was randomly initialised (clip.random_init), so "
    "its maps, masks, scores and triage say nothing about the images"
)


def _nav(current: str, run: RunSummary) -> str:
    """The top bar of every page, under the random-weights warning when CLIP was random."""
    links = [("index.html", "Images"), ("run.html", "Run")]
    items = "".join(f'<a href="{href}"{" class=current" if href == current else ""}>{text}</a>' for href, text in links)
    warning = f'<p class="random-weights" role="alert">{html.escape(RANDOM_WEIGHTS_WARNING)}</p>\n' if run.random_weights else ""
    return warning + f'<nav class="top"><span class="brand">{html.escape(run.title)}</span>{items}</nav>\n'


ORIGINS = '<option value="">any</option><option value="pseudo">pseudo</option><option value="human-corrected">human-corrected</option>'


def index_html(run: RunSummary) -> str:
    """The image page: controls, status line, rows (filled by review.js), pager."""
    sorts = "".join(f'<option value="{key}">{html.escape(text)}</option>' for key, text in SORTS.items())
    classes = '<option value="">all classes</option>' + "".join(
        f'<option value="{label}">{html.escape(name)}</option>' for label, name in enumerate(run.class_names) if label
    )
    controls = f"""<form id="controls" autocomplete="off">
<label>Sort <select name="sort">{sorts}</select></label>
<label>Class <select name="cls">{classes}</select></label>
<label>Triage <input name="tmin" size="4" placeholder="min"> – <input name="tmax" size="4" placeholder="max"></label>
<label>IoU <input name="imin" size="4" placeholder="min"> – <input name="imax" size="4" placeholder="max"></label>
<label>Mask <select name="origin"><option value="">any</option><option value="pseudo">pseudo</option>
<option value="human-corrected">human-corrected</option></select></label>
<label>Queue <select name="state"><option value="">all images</option><option value="queue">to review</option>
<option value="done">corrected or reviewed</option></select></label>
<label>Id <input name="q" size="12" placeholder="contains"></label>
<button type="submit">Apply</button> <button type="button" id="reset">Reset</button>
</form>"""
    return (
        _head(f"{run.title}: images")
        + "<body>\n"
        + _nav("index.html", run)
        + controls
        + '\n<p id="status" data-state="loading">Loading…</p>\n<div id="pager-top" class="pager"></div>\n'
        '<main id="rows"></main>\n<div id="pager" class="pager"></div>\n'
        "<noscript>This report needs JavaScript (no network access is used).</noscript>\n"
        '<script src="static/review.js"></script>\n<script src="data/meta.js"></script>\n</body>\n</html>\n'
    )


def iou_chart_svg(per_class_iou: dict[str, float], colours: dict[str, str]) -> str:
    """Horizontal bar chart of per-class IoU (sorted, highest first) as inline SVG."""
    rows = sorted(per_class_iou.items(), key=lambda item: -item[1])
    if not rows:
        return "<p>No image has ground truth: no IoU to chart.</p>"
    bar_height, label_width, width = 20, 130, 360
    height = bar_height * len(rows) + 24
    parts = [f'<svg class="chart" role="img" aria-label="per-class IoU" width="{label_width + width + 60}" height="{height}">']
    for row, (name, iou) in enumerate(rows):
        y = row * bar_height
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 14}" text-anchor="end">{html.escape(name)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{max(1.0, width * iou):.1f}" height="{bar_height - 6}" '
            f'fill="{colours.get(name, "#888")}" stroke="#333" stroke-width="0.5"/>'
            f'<text x="{label_width + width * iou + 6:.1f}" y="{y + 14}">{iou:.3f}</text>'
        )
    axis_y = bar_height * len(rows) + 4
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = label_width + width * tick
        parts.append(
            f'<line x1="{x}" y1="0" x2="{x}" y2="{axis_y}" stroke="#ccc" stroke-dasharray="2,2"/>'
            f'<text x="{x}" y="{axis_y + 14}" text-anchor="middle" class="tick">{tick:g}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table class=facts>{cells}</table>"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def run_html(run: RunSummary, worst: Sequence[ReviewRecord]) -> str:
    """The run page: counts, per-class IoU chart, protocol, triage formula, lineage, legend."""
    entries = legend_entries([*range(len(run.class_names)), run.ignore_index], run.class_names, run.ignore_index)
    colours = {name: colour for _, name, colour in entries}
    legend = "".join(f'<li><span class="swatch" style="background:{c}"></span>{label}: {html.escape(n)}</li>' for label, n, c in entries)
    counts = _table(
        [
            ("images in the report", run.num_images),
            ("images with ground truth", run.num_with_ground_truth),
            ("in the review queue (neither corrected nor marked reviewed)", run.num_images - run.num_corrected - run.num_reviewed),
            ("human-corrected masks used by training", run.num_corrected),
            ("stale corrections (not used)", len(run.stale_corrections)),
            ("marked reviewed (reviewed.json)", run.num_reviewed),
            ("stale review marks (back in the queue)", len(run.stale_marks)),
            ("mIoU of the pseudo masks on images with GT", _fmt(run.mean_iou)),
            ("Spearman(triage score, per-image IoU)", _fmt(run.triage_spearman)),
            *((f"images whose mask has {name}", count) for name, count in run.label_counts.items()),
        ]
    )
    crf = "on" if run.pseudo.crf else "off"
    protocol = f"""<ul>
<li>Scored: the pseudo labels <em>before</em> the confidence filter (<code>artifacts/pseudo/raw/</code>, dense CRF {crf}),
the same artifact as <code>pseudo.crf={crf}</code> in <code>metrics.json</code>.</li>
<li>Per class: one confusion matrix over every pixel of the images with ground truth whose GT is a class
(GT 255 not counted); a predicted 255 counts as a miss. IoU = TP / (TP + FP + FN); mIoU averages classes with GT pixels.</li>
<li>Per image: the same rule on the image alone.</li>
<li>Pseudo settings: {html.escape(json.dumps(plain(run.pseudo), sort_keys=True))}</li>
</ul>"""
    weights = ", ".join(f"{k} {v:g}" for k, v in run.triage_weights.items())
    triage_doc = html.escape((TRIAGE_DOC or "").split("\n\n", 1)[-1].strip())
    worst_items = "".join(
        f'<li><a href="index.html#q={html.escape(r.image_id)}">{html.escape(r.image_id)}</a> '
        f"{r.triage_score:.3f}{'' if r.iou is None else f' (IoU {r.iou:.3f})'}</li>"
        for r in worst
    )
    stale = "".join(f"<li>{html.escape(s['image_id'])}: {html.escape(s['reason'])}</li>" for s in run.stale_corrections)
    lineage = _table([(k, json.dumps(v, sort_keys=True) if isinstance(v, dict) else v) for k, v in run.lineage.items()])
    return (
        _head(f"{run.title}: run")
        + "<body>\n"
        + _nav("run.html", run)
        + '<main class="run">\n'
        + _dataset_notes(run)
        + f"<section><h2>Counts</h2>{counts}</section>\n"
        f"<section><h2>Per-class IoU of the pseudo masks</h2>{iou_chart_svg(run.per_class_iou, colours)}</section>\n"
        f"<section><h2>Evaluation protocol</h2>{protocol}</section>\n"
        f"<section><h2>Triage score</h2><p>Weights: {html.escape(weights)}.</p><pre>{triage_doc}</pre>"
        f"<h3>Worst first (the queue: neither corrected nor marked reviewed)</h3><ol>{worst_items}</ol></section>\n"
        f'<section><h2>Class legend</h2><ul class="legend">{legend}</ul></section>\n'
        f"<section><h2>Lineage of the run</h2>{lineage}</section>\n"
        + (f"<section><h2>Stale corrections</h2><ul>{stale}</ul></section>\n" if stale else "")
        + _stale_marks(run)
        + "</main>\n</body>\n</html>\n"
    )


def _dataset_notes(run: RunSummary) -> str:
    """What the dataset and its class list did to the method: ground truth without background,
    background words dropped for a class, near-synonyms kept (prepare's and prompts' warnings)."""
    items = [f'<li class="warning">{html.escape(run.ground_truth_warning)}</li>'] if run.ground_truth_warning else []
    items += [
        f"<li>background word <b>{html.escape(n.get('word', ''))}</b> dropped: it {html.escape(n.get('reason', ''))}</li>"
        for n in run.background_notes.get("dropped", [])
    ]
    items += [
        f"<li>background word <b>{html.escape(n.get('word', ''))}</b> {html.escape(n.get('reason', ''))}</li>"
        for n in run.background_notes.get("near_synonyms", [])
    ]
    if not items:
        return ""
    return f'<section class="notes"><h2>Dataset and classes</h2><ul>{"".join(items)}</ul></section>\n'


def _stale_marks(run: RunSummary) -> str:
    items = "".join(f"<li>{html.escape(m['image_id'])}: {html.escape(m['reason'])}</li>" for m in run.stale_marks)
    return f"<section><h2>Stale review marks</h2><ul>{items}</ul></section>\n" if items else ""
