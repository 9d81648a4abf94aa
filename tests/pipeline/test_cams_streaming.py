"""The `cams` stage's streamed path (prefetch thread, background writer, size-bucket batches) stores
what the plain one-image-at-a-time path stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (the zstd filter)
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from tests.params_edit import with_values, write_params
from tests.pipeline.repos import golden, pipeline_test_params
from wsss.incremental.keys import RUN_SPECIFIC_ATTRS

# id -> (skimage photo, output size (w, h), tags): two input sizes, so batches split by bucket.
PHOTOS = {
    "a_astro": ("astronaut", (160, 120), ("person",)),
    "b_cat": ("chelsea", (120, 160), ("cat",)),
    "c_cup": ("coffee", (160, 120), ("cup", "person")),
    "d_rocket": ("rocket", (120, 160), ("rocket",)),
    "e_cat": ("chelsea", (160, 120), ("cat", "cup")),
}
pytestmark = pytest.mark.slow  # four `cams` runs with CLIP loads: ~60 s on 2 loaded cores

RUN_SPECIFIC = set(RUN_SPECIFIC_ATTRS)  # flow-run id, code version, manifest hash, the run's layout


def make_repo(root: Path) -> None:
    images = root / "data/photos/images"
    images.mkdir(parents=True)
    for image_id, (name, size, _) in PHOTOS.items():
        Image.fromarray(getattr(skdata, name)()[..., :3]).resize(size, Image.BICUBIC).save(images / f"{image_id}.jpg", quality=90)
    lines = ["image,tags", *(f"{i}.jpg,{';'.join(tags)}" for i, (_, _, tags) in sorted(PHOTOS.items()))]
    (root / "data/photos/tags.csv").write_text("\n".join(lines) + "\n")
    write_params(
        root,
        with_values(
            pipeline_test_params(),
            {
                "data.kind": "folder",
                "data.root": str(root / "data/photos"),
                "data.images_dir": "images",
                "data.tags_file": "tags.csv",
                "data.ground_truth_dir": None,
                "prompts.candidates": [],
                "store.images_per_shard": 3,
            },
        ),
    )


def store_name(overlap: bool, batch_size: int, processes: int = 0) -> str:
    return f"cams-overlap{overlap}-batch{batch_size}-processes{processes}"


def run_cams_with(root: Path, overlap: bool, batch_size: int, processes: int = 0) -> None:
    """Run `cams` afresh with these settings; the store moved aside to a folder named after them."""
    from tasks.cams import run_cams
    from wsss.catalog import ArtifactLayout
    from wsss.params import load_params

    params = load_params(root / "params.yaml")
    params = params.replace(
        runner=params.runner.with_overrides({"overlap_io": overlap, "image_processes": processes}),
        cam=params.cam.__class__(**{**params.section_dict("cam"), "batch_size": batch_size}),
    )
    layout = ArtifactLayout.for_params(params, root)
    summary = run_cams(params, layout)
    assert summary.computed == tuple(sorted(PHOTOS)) and not summary.failed
    shutil.move(layout.cams, root / store_name(overlap, batch_size, processes))


def store_contents(store: Path) -> tuple[dict, dict]:
    """(root attributes per shard, {(image, name): array or attribute}) of every shard."""
    roots, items = {}, {}
    for path in sorted(store.glob("shard-*.h5")):
        with h5py.File(path, "r") as handle:
            roots[path.name] = {k: v for k, v in handle.attrs.items() if k not in RUN_SPECIFIC}
            for image_id, group in handle["images"].items():
                for name, dataset in group.items():
                    items[image_id, name] = dataset[()]
                    items[image_id, name, "filters"] = (dataset.compression, dataset.fletcher32, dataset.chunks)
                for key, value in group.attrs.items():
                    items[image_id, "@" + key] = value
    return roots, items


def assert_equal_items(left: dict, right: dict, skip: set[str] = frozenset()) -> None:
    assert left.keys() == right.keys()
    for key, value_left in left.items():
        if key[-1].lstrip("@") in skip:
            continue
        value_right = right[key]
        if isinstance(value_left, np.ndarray):
            assert value_left.dtype == value_right.dtype and np.array_equal(value_left, value_right), key
        else:
            assert value_left == value_right, key


RUNS = ((False, 1), (True, 1), (True, 3), (False, 3))  # (overlap_io, batch_size)


def build_stores(root: Path) -> str:
    from tasks.prepare import run_prepare
    from wsss.catalog import ArtifactLayout
    from wsss.params import load_params

    root.mkdir(parents=True)
    make_repo(root)
    params = load_params(root / "params.yaml")
    layout = ArtifactLayout.for_params(params, root)
    run_prepare(params, layout)
    layout.prompt_scores.parent.mkdir(parents=True)
    layout.prompt_scores.write_text(json.dumps({"selected": params.prompts.pin}))  # what `prompts` would select
    for overlap, batch in RUNS:
        run_cams_with(root, overlap, batch)
    run_cams_with(root, True, 3, processes=2)
    return ""


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple, Path]:
    """The cams store of each (overlap_io, batch_size) run, and (True, 3, "processes") with image
    processes, built once per test run (the tests only read them)."""
    root, _ = golden(tmp_path_factory, "cams-streaming", build_stores)
    runs: dict[tuple, Path] = {(overlap, batch): root / store_name(overlap, batch) for overlap, batch in RUNS}
    return {**runs, (True, 3, "processes"): root / store_name(True, 3, 2)}


def stored_bytes(store: Path) -> dict:
    """Each shard's stored bytes: every array's dtype, shape, chunks, filters and raw chunks (compressed,
    checksummed), every attribute, and the root attributes but the run's own (`layout` included)."""
    stored: dict = {}
    for path in sorted(store.glob("shard-*.h5")):
        with h5py.File(path, "r") as handle:
            stored[path.name] = {k: v for k, v in handle.attrs.items() if k not in RUN_SPECIFIC}
            for image_id, group in handle["images"].items():
                stored[image_id] = {k: bytes(v) if isinstance(v, bytes) else repr(v) for k, v in group.attrs.items()}
                for name, dataset in group.items():
                    offsets = [dataset.id.get_chunk_info(i).chunk_offset for i in range(dataset.id.get_num_chunks())]
                    stored[image_id, name] = (
                        dataset.dtype.str,
                        dataset.shape,
                        dataset.chunks,
                        dataset.compression_opts,
                        dataset.fletcher32,
                        [dataset.id.read_direct_chunk(o) for o in offsets],
                    )
    return stored


def test_overlap_and_image_processes_store_the_same_bytes(stores) -> None:
    """Prefetch + background writer, and decoding and encoding on image processes, change when and
    where the work is done, never what is stored: the same shards but for the root attribute that
    says how the run went (`layout`). (Without a flow run, nothing else differs.)"""
    pairs = [(stores[False, 1], stores[True, 1]), (stores[False, 3], stores[True, 3]), (stores[True, 3], stores[True, 3, "processes"])]
    for plain, other in pairs:
        names = sorted(p.name for p in plain.glob("shard-*.h5"))
        assert names == sorted(p.name for p in other.glob("shard-*.h5")) and len(names) == 2
        assert stored_bytes(plain) == stored_bytes(other), (plain.name, other.name)
        for name in names:  # the files differ only there
            with h5py.File(plain / name, "r") as one, h5py.File(other / name, "r") as two:
                assert one.attrs["layout"] != two.attrs["layout"]


def test_batches_of_three_store_what_one_by_one_stores(stores) -> None:
    """Same images, arrays, dtypes, filters and attributes; the attention is bit-identical. The
    batch size is a `cam` param (part of the content key), and a float32 GEMM over 3 rows may round
    the Grad-CAM maps and tag probabilities differently from one row: within 1e-5."""
    roots_single, single = store_contents(stores[True, 1])
    roots_batched, batched = store_contents(stores[True, 3])
    batch_dependent = {"params", "params_sha256", "content_key", "tag_probabilities"}
    assert roots_single.keys() == roots_batched.keys()
    for name in roots_single:
        assert {k: v for k, v in roots_single[name].items() if k not in batch_dependent} == {
            k: v for k, v in roots_batched[name].items() if k not in batch_dependent
        }
    assert_equal_items(
        {k: v for k, v in single.items() if k[1] != "gradcam"}, {k: v for k, v in batched.items() if k[1] != "gradcam"}, skip=batch_dependent
    )
    for key in single:
        if key[1] in ("gradcam", "@tag_probabilities") and len(key) == 2:
            assert np.abs(np.asarray(single[key]) - np.asarray(batched[key])).max() < 1e-5, key
