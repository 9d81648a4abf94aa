"""How the pipeline's cost grows with the dataset: prepare -> prompts -> cams -> refine -> pseudo under DVC.

For every N (default 50, 200, 1000) a throw-away repository (a copy of flows/, tasks/, src/,
dvc.yaml, params.yaml) gets a folder dataset of N distinct VOC-like photos (`benchmarks.common`: real
`skimage.data` photos randomly cropped, scaled and flipped to VOC sizes, 1-3 VOC tags) and runs
each stage with `dvc repro -s` (random-init ViT-B-16, `cam.max_side` 224 so the model's share stays
small, CRF on, `pseudo.jobs` 1, stable shards of ~32 images, the pinned template as the only prompt
candidate). Printed and written as JSON + PNG after every N (a cut-short run keeps what it measured):

* per stage: wall seconds, seconds per image, peak RSS of the stage process (its largest descendant);
  a linear fit wall = fixed + per_image * N over all N separates the start-up (Prefect, imports,
  CLIP load) from the per-image cost, whose value at each N is (wall - fixed) / N;
* bytes per image on disk (CAM store, refined store, pseudo outputs) and in the DVC cache (all of it,
  and what is not shared with the workspace: a second copy);
* `dvc status` and no-op `dvc repro` wall time;
* the time of `dvc repro` after adding 1 image (the incremental relabel under DVC);
* that the DVC cache is intact after all runs (every cache file's MD5 equals its name: no stage
  modified a hardlinked output in place).

Run from the repository (needs ~15 GB free in the work folder at N=1000; see RESULTS.md for timings):

    python -m benchmarks.scale [--sizes 50 200 1000] [--cache-type hardlink] [--out outputs/scale] [--json PATH]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import ROOT as REPO
from benchmarks.common import TaggedImage, json_option, stop_process, timed, voc_like_images, write_json

COPIED = ("flows", "tasks", "src", "corrections", "reviewed.json", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore")
STAGES = ("prepare", "prompts", "cams", "refine", "pseudo")
STORES = {"cams": "artifacts/cams", "refine": "artifacts/refined", "pseudo": "artifacts/pseudo"}
IMAGES_PER_SHARD = 32  # shard_count = N / 32: a shard rewritten for one added image holds ~32 images at any N
# Runs its command and prints the peak RSS (KiB) of its largest descendant: the stage process.
PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_prefect_server(home: Path) -> tuple[subprocess.Popen, str]:
    """One local Prefect server for every stage process (not an ephemeral one per flow)."""
    port = 4200 + os.getpid() % 1000
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(1)
    process.terminate()
    sys.exit("the Prefect server did not start within 180 s")


def write_dataset(root: Path, images: list[TaggedImage]) -> None:
    from wsss.text import voc_vocabulary

    names = voc_vocabulary().class_names
    folder = root / "data/photos"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for item in images:
        path = folder / "images" / f"{item.image_id}.jpg"
        if not path.exists():
            item.image.save(path, quality=90)
    with open(folder / "tags.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "tags"])
        for item in images:
            writer.writerow([f"{item.image_id}.jpg", ";".join(names[c] for c in item.class_ids)])


def make_repo(root: Path, count: int, cache_type: str, env: dict[str, str]) -> None:
    root.mkdir(parents=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif source.exists():
            shutil.copy2(source, root / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(kind="folder", root="data/photos", images_dir="images", tags_file="tags.csv", ground_truth_dir=None, split="train")
    params["classes"] = {"preset": "voc"}
    params["clip"]["random_init"] = True
    params["cam"]["max_side"] = 224
    params["store"]["shard_count"] = max(1, count // IMAGES_PER_SHARD)
    params["pseudo"]["jobs"] = 1
    # The pinned template only: scoring the default candidate list embeds every template's prompts
    # on every dataset change (~3 min on 2 loaded cores, independent of N), which would hide the rest.
    params["prompts"]["candidates"] = [params["prompts"]["pin"]]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "b@example.com"],
        ["git", "config", "user.name", "b"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        [sys.executable, "-m", "dvc", "config", "cache.type", cache_type],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
    ):
        subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)


def run_measured(command: list[str], root: Path, env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in bytes of the largest descendant, stdout) of a command that must succeed."""
    seconds, result = timed(
        lambda: subprocess.run([sys.executable, "-c", PEAK_RSS, *command], cwd=root, env=env, capture_output=True, text=True, check=False)
    )
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {root}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    peak = int(result.stderr.rsplit("PEAK_RSS_KIB", 1)[1].split()[0]) * 1024
    return seconds, peak, result.stdout


def unique_bytes(paths: list[Path], seen: set[tuple[int, int]] | None = None) -> int:
    """Allocated bytes of the files under `paths`, each inode counted once (hardlinks share one)."""
    seen = set() if seen is None else seen
    total = 0
    for path in paths:
        for file in (p for p in path.rglob("*") if p.is_file() and not p.is_symlink()) if path.is_dir() else [path]:
            stat = file.stat()
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total


def cache_intact(cache: Path) -> tuple[int, list[str]]:
    """(files checked, names whose MD5 differs from the content): a modified hardlinked output shows here."""
    bad, checked = [], 0
    for file in sorted((cache / "files/md5").rglob("*")):
        if not file.is_file():
            continue
        expected = file.parent.name + file.name.removesuffix(".dir")
        digest = hashlib.md5(file.read_bytes(), usedforsecurity=False).hexdigest()
        checked += 1
        if digest != expected:
            bad.append(str(file.relative_to(cache)))
    return checked, bad


def measure(count: int, work: Path, cache_type: str, env: dict[str, str]) -> dict[str, Any]:
    root = work / f"n{count}"
    images = voc_like_images(count + 1, seed=count)
    make_repo(root, count, cache_type, env)
    write_dataset(root, images[:count])
    dvc = [sys.executable, "-m", "dvc"]
    result: dict[str, Any] = {"images": count, "stages": {}}
    for stage in STAGES:
        seconds, peak, _ = run_measured([*dvc, "repro", "-s", stage], root, env)
        result["stages"][stage] = {"wall_s": seconds, "s_per_image": seconds / count, "peak_rss_bytes": peak}
        log(f"N={count} {stage}: {seconds:.1f} s ({seconds / count * 1000:.1f} ms/image), peak RSS {peak / 2**20:.0f} MiB")
    workspace: set[tuple[int, int]] = set()
    for stage, folder in STORES.items():
        size = unique_bytes([root / folder], workspace)
        result["stages"][stage]["disk_bytes_per_image"] = size / count
    cache = root / ".dvc/cache"
    result["dvc_cache_bytes_per_image"] = unique_bytes([cache]) / count
    result["dvc_cache_extra_bytes_per_image"] = unique_bytes([cache], set(workspace)) / count
    result["workspace_store_bytes_per_image"] = sum(result["stages"][s]["disk_bytes_per_image"] for s in STORES)

    status_s, _, status = run_measured([*dvc, "status", "pseudo"], root, env)  # later stages (train, review) never ran
    repro_s, _, repro = run_measured([*dvc, "repro", "pseudo"], root, env)
    result.update(dvc_status_s=status_s, noop_repro_s=repro_s, noop_ran_a_stage="Running stage" in repro, status_up_to_date="up to date" in status)
    log(f"N={count} dvc status {status_s:.1f} s, no-op dvc repro {repro_s:.1f} s (ran a stage: {result['noop_ran_a_stage']})")

    write_dataset(root, images)  # one more image (its id sorts last; stable shards place it anywhere)
    add_s, _, add = run_measured([*dvc, "repro", "pseudo"], root, env)
    result["add_one_repro_s"] = add_s
    result["add_one_stages_run"] = [line.split("'")[1] for line in add.splitlines() if line.startswith("Running stage")]
    log(f"N={count} add 1 image, dvc repro: {add_s:.1f} s (stages run: {', '.join(result['add_one_stages_run'])})")
    checked, bad = cache_intact(cache)
    result.update(cache_files_checked=checked, cache_files_modified=bad)
    log(
        f"N={count} DVC cache: {checked} files, {len(bad)} modified in place; "
        f"cache {result['dvc_cache_bytes_per_image'] / 1e6:.2f} MB/image, not shared with the workspace "
        f"{result['dvc_cache_extra_bytes_per_image'] / 1e6:.3f} MB/image"
    )
    return result


def linear_fits(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per stage: wall = fixed + per_image * N (least squares), and (wall - fixed) / N at each N."""
    import numpy as np

    counts = np.array([r["images"] for r in runs], dtype=float)
    fits = {}
    for stage in STAGES:
        walls = np.array([r["stages"][stage]["wall_s"] for r in runs])
        per_image, fixed = np.polyfit(counts, walls, 1) if len(runs) > 1 else (walls[0] / counts[0], 0.0)
        at_n = (walls - fixed) / counts
        fits[stage] = {
            "fixed_s": float(fixed),
            "per_image_s": float(per_image),
            "per_image_at_n_s": [float(v) for v in at_n],
            "spread": float((at_n.max() - at_n.min()) / per_image) if per_image > 0 else None,
        }
    return fits


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = summary["runs"]
    counts = [r["images"] for r in runs]
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for stage in STAGES:
        axes[0].plot(counts, [r["stages"][stage]["wall_s"] / r["images"] * 1000 for r in runs], "o-", label=f"{stage} (wall / N)")
        axes[0].plot(
            counts,
            [v * 1000 for v in summary["fits"][stage]["per_image_at_n_s"]],
            "x--",
            color=axes[0].lines[-1].get_color(),
            label=f"{stage} ((wall - fixed) / N)",
        )
    axes[0].set(xscale="log", yscale="log", xlabel="images N", ylabel="ms per image", title="stage cost per image")
    axes[0].legend(fontsize=6)
    for stage in STAGES:
        axes[1].plot(counts, [r["stages"][stage]["peak_rss_bytes"] / 2**20 for r in runs], "o-", label=stage)
    axes[1].set(xscale="log", xlabel="images N", ylabel="MiB", title="peak RSS per stage")
    axes[1].legend(fontsize=7)
    axes[2].plot(counts, [r["dvc_status_s"] for r in runs], "o-", label="dvc status")
    axes[2].plot(counts, [r["noop_repro_s"] for r in runs], "o-", label="no-op dvc repro")
    axes[2].plot(counts, [r["add_one_repro_s"] for r in runs], "o-", label="dvc repro after adding 1 image")
    axes[2].set(xscale="log", xlabel="images N", ylabel="seconds", title="DVC and incremental runs")
    axes[2].legend(fontsize=7)
    figure.suptitle(f"benchmarks/scale.py: {summary['machine']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--cache-type", default="hardlink", help="dvc cache.type (default hardlink)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs/scale")
    parser.add_argument("--work", type=Path, help="where the throw-away repositories go (default: a temporary folder)")
    json_option(parser)
    args = parser.parse_args()
    json_path = args.json or args.out / "scale.json"
    work = Path(tempfile.mkdtemp(prefix="wsss-scale-", dir=args.work))
    args.out.mkdir(parents=True, exist_ok=True)
    server, url = start_prefect_server(work / ".prefect-server")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # still stop the server
    env = dict(
        os.environ, DVC_NO_ANALYTICS="1", PREFECT_API_URL=url, PREFECT_SERVER_ANALYTICS_ENABLED="false", HF_HUB_OFFLINE="1", PYTHONPATH="src:."
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    import platform

    import psutil

    summary: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.1f}",
        "cache_type": args.cache_type,
        "runs": [],
        "memory_total_bytes": psutil.virtual_memory().total,
    }
    try:
        for count in args.sizes:
            log(f"N={count}: building the repository and dataset")
            summary["runs"].append(measure(count, work, args.cache_type, env))
            summary["fits"] = linear_fits(summary["runs"])
            summary["load_average_at_end"] = os.getloadavg()[0]
            report(summary, args.out, json_path)
    finally:
        stop_process(server, timeout=30)


def report(summary: dict[str, Any], out: Path, json_path: Path) -> None:
    """Write the JSON and the plot; print the table."""
    write_json(json_path, summary)
    plot(summary, out / "scale.png")
    print()
    print(
        f"{'stage':8} {'fixed s':>8} {'ms/image':>9} "
        + " ".join(f"{'N=' + str(r['images']) + ' ms/img':>14}" for r in summary["runs"])
        + "  spread  "
        + " ".join(f"{'RSS N=' + str(r['images']):>11}" for r in summary["runs"])
    )
    for stage, fit in summary["fits"].items():
        spread = f"{fit['spread'] * 100:5.1f}%" if fit["spread"] is not None else "   n/a"
        print(
            f"{stage:8} {fit['fixed_s']:8.1f} {fit['per_image_s'] * 1000:9.1f} "
            + " ".join(f"{v * 1000:14.1f}" for v in fit["per_image_at_n_s"])
            + f"  {spread}  "
            + " ".join(f"{r['stages'][stage]['peak_rss_bytes'] / 2**20:9.0f}Mi" for r in summary["runs"])
        )
    for run in summary["runs"]:
        print(
            f"N={run['images']}: stores {run['workspace_store_bytes_per_image'] / 1e6:.3f} MB/image "
            f"(cams {run['stages']['cams']['disk_bytes_per_image'] / 1e6:.3f}, "
            f"refined {run['stages']['refine']['disk_bytes_per_image'] / 1e6:.3f}, "
            f"pseudo {run['stages']['pseudo']['disk_bytes_per_image'] / 1e6:.3f}); "
            f"DVC cache {run['dvc_cache_bytes_per_image'] / 1e6:.3f} MB/image, "
            f"of which not shared with the workspace {run['dvc_cache_extra_bytes_per_image'] / 1e6:.3f}; "
            f"dvc status {run['dvc_status_s']:.1f} s; no-op repro {run['noop_repro_s']:.1f} s; add-1 repro {run['add_one_repro_s']:.1f} s; "
            f"cache files modified in place: {len(run['cache_files_modified'])} of {run['cache_files_checked']}"
        )
    first, last = summary["runs"][0], summary["runs"][-1]
    print(f"add-1 at N={last['images']} / add-1 at N={first['images']}: {last['add_one_repro_s'] / first['add_one_repro_s']:.2f} (target <= 1.5)")
    print(f"JSON: {json_path}  plot: {out / 'scale.png'}")


if __name__ == "__main__":
    main()
