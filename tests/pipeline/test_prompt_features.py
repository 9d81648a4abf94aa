"""The prompts stage embeds only images whose feature it has not stored yet and no template whose
class prompts it has embedded before; the ranking is unchanged. With a pin it ranks only when asked."""

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


def prompts_params(tmp_path: Path, **prompts: object) -> Path:
    """The test params for the folder dataset under `tmp_path`, with `prompts` values."""
    return write_params(
        tmp_path,
        with_values(
            pipeline_test_params(),
            {
                "data.kind": "folder",
                "data.root": str(tmp_path / "data/photos"),
                "data.images_dir": "images",
                "data.tags_file": "tags.csv",
                "data.ground_truth_dir": None,
                "prompts.candidates": ["a photo of a {}.", "itap of a {}."],
                **{f"prompts.{k}": v for k, v in prompts.items()},
            },
        ),
    )


def prepared(tmp_path: Path, params_file: Path, ids: list[str]):  # type: ignore[no-untyped-def]
    from tasks.prepare import run_prepare
    from wsss.catalog import ArtifactLayout
    from wsss.params import load_params

    write_dataset(tmp_path, ids)
    loaded = load_params(params_file)
    layout = ArtifactLayout.for_params(loaded, tmp_path)
    run_prepare(loaded, layout)
    return loaded, layout


@pytest.mark.slow  # four prompts runs, each loading a random ViT-B/16
def test_a_run_after_adding_an_image_embeds_only_that_image_and_no_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.prompts import run_prompts
    from wsss.cam import ClipEsCamExtractor

    params_file = prompts_params(tmp_path, pin=None)
    embedded: list[int] = []
    texts: list[str] = []
    original, original_text = ClipEsCamExtractor.image_features, ClipEsCamExtractor.class_text

    def counting(self, images, pooling="cls"):  # type: ignore[no-untyped-def]
        embedded.append(len(images))
        return original(self, images, pooling)

    def counting_text(self, template):  # type: ignore[no-untyped-def]
        texts.append(template)
        return original_text(self, template)

    monkeypatch.setattr(ClipEsCamExtractor, "image_features", counting)
    monkeypatch.setattr(ClipEsCamExtractor, "class_text", counting_text)

    def run(ids: list[str]) -> dict:
        loaded, layout = prepared(tmp_path, params_file, ids)
        embedded.clear()
        texts.clear()
        scores = run_prompts(loaded, layout).details
        return {
            "scores": scores,
            "embedded": sum(embedded),
            "texts": len(texts),
            "features": sorted(p.name for p in layout.prompt_features.iterdir()),
            "text_features": sorted(p.name for p in layout.prompt_text_features.iterdir()),
        }

    first = run(["a", "b", "c"])
    assert first["embedded"] == 3 and len(first["features"]) == 3
    assert first["texts"] == 2 and len(first["text_features"]) == 2  # one file per template
    second = run(["a", "b", "c", "d"])
    assert second["embedded"] == 1 and len(second["features"]) == 4
    assert second["texts"] == 0 and second["text_features"] == first["text_features"]  # no text through CLIP again
    shutil.rmtree(tmp_path / "artifacts/prompts/features")
    shutil.rmtree(tmp_path / "artifacts/prompts/text_features")
    fresh = run(["a", "b", "c", "d"])
    assert fresh["embedded"] == 4 and fresh["texts"] == 2
    assert json.dumps(second["scores"]["ranking"]) == json.dumps(fresh["scores"]["ranking"])  # same values, bit for bit
    (tmp_path / "data/photos/images/a.jpg").unlink()
    removed = run(["b", "c", "d"])
    assert removed["embedded"] == 0 and len(removed["features"]) == 3  # the removed image's feature is deleted
    assert removed["texts"] == 0


def test_a_pinned_template_is_not_ranked_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a pin the ranking cannot change the selection: no CLIP is loaded, scores.json says why
    and how to get the scores; `rank_when_pinned` ranks and still selects the pin."""
    import tasks.clip_model
    from tasks.prompts import run_prompts

    pin = "a clean origami {}."
    loaded, layout = prepared(tmp_path, prompts_params(tmp_path, pin=pin), ["a", "b", "c"])
    original = tasks.clip_model.load_stage_clip

    def no_clip(params):  # type: ignore[no-untyped-def]
        raise AssertionError("CLIP loaded for a pinned template")

    monkeypatch.setattr(tasks.clip_model, "load_stage_clip", no_clip)
    result = run_prompts(loaded, layout)
    scores = json.loads(layout.prompt_scores.read_text())
    assert scores == result.details
    assert scores["selected"] == pin and scores["ranking"] == [] and scores["ranked"] is False
    assert "prompts.rank_when_pinned: true" in scores["note"] and scores["clip"] is None
    vocabulary = json.loads(layout.vocabulary.read_text())
    assert all(entry["prompt"].startswith("a clean origami ") for entry in vocabulary["classes"])
    assert result.computed == () and result.reused == ()

    monkeypatch.setattr(tasks.clip_model, "load_stage_clip", original)
    loaded, layout = prepared(tmp_path, prompts_params(tmp_path, pin=pin, rank_when_pinned=True), ["a", "b", "c"])
    scores = run_prompts(loaded, layout).details
    assert scores["ranked"] is True and len(scores["ranking"]) == 2 and scores["selected"] == pin
    assert scores["clip"]["weights"].startswith("random-init")
