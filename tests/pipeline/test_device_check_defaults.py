"""The GPU check's part 0 (`benchmarks/device_check_defaults.py`) runs what the stage entries run.

It cannot call `tasks/cams.py` and `tasks/refine.py` (they import Prefect, which the GPU machine
lacks), so it drives the same engine with its own cams callback. Given the same params, CLIP,
images and template, its stores must hold what the stage entries store: the same shards, images,
arrays (stored chunk bytes included) and per-image attributes (content keys aside: the stage's
come from its identity, the check's are placeholders).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from tests.pipeline.test_cams_streaming import PHOTOS, make_repo

pytestmark = pytest.mark.slow  # two cams runs of a random ViT-B/16 on 5 photos


def shard_items(store: Path) -> dict[tuple[str, str, str], object]:
    """{(shard, image, name): stored chunk bytes of each array / each attribute}, content keys aside."""
    items: dict[tuple[str, str, str], object] = {}
    for path in sorted(store.glob("shard-*.h5")):
        with h5py.File(path, "r") as handle:
            for image_id, group in handle["images"].items():
                for name, dataset in group.items():
                    chunks = [dataset.id.get_chunk_info(i) for i in range(dataset.id.get_num_chunks())]
                    items[path.name, image_id, name] = (dataset.dtype, [dataset.id.read_direct_chunk(c.chunk_offset) for c in chunks])
                for key, value in group.attrs.items():
                    if key != "content_key":
                        items[path.name, image_id, "@" + key] = repr(value.tolist() if hasattr(value, "tolist") else value)
    return items


def test_part_zero_stores_what_the_cams_and_refine_stages_store(tmp_path: Path) -> None:
    from benchmarks.device_check_defaults import default_extractor, default_layout, run_default_stages
    from benchmarks.device_check_stages import StageImage, use_extractor
    from tasks.cams import run_cams
    from tasks.prepare import run_prepare
    from tasks.refine import run_refine
    from wsss.catalog import ArtifactLayout
    from wsss.clip import load_clip
    from wsss.params import load_params
    from wsss.stage_inputs import read_manifest

    make_repo(tmp_path)
    params = load_params(tmp_path / "params.yaml")
    layout = ArtifactLayout.for_params(params, tmp_path)
    run_prepare(params, layout)
    layout.prompt_scores.parent.mkdir(parents=True)
    layout.prompt_scores.write_text(json.dumps({"selected": params.prompts.pin}))  # what `prompts` would select
    assert run_cams(params, layout).computed == tuple(sorted(PHOTOS))
    run_refine(params, layout)

    clip = load_clip(params.clip.source(), params.clip.device, params.clip.precision)
    use_extractor(default_extractor(params, clip, params.vocabulary, params.prompts.pin))
    vocabulary = params.vocabulary
    records = [
        StageImage(r.image_id, r.image_path, tuple(vocabulary.class_id(t) for t in r.tags), tuple(r.tags), r.sha256)
        for r in read_manifest(layout).records
    ]
    run_default_stages(params, params.dataset_root, records, tmp_path / "check")
    assert default_layout(params)["processes"] == 1 and params.store.images_per_shard == 3

    for stage_store, check_store in ((layout.cams, tmp_path / "check/cams"), (layout.refined, tmp_path / "check/refined")):
        stage, check = shard_items(stage_store), shard_items(check_store)
        assert len({key[0] for key in stage}) == 2 and {key[1] for key in stage} == set(PHOTOS)
        assert stage.keys() == check.keys()
        for key in stage:
            assert stage[key] == check[key], key
