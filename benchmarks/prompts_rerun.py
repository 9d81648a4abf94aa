"""The `prompts` stage as people wait for it: the first run, a rerun with nothing changed, and a
rerun after adding one image, as stage processes (`python -m flows.prompts`, random CLIP weights,
one Prefect server for all), on the embedded sample (VOC classes, 6 photos) and on an MSRC-like
folder dataset (the 21 MSRC classes, `--images` photos cropped from `skimage.data`, 2-3 tags each).

Modes: `pinned` (the default params: `prompts.pin` set) and `ranked` (`prompts.pin: null`: the
ranking selects, so it runs). For each source tree given (default: this repository; pass an
older checkout, e.g. `git worktree add /tmp/base b9a66fa`, to compare) the same runs are made;
an older tree ranks the 81 default templates in both modes (it has no way not to), so `pinned`
alone shows it.

    python -m benchmarks.prompts_rerun [--tree DIR ...] [--datasets sample msrc] [--modes pinned ranked]
        [--images 12] [--json PATH]

Prints wall seconds per run (the stage process: start-up, CLIP if loaded, images and prompt texts
through CLIP, the ranking) and what the stage recorded (ranked or not, image features and text
embeddings stored); `--json` writes the same.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.common import MSRC_CLASSES, ROOT, json_option, timed, voc_like_images, write_json
from wsss.loop.prefect_server import local_server, loop_environment

RUNS = ("first run", "no-change rerun", "rerun after adding an image")


def write_msrc_like(root: Path, count: int) -> None:
    """`count` photos under `root/images` and `root/tags.csv` with 2-3 of the 21 MSRC classes each."""
    rng = np.random.default_rng(21)
    images = voc_like_images(count, scale=0.4, seed=21)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = ["image,tags"]
    for item in images:
        item.image.save(root / "images" / f"{item.image_id}.jpg", quality=90)
        tags = rng.choice(len(MSRC_CLASSES), size=int(rng.integers(2, 4)), replace=False)
        lines.append(f"{item.image_id}.jpg,{';'.join(MSRC_CLASSES[t] for t in sorted(tags))}")
    (root / "tags.csv").write_text("\n".join(lines) + "\n")


def add_msrc_image(root: Path, count: int) -> None:
    """One more photo (the next of the same sequence) with two tags."""
    item = voc_like_images(count + 1, scale=0.4, seed=21)[-1]
    item.image.save(root / "images" / "added.jpg", quality=90)
    with open(root / "tags.csv", "a") as handle:
        handle.write("added.jpg,cat;grass\n")


def add_sample_image(repo: Path) -> None:
    """A seventh photo in the sample's VOC layout, with two VOC tags (its XML as prepare reads it)."""
    root = repo / "data/sample"
    voc_like_images(1, scale=0.6, seed=7)[0].image.save(root / "JPEGImages/added.jpg", quality=90)
    objects = "".join(f"<object><name>{name}</name></object>" for name in ("cat", "person"))
    (root / "Annotations/added.xml").write_text(f"<annotation><filename>added.jpg</filename>{objects}</annotation>")
    split = next((root / "ImageSets/Segmentation").glob("*.txt"))
    split.write_text(split.read_text().rstrip("\n") + "\nadded\n")


def make_repo(tree: Path, repo: Path, dataset: str, mode: str, images: int) -> None:
    params = yaml.safe_load((tree / "params.yaml").read_text())
    params["clip"]["random_init"] = True
    if mode == "ranked":
        params["prompts"]["pin"] = None
    if dataset == "msrc":
        write_msrc_like(repo / "data/msrc", images)
        params["data"].update(kind="folder", root="data/msrc", images_dir="images", tags_file="tags.csv", ground_truth_dir=None)
        params["classes"] = {"names": list(MSRC_CLASSES)}
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stage(tree: Path, repo: Path, env: dict[str, str], *arguments: str) -> float:
    stage_env = {**env, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}
    seconds, result = timed(
        lambda: subprocess.run([sys.executable, "-m", *arguments], cwd=repo, env=stage_env, capture_output=True, text=True, check=False, timeout=3600)
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed in {repo}:\n{result.stderr[-3000:]}")
    return seconds


def recorded(repo: Path) -> dict[str, Any]:
    scores = yaml.safe_load((repo / "artifacts/prompts/scores.json").read_text())
    count = lambda name: len(list((repo / "artifacts/prompts" / name).glob("*.npy")))  # noqa: E731
    return {
        "ranked": bool(scores.get("ranking")),
        "templates_ranked": len(scores.get("ranking") or []),
        "image_features_stored": count("features"),
        "text_embeddings_stored": count("text_features"),
    }


def measure(tree: Path, dataset: str, mode: str, images: int, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    repo = workdir / f"{tree.name}-{dataset}-{mode}"
    make_repo(tree, repo, dataset, mode, images)
    if dataset == "sample":
        stage(tree, repo, env, "flows.prepare", "sample")
    stage(tree, repo, env, "flows.prepare", "prepare")
    figures: dict[str, Any] = {}
    for run in RUNS:
        if run == RUNS[2]:
            add_sample_image(repo) if dataset == "sample" else add_msrc_image(repo / "data/msrc", images)
            stage(tree, repo, env, "flows.prepare", "prepare")
        figures[run] = {"seconds": round(stage(tree, repo, env, "flows.prompts"), 1), **recorded(repo)}
        print(f"{tree} {dataset:6s} {mode:6s} {run:28s} {figures[run]['seconds']:7.1f} s  {figures[run]}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, action="append", help="source tree (repeatable; default: this repository)")
    parser.add_argument("--datasets", nargs="+", choices=("sample", "msrc"), default=["sample", "msrc"], help="datasets to run")
    parser.add_argument("--modes", nargs="+", choices=("pinned", "ranked"), default=["pinned", "ranked"], help="prompts modes")
    parser.add_argument("--images", type=int, default=12, help="photos of the MSRC-like set (default: 12)")
    json_option(parser)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in (args.tree or [ROOT])]
    load = os.getloadavg()
    figures: dict[str, Any] = {"load_average_at_start": [round(v, 2) for v in load], "trees": {}}
    with tempfile.TemporaryDirectory(prefix="prompts-rerun-") as folder:
        workdir = Path(folder)
        env = loop_environment(workdir, {**os.environ, "HF_HUB_OFFLINE": "1"})
        env["PREFECT_HOME"] = str(workdir / ".prefect")
        with local_server(env, workdir / "prefect-server.log") as api_url:
            env = {**env, "PREFECT_API_URL": api_url}
            for tree in trees:
                figures["trees"][str(tree)] = {
                    f"{dataset} {mode}": measure(tree, dataset, mode, args.images, env, workdir) for dataset in args.datasets for mode in args.modes
                }
    figures["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
