"""The store's codecs: lossless round trips, the fast float16 cast, checksums, readers, old stores."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from wsss.errors import ConfigError, StoreError
from wsss.io import CODECS, CamStore, ShardWriter, shard_path, summarize
from wsss.io.settings import StoreSettings
from wsss.io.shard_writer import storage_array

OLD_STORE = Path(__file__).parent / "data" / "store_v1_gzip"


def peaked_maps(seed: int) -> dict[str, np.ndarray]:
    """Attention like a trained ViT's: most weights tiny (float16 subnormals), a few large."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 6.0, (96, 96)).astype(np.float32)
    attention = np.exp(logits - logits.max(axis=1, keepdims=True))
    attention /= attention.sum(axis=1, keepdims=True)
    return {"attention": attention, "gradcam": rng.random((2, 8, 12)).astype(np.float32), "refined": rng.random((2, 60, 80)).astype(np.float32) ** 3}


def flip_bytes(path: Path, offset: int, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    for position in range(offset, min(offset + count, len(data))):
        data[position] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_is_bit_exact(tmp_path: Path, codec: str) -> None:
    sources = {image_id: peaked_maps(seed) for seed, image_id in enumerate(["a", "b", "c"])}
    assert (np.abs(sources["a"]["attention"]) < 6.1e-5).mean() > 0.3  # many float16 subnormals
    with ShardWriter(shard_path(tmp_path, 0), {"run": "codec"}, compression=codec) as writer:
        for image_id, arrays in sources.items():
            writer.add(image_id, arrays, {"tags": ["cat"]}, {"gradcam": np.float32})
    store = CamStore(tmp_path)
    for image_id, arrays in sources.items():
        stored = store.read(image_id, keep_dtype=True).arrays
        assert stored["gradcam"].dtype == np.float32 and stored["attention"].dtype == np.float16
        np.testing.assert_array_equal(stored["gradcam"].view(np.uint32), arrays["gradcam"].view(np.uint32))
        widened = store.read(image_id).arrays  # float16 maps come back as float32, exactly widened
        for name in ("attention", "refined"):  # exactly numpy's float16 rounding, bit for bit
            np.testing.assert_array_equal(stored[name].view(np.uint16), arrays[name].astype(np.float16).view(np.uint16))
            expected = arrays[name].astype(np.float16).astype(np.float32)
            assert widened[name].dtype == np.float32
            np.testing.assert_array_equal(widened[name].view(np.uint32), expected.view(np.uint32))
    assert store.verify() == []
    assert store.root_attrs("shard-00000.h5")["codec"]["name"] == codec
    assert summarize(tmp_path)[0]["compression"] == codec


def test_fast_float16_cast_equals_numpy_for_every_kind_of_float32() -> None:
    # A stride through all 2**32 bit patterns, plus every pattern near float16's subnormal range.
    sweep = np.arange(0, 2**32, 1021, dtype=np.uint64).astype(np.uint32)
    subnormal_range = np.arange(0x33000000, 0x38800000, 37, dtype=np.uint32)  # 2**-25 .. 2**-14
    for bits in (sweep, subnormal_range, subnormal_range | np.uint32(0x80000000)):
        values = bits.view(np.float32)
        finite = values[np.isfinite(values) & (np.abs(values) < 65504)]
        fast = storage_array("test", "x", finite, np.float16)
        np.testing.assert_array_equal(fast.view(np.uint16), finite.astype(np.float16).view(np.uint16))
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 65504.0, 65519.9], np.float32)
    np.testing.assert_array_equal(storage_array("test", "x", special, np.float16).view(np.uint16), special.astype(np.float16).view(np.uint16))
    with pytest.raises(StoreError, match="overflow"):
        storage_array("test", "x", np.array([1.0, 65520.0], np.float32), np.float16)


@pytest.mark.parametrize("codec", CODECS)
def test_corrupted_chunk_fails_naming_shard_and_image(tmp_path: Path, codec: str) -> None:
    path = shard_path(tmp_path, 0)
    with ShardWriter(path, {}, compression=codec) as writer:
        for seed, image_id in enumerate(["a", "b", "c"]):
            writer.add(image_id, peaked_maps(seed), {})
    with h5py.File(path, "r") as handle:
        dataset = handle["images/b/attention"]
        plist = dataset.id.get_create_plist()
        filters = [plist.get_filter(index)[0] for index in range(plist.get_nfilters())]
        plugin = {"zstd": hdf5plugin.ZSTD_ID, "blosc2-zstd": hdf5plugin.BLOSC2_ID}.get(codec)
        assert dataset.fletcher32 and (plugin is None or plugin in filters)
        chunk = dataset.id.get_chunk_info(0)
    flip_bytes(path, chunk.byte_offset + chunk.size // 2, 4)
    store = CamStore(tmp_path)
    with pytest.raises(StoreError, match=rf"{path}: image 'b': array 'attention' unreadable, shard corrupted\?"):
        store.read("b")
    problems = store.verify()
    assert len(problems) == 1 and f"{path}: image 'b': array 'attention'" in problems[0]
    np.testing.assert_array_equal(store.read("c", keep_dtype=True).arrays["attention"], peaked_maps(2)["attention"].astype(np.float16))


@pytest.mark.parametrize("codec", ["zstd", "blosc2-zstd"])
def test_plugin_codec_shard_reads_with_plain_h5py_and_hdf5plugin(tmp_path: Path, codec: str) -> None:
    arrays = peaked_maps(0)
    with ShardWriter(shard_path(tmp_path, 0), {}, compression=codec) as writer:
        writer.add("a", arrays, {})
    np.save(tmp_path / "expected.npy", arrays["attention"].astype(np.float16))
    reader = (
        "import sys, h5py, hdf5plugin, numpy as np\n"
        "with h5py.File(sys.argv[1], 'r') as f:\n"
        "    data = f['images/a/attention'][()]\n"
        "assert np.array_equal(data.view(np.uint16), np.load(sys.argv[2]).view(np.uint16))\n"
        "print('ok', data.dtype)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", reader, str(shard_path(tmp_path, 0)), str(tmp_path / "expected.npy")],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok float16", done.stderr


def test_store_written_before_the_codec_change_stays_readable(tmp_path: Path) -> None:
    """A gzip store written by the schema-1 code (tests/unit/data/store_v1_gzip, made with that code)."""
    store_dir = tmp_path / "cams"
    shutil.copytree(OLD_STORE, store_dir)
    expected = np.load(store_dir / "expected.npz")
    store = CamStore(store_dir)
    assert store.image_ids() == ["2007_000032", "2007_000039", "2007_000063"]
    for image_id in store.image_ids():
        stored = store.read(image_id, keep_dtype=True)
        for name in ("gradcam", "attention"):
            np.testing.assert_array_equal(stored.arrays[name], expected[f"{image_id}/{name}"])
        assert stored.attrs["original_size"] == [48, 64]
    assert store.verify() == []
    assert store.root_attrs("shard-00000.h5")["schema_version"] == 1
    assert [row["compression"] for row in summarize(store_dir)] == ["gzip", "gzip"]


def test_store_settings_accept_the_codecs() -> None:
    assert StoreSettings().compression == "zstd"
    for codec in CODECS:
        assert StoreSettings(compression=codec).compression == codec
    with pytest.raises(ConfigError, match=r"store.compression must be one of \(.zstd., .blosc2-zstd., .gzip., .lzf., .none.\)"):
        StoreSettings(compression="brotli")
