"""`wsss segment` on a person's photos and tags gives the maps and masks the pipeline's stages give for
the same images, weights and params; bad photos are reported and the rest is segmented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (the zstd filter)
import numpy as np
import pytest
import yaml
from PIL import Image
from skimage import data as skdata

from tests.pipeline.conftest import pipeline_test_params

pytestmark = pytest.mark.slow  # two random ViT-B/16 loads and two CAM passes: ~1 min on 2 loaded cores

# id -> (skimage photo, size (w, h), tags): two sizes, one image with two tags.
PHOTOS = {"astro": ("astronaut", (160, 120), ("person",)), "cat": ("chelsea", (150, 100), ("cat", "sofa"))}


def stored(store: Path, image_id: str, name: str) -> np.ndarray:
    (shard,) = store.glob("shard-*.h5")
    with h5py.File(shard, "r") as handle:
        return handle[f"images/{image_id}/{name}"][()]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prepare -> cams -> refine -> pseudo, the stage entries in-process, on a folder dataset."""
    from tasks.cams import run_cams
    from tasks.prepare import run_prepare
    from tasks.pseudo import run_pseudo
    from tasks.refine import run_refine
    from wsss.catalog import ArtifactLayout
    from wsss.params import load_params

    root = tmp_path_factory.mktemp("segment-vs-pipeline")
    images = root / "data/photos/images"
    images.mkdir(parents=True)
    for image_id, (name, size, _) in PHOTOS.items():
        Image.fromarray(getattr(skdata, name)()[..., :3]).resize(size, Image.BICUBIC).save(images / f"{image_id}.jpg", quality=90)
    rows = ["image,tags", *(f"{i}.jpg,{';'.join(tags)}" for i, (_, _, tags) in sorted(PHOTOS.items()))]
    (root / "data/photos/tags.csv").write_text("\n".join(rows) + "\n")
    params = pipeline_test_params()
    params["data"].update(kind="folder", root=str(root / "data/photos"), images_dir="images", tags_file="tags.csv", ground_truth_dir=None)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    loaded = load_params(root / "params.yaml")
    layout = ArtifactLayout.for_params(loaded, root)
    run_prepare(loaded, layout)
    layout.prompt_scores.parent.mkdir(parents=True)
    layout.prompt_scores.write_text(json.dumps({"selected": loaded.prompts.pin}))  # what `prompts` selects (pinned)
    run_cams(loaded, layout)
    run_refine(loaded, layout)
    run_pseudo(loaded, layout)
    return root


def test_segment_equals_the_pipeline_on_the_same_images(pipeline_run: Path, tmp_path: Path) -> None:
    from wsss.cli import main

    root, out = pipeline_run, tmp_path / "segmented"
    assert (
        main(
            [
                "segment",
                str(root / "data/photos/images"),
                "--tags-file",
                str(root / "data/photos/tags.csv"),
                "--params",
                str(root / "params.yaml"),
                "--out",
                str(out),
                "--hdf5",
            ]
        )
        == 0
    )
    for image_id in PHOTOS:
        for store, name in (("cams", "gradcam"), ("cams", "attention"), ("refined", "refined")):
            ours, theirs = stored(out / store, image_id, name), stored(root / "artifacts" / store, image_id, name)
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), (image_id, name)
        for folder, suffix in (("masks", ".png"), ("raw", ".png"), ("confidence", ".npy")):
            ours, theirs = out / folder / f"{image_id}{suffix}", root / "artifacts/pseudo" / folder / f"{image_id}{suffix}"
            assert ours.read_bytes() == theirs.read_bytes(), (image_id, folder)
        assert (out / "overlays" / f"{image_id}.png").is_file()
    # Not a trivial equality: the masks hold the tags and the CRF's ignored pixels.
    mask = np.asarray(Image.open(out / "masks/cat.png"))
    assert {0, 255} <= set(np.unique(mask).tolist())


def test_bad_photos_are_reported_and_the_rest_is_segmented(pipeline_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wsss.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    good = (pipeline_run / "data/photos/images/cat.jpg").read_bytes()
    (photos / "good.jpg").write_bytes(good)
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (photos / "unreadable.png").write_bytes(b"\x00not an image" * 40)
    out = tmp_path / "out"
    code = main(
        [
            "segment",
            str(photos),
            "--tags",
            "cat",
            "--params",
            str(pipeline_run / "params.yaml"),
            "--out",
            str(out),
            "--max-failed-share",
            "1",
            "--no-crf",
            "--no-overlays",
        ]
    )
    assert code == 0
    assert "Traceback" not in capsys.readouterr().err
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["good.png"]
    report = json.loads((out / "failures.json").read_text())
    assert {f["image"] for f in report["failures"]} == {"truncated", "unreadable"}
    assert all("cannot decode image" in f["reason"] for f in report["failures"])


def test_the_command_line_contract(tmp_path: Path) -> None:
    """Usage errors exit 2 in one line, before CLIP is loaded."""
    wsss = [sys.executable, "-m", "wsss.cli", "segment"]
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(image)
    for arguments, message in (
        ([str(image)], "give the tags"),
        ([str(image), "--tags", "kitten"], "unknown tag 'kitten'"),
        ([str(image), "--tags", "cat", "--class-names", "a,a"], "--class-names"),
    ):
        result = subprocess.run([*wsss, *arguments, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
