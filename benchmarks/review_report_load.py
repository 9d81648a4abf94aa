"""Load time and page weight of the review report in headless Chromium (file://, no server).

Builds a pipeline output tree of N images (real photos from `skimage.data`, cropped and resized to
480x360, hand-made maps and masks, GT on a third), writes the report with `wsss.review`
(panels and all), then opens it in a fresh headless Chromium through the DevTools protocol and
prints, per view:

* time to first render: navigation start -> the first page's rows are in the DOM (`REVIEW.renderedAt`),
  and -> the first row's images have loaded;
* page weight: bytes of every file the page requested until 1 s without a new request (index.html,
  JS/CSS, data files, the lazy panels the browser fetched near the viewport; not those further down).

Views: the default worst-first page, and the same report sorted by IoU (which loads the compact
index of all images). A second, 10x larger report reuses the first one's panels (same
pictures, 10x the records) to show that the first page does not grow with the number of images.

    python -m benchmarks.review_report_load [--images 1000] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
from skimage import data as skdata
from skimage.transform import resize

from benchmarks.browser import chromium, devtools
from benchmarks.common import json_option, timed, write_json
from benchmarks.review_tree import CLASSES, FakeImage, build_tree
from wsss.review.build import build_review, summarise
from wsss.review.records import ReviewRecord
from wsss.review.report import write_report
from wsss.review.sources import PipelineOutputs

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
WAIT_FOR_FIRST_ROW = """new Promise(resolve => {
  const check = () => {
    const status = document.getElementById('status');
    const images = Array.from(document.querySelectorAll('article.row:first-of-type img'));
    if (status && status.dataset.state === 'ready' && images.length && images.every(i => i.complete)) {
      resolve({rendered: window.REVIEW.renderedAt, images: performance.now()});
    } else { setTimeout(check, 2); }
  };
  check();
})"""


def photo_source(size: tuple[int, int]) -> list[np.ndarray]:
    pictures = []
    for name in PHOTOS:
        rgb = getattr(skdata, name)()
        rgb = rgb[..., :3] if rgb.ndim == 3 else np.repeat(rgb[..., None], 3, axis=2)
        pictures.append((resize(rgb, size, anti_aliasing=True) * 255).astype(np.uint8))
    return pictures


def build(root: Path, count: int, jobs: int) -> tuple[Path, float]:
    if (root / "artifacts" / "review" / "index.html").is_file():  # --keep: reuse the report built before
        return root / "artifacts" / "review" / "index.html", float("nan")
    rng = np.random.default_rng(0)
    images = [
        FakeImage(
            f"img{i:06d}",
            (CLASSES[i % 3],),
            (round(float(rng.uniform(0.05, 0.95)), 2),),
            int(rng.integers(0, 12)),
            int(rng.integers(0, 6)),
            with_gt=i % 3 == 0,
        )
        for i in range(count)
    ]
    photos = photo_source((360, 480))
    build_tree(root, images, size=(360, 480), photo=lambda i: photos[i % len(photos)])
    seconds, _ = timed(lambda: build_review(PipelineOutputs.at(root), root / "artifacts" / "review", jobs=jobs))
    return root / "artifacts" / "review" / "index.html", seconds


def enlarge(index: Path, root: Path, factor: int) -> Path:
    """The same report with `factor` times the records (ids suffixed), reusing the panel files."""
    outputs = PipelineOutputs.at(root)
    result = build_review(outputs, None)
    folder = index.parent
    panels = {r.image_id: r for r in _read_records(folder)}
    target = folder.parent / f"review-x{factor}"
    target.mkdir(exist_ok=True)
    records = []
    for copy in range(factor):
        # Each copy's panels get their own URL (a link to the same folder), so the browser cannot
        # reuse one copy's loaded pictures for another and the page weight stays honest.
        link = target / f"img{copy}"
        if not link.exists():
            link.symlink_to(folder / "img", target_is_directory=True)
        for record in result.records:
            original = panels[record.image_id]
            moved = {
                key: [f"img{copy}/" + v.split("/", 1)[1] for v in value] if isinstance(value, list) else f"img{copy}/" + value.split("/", 1)[1]
                for key, value in original.panels.items()
            }
            records.append(replace(original, image_id=f"{record.image_id}-{copy}", panels=moved))
    run = summarise(outputs, records, None, f"x{factor}")
    return write_report(records, run, target)


def _read_records(folder: Path) -> list:
    found = []
    for path in sorted((folder / "data" / "records").rglob("*.js")):
        payload = json.loads("[" + re.fullmatch(r"REVIEW\.addRecord\((.*)\);\n", path.read_text(), re.DOTALL).group(1) + "]")[1]
        payload.pop("rank")
        found.append(ReviewRecord(**payload))
    return found


def requested(page: object) -> list[str]:
    return [e["params"]["request"]["url"] for e in page.events if e["method"] == "Network.requestWillBeSent"]


def measure(index: Path, fragment: str, repeats: int) -> dict[str, float]:
    rendered, loaded, weights = [], [], []
    for _ in range(repeats):
        with devtools(window=(1400, 1000)) as page:
            page.call("Network.enable")
            page.call("Page.enable")
            page.call("Page.navigate", url=index.as_uri() + fragment)
            result = page.evaluate(WAIT_FOR_FIRST_ROW)
            # Settle: wait until no new request for 1 s (lazy panels near the viewport included).
            count, quiet_since = -1, time.monotonic()
            while time.monotonic() - quiet_since < 1.0:
                time.sleep(0.2)
                page.evaluate("1")  # drains the notifications received meanwhile
                if len(requested(page)) != count:
                    count, quiet_since = len(requested(page)), time.monotonic()
            urls = set(requested(page))
        rendered.append(result["rendered"])
        loaded.append(result["images"])
        files = [Path(unquote(urlparse(url).path)) for url in urls if url.startswith("file:")]
        weights.append(sum(path.stat().st_size for path in files if path.is_file()))
    return {"rendered_ms": statistics.median(rendered), "images_ms": statistics.median(loaded), "bytes": statistics.median(weights)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--factor", type=int, default=10, help="the larger report has this many times the records")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", help="build in this folder and keep it (a report already there is reused)")
    json_option(parser)
    args = parser.parse_args()
    if chromium() is None:
        print("chromium is not installed (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="wsss-review-bench-") as scratch:
        root = Path(args.keep) if args.keep else Path(scratch)
        index, seconds = build(root, args.images, args.jobs)
        print(f"report of {args.images} images written in {seconds:.1f} s ({args.images / seconds:.1f} images/s, {args.jobs} processes)")
        larger = enlarge(index, root, args.factor)
        print("| images | view | first rows rendered (ms) | first row's images loaded (ms) | page weight (KiB) |")
        print("|---|---|---|---|---|")
        views = []
        for count, page in ((args.images, index), (args.images * args.factor, larger)):
            for fragment, view in (("", "default (worst first)"), ("#sort=iou", "sorted by IoU")):
                figures = measure(page, fragment, args.repeats)
                print(f"| {count} | {view} | {figures['rendered_ms']:.0f} | {figures['images_ms']:.0f} | {figures['bytes'] / 1024:.0f} |")
                views.append({"images": count, "view": view, **figures})
    write_json(args.json, {"images": args.images, "build_s": seconds, "build_jobs": args.jobs, "views": views})
    return 0


if __name__ == "__main__":
    sys.exit(main())
