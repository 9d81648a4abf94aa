"""The cams stage on a 2-worker local Dask cluster equals the single-process result bit for bit."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the stores' HDF5 filters: zstd)
import numpy as np
import pytest

from tests.params_edit import write_params
from tests.pipeline.relabel_data import make_dataset, relabel_params
from tests.pipeline.repos import ROOT


def read_all(path: Path) -> tuple[dict, dict]:
    """Every dataset (values) and every attribute of a shard, keyed by HDF5 path."""
    datasets, attrs = {}, {}
    with h5py.File(path, "r") as handle:
        attrs["/"] = dict(handle.attrs)

        def visit(name: str, item: object) -> None:
            attrs[name] = dict(item.attrs)
            if isinstance(item, h5py.Dataset):
                datasets[name] = item[()]
                # The stored (compressed, checksummed) chunk bytes, not only the decoded values.
                chunks = [item.id.get_chunk_info(i) for i in range(item.id.get_num_chunks())] if item.chunks else []
                datasets[name + "#chunks"] = [item.id.read_direct_chunk(c.chunk_offset) for c in chunks]

        handle.visititems(visit)
    return datasets, attrs


@pytest.mark.slow
def test_cams_on_two_dask_workers_equal_the_sequential_run(harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cams import cams_flow
    from flows.prepare import prepare_flow
    from flows.prompts import prompts_flow

    # Worker processes must import this checkout too, whatever the (relative) PYTHONPATH said.
    for path in (ROOT, ROOT / "src"):
        monkeypatch.syspath_prepend(str(path))
    monkeypatch.setenv("PYTHONPATH", f"{ROOT / 'src'}:{ROOT}")
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, relabel_params(shard_count=3))
    make_dataset(tmp_path, ["astro_a", "cat_a", "cup_a", "rocket_a", "cat_b", "astro_b"])
    prepare_flow("params.yaml")
    prompts_flow("params.yaml")

    sequential = cams_flow("params.yaml", {"kind": "sequential"})
    shutil.move(tmp_path / "artifacts/cams", tmp_path / "sequential")
    on_dask = cams_flow("params.yaml", {"kind": "dask", "workers": 2})
    assert len(sequential["computed"]) == len(on_dask["computed"]) == 6
    assert_same_store(tmp_path / "sequential", tmp_path / "artifacts/cams")


def assert_same_store(reference: Path, store: Path) -> None:
    """The same shards (more than one): every dataset's values and stored chunk bytes, every attribute
    but the root's flow-run id (which also enters the header checksum, so whole files differ) and
    the run's layout (wsss.machine_layout.layout_record: its runner section says how each ran)."""
    names = sorted(p.name for p in reference.glob("shard-*.h5"))
    assert names == sorted(p.name for p in store.glob("shard-*.h5")) and len(names) > 1
    for name in names:
        (data_one, attrs_one), (data_two, attrs_two) = read_all(reference / name), read_all(store / name)
        assert data_one.keys() == data_two.keys()
        for key in data_one:
            if key.endswith("#chunks"):
                assert data_one[key] == data_two[key], key
            else:
                assert data_one[key].dtype == data_two[key].dtype and np.array_equal(data_one[key], data_two[key]), key
        assert attrs_one["/"].pop("flow_run_id") != attrs_two["/"].pop("flow_run_id")
        assert attrs_one["/"].pop("layout") != attrs_two["/"].pop("layout")
        assert repr(attrs_one) == repr(attrs_two)
