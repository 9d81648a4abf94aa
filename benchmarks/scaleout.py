"""Scale-out figures: the `cams` stage on Dask (LocalCluster, 2 workers) vs sequential, and the
`pseudo` stage's CRF processes (`pseudo.jobs` 1 vs 2), on the same N VOC-like images.

One throw-away repository (as `benchmarks.scale` builds it: random-init ViT-B-16, `cam.max_side` 224, CRF
on); `prepare` and `prompts` once, then each variant as its stage process (`python -m flows.<stage>`)
with one Prefect server for all. Prints wall time, speed-up and whether the outputs are equal:
CAM stores in every array and attribute except the run's own ids, pseudo masks byte for byte.

    python -m benchmarks.scaleout [--images 200] [--workers 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (the zstd filter)
import numpy as np
import yaml

from benchmarks.common import json_option, stop_process, timed, voc_like_images, write_json
from benchmarks.scale import log, make_repo, start_prefect_server, write_dataset
from wsss.incremental.keys import RUN_SPECIFIC_ATTRS

RUN_SPECIFIC = set(RUN_SPECIFIC_ATTRS)  # the run's own ids and its layout (how it ran), never the maps


def stage(root: Path, env: dict[str, str], *args: str) -> float:
    """Wall seconds of `python -m <args>` in `root`, which must succeed."""
    seconds, result = timed(lambda: subprocess.run([sys.executable, "-m", *args], cwd=root, env=env, capture_output=True, text=True, check=False))
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds


def store_contents(store: Path) -> dict[Any, Any]:
    items: dict[Any, Any] = {}
    for path in sorted(store.glob("shard-*.h5")):
        with h5py.File(path, "r") as handle:
            items[path.name] = {k: str(v) for k, v in handle.attrs.items() if k not in RUN_SPECIFIC}
            for image_id, group in handle["images"].items():
                for name, dataset in group.items():
                    items[image_id, name] = hashlib.sha256(np.ascontiguousarray(dataset[()]).tobytes()).hexdigest()
                items[image_id, "attrs"] = {k: str(v) for k, v in group.attrs.items()}
    return items


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "summary.json"
    }


def set_param(root: Path, section: str, key: str, value: Any) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path)
    json_option(parser)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wsss-scaleout-", dir=args.work))
    server, url = start_prefect_server(work / ".prefect-server")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    env = dict(
        os.environ, DVC_NO_ANALYTICS="1", PREFECT_API_URL=url, PREFECT_SERVER_ANALYTICS_ENABLED="false", HF_HUB_OFFLINE="1", PYTHONPATH="src:."
    )
    figures: dict[str, Any] = {"images": args.images, "workers": args.workers, "load_average_at_start": os.getloadavg()[0]}
    try:
        root = work / "repo"
        make_repo(root, args.images, "hardlink", env)
        write_dataset(root, voc_like_images(args.images, seed=args.images))
        stage(root, env, "flows.prepare", "prepare")
        stage(root, env, "flows.prompts")
        log("prepare + prompts done")
        sequential = stage(root, env, "flows.cams")
        shutil.move(root / "artifacts/cams", root / "cams-sequential")
        log(f"cams sequential: {sequential:.1f} s")
        dask = stage(root, env, "flows.cams", "--runner", "dask", "--workers", str(args.workers))
        log(f"cams on Dask ({args.workers} workers): {dask:.1f} s")
        equal = store_contents(root / "cams-sequential") == store_contents(root / "artifacts/cams")
        figures["cams"] = {"sequential_s": sequential, "dask_s": dask, "speedup": sequential / dask, "outputs_equal": equal}
        print(
            f"cams, N={args.images}: sequential {sequential:.1f} s, Dask LocalCluster {args.workers} workers {dask:.1f} s, "
            f"speed-up {sequential / dask:.2f}x, stores equal (arrays and attributes but run ids): {equal}",
            flush=True,
        )
        stage(root, env, "flows.refine")
        timings = {}
        for jobs in (1, 2):
            set_param(root, "pseudo", "jobs", jobs)
            shutil.rmtree(root / "artifacts/pseudo", ignore_errors=True)
            timings[jobs] = stage(root, env, "flows.pseudo")
            shutil.move(root / "artifacts/pseudo", root / f"pseudo-jobs{jobs}")
            log(f"pseudo jobs={jobs}: {timings[jobs]:.1f} s")
        equal = file_hashes(root / "pseudo-jobs1") == file_hashes(root / "pseudo-jobs2")
        figures["pseudo"] = {"jobs1_s": timings[1], "jobs2_s": timings[2], "speedup": timings[1] / timings[2], "outputs_equal": equal}
        print(
            f"pseudo, N={args.images}: jobs 1 {timings[1]:.1f} s, jobs 2 {timings[2]:.1f} s, speed-up {timings[1] / timings[2]:.2f}x, "
            f"masks, raw labels, confidence and keys byte-identical: {equal}",
            flush=True,
        )
    finally:
        figures["load_average_at_end"] = os.getloadavg()[0]
        write_json(args.json, figures)
        stop_process(server, timeout=30)


if __name__ == "__main__":
    main()
