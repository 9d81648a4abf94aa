"""The prompts stage embeds only images whose feature it has not stored yet; the ranking is unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from skimage import data as skdata

from tests.params_edit import with_values, write_params
from tests.pipeline.repos import pipeline_test_params

PHOTOS = {
    "a": ("astronaut", ("person", "cat")),
    "b": ("chelsea", ("cat", "cup")),
    "c": ("coffee", ("cup", "person")),
    "d": ("rocket", ("rocket", "person")),
}


def write_dataset(root: Path, ids: list[str]) -> None:
    images = root / "data/photos/images"
    images.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        Image.fromarray(getattr(skdata, PHOTOS[image_id][0])()[..., :3]).resize((96, 64)).save(images / f"{image_id}.jpg", quality=90)
    lines = ["image,tags", *(f"{i}.jpg,{';'.join(PHOTOS[i][1])}" for i in sorted(ids))]
    (root / "data/photos/tags.csv").write_text("\n".join(lines) + "\n")


@pytest.mark.slow  # four prompts runs, each loading a random ViT-B/16
def test_a_run_after_adding_an_image_embeds_only_that_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.prepare import run_prepare
    from tasks.prompts import run_prompts
    from wsss.cam import ClipEsCamExtractor
    from wsss.catalog import ArtifactLayout
    from wsss.params import load_params

    params_file = write_params(tmp_path, with_values(pipeline_test_params(), {
        "data.kind": "folder", "data.root": str(tmp_path / "data/photos"), "data.images_dir": "images",
        "data.tags_file": "tags.csv", "data.ground_truth_dir": None,
        "prompts.candidates": ["a photo of a {}.", "itap of a {}."], "prompts.pin": None,
    }))
    embedded: list[int] = []
    original = ClipEsCamExtractor.image_features

    def counting(self, images, pooling="cls"):  # type: ignore[no-untyped-def]
        embedded.append(len(images))
        return original(self, images, pooling)

    monkeypatch.setattr(ClipEsCamExtractor, "image_features", counting)

    def run(ids: list[str]) -> dict:
        write_dataset(tmp_path, ids)
        loaded = load_params(params_file)
        layout = ArtifactLayout.for_params(loaded, tmp_path)
        run_prepare(loaded, layout)
        embedded.clear()
        scores = run_prompts(loaded, layout)
        return {"scores": scores, "embedded": sum(embedded), "features": sorted(p.name for p in layout.prompt_features.iterdir())}

    first = run(["a", "b", "c"])
    assert first["embedded"] == 3 and len(first["features"]) == 3
    second = run(["a", "b", "c", "d"])
    assert second["embedded"] == 1 and len(second["features"]) == 4
    shutil.rmtree(tmp_path / "artifacts/prompts/features")
    fresh = run(["a", "b", "c", "d"])
    assert fresh["embedded"] == 4
    assert json.dumps(second["scores"]["ranking"]) == json.dumps(fresh["scores"]["ranking"])  # same values, bit for bit
    (tmp_path / "data/photos/images/a.jpg").unlink()
    removed = run(["b", "c", "d"])
    assert removed["embedded"] == 0 and len(removed["features"]) == 3  # the removed image's feature is deleted
