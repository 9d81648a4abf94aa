"""The store reads only what it writes: shards tampered with h5py are refused, naming shard, image and reason.

Each case takes a valid shard and rewrites one image's array (or group) with h5py the way a
hostile or broken file would: values stored in another file (HDF5 "external storage", here a
stand-in for /etc/passwd), external and soft links, a virtual dataset, an array without
checksum or with missing chunks, an extra hard link, and a declared shape that cannot fit in
memory. The read path (`CamStore.read`, what `refine` uses), `CamStore.verify` and
`wsss inspect --verify` must all refuse it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from wsss.cli import main as wsss_main
from wsss.errors import StoreError
from wsss.io import CamStore, ShardWriter, chunk_shape, shard_path

GRADCAM = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8.0) % 2.0
ATTENTION = (np.arange(144, dtype=np.float32).reshape(12, 12) % 16) / 16.0
PASSWD = b"root:x:0:0:root:/root:/bin/bash\n" * 16


def write_store(directory: Path) -> Path:
    path = shard_path(directory, 0)
    with ShardWriter(path, {"run": "test"}) as writer:
        for seed, image_id in enumerate(["a", "b", "c"]):
            writer.add(image_id, {"gradcam": GRADCAM + seed, "attention": ATTENTION}, {"tags": ["cat"]}, {"gradcam": np.float32})
    return path


def other_file(tmp_path: Path) -> Path:
    """A second, well-formed HDF5 file that links and virtual datasets can point into."""
    path = tmp_path / "elsewhere.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=np.full((12, 12), 7, np.float16), chunks=(12, 12), fletcher32=True)
        group = handle.create_group("images/b")
        group.create_dataset("attention", data=np.full((12, 12), 7, np.float16), chunks=(12, 12), fletcher32=True)
        group.create_dataset("gradcam", data=np.full((2, 3, 4), 7, np.float32), chunks=(1, 3, 4), fletcher32=True)
    return path


def external_storage(handle: h5py.File, tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_bytes(PASSWD)
    del handle["images/b/gradcam"]
    handle["images/b"].create_dataset("gradcam", shape=(2, 3, 4), dtype=np.float32, external=[(str(secret), 0, 96)])


def external_link(handle: h5py.File, tmp_path: Path) -> None:
    del handle["images/b/attention"]
    handle["images/b/attention"] = h5py.ExternalLink(str(other_file(tmp_path)), "/data")


def external_image_group(handle: h5py.File, tmp_path: Path) -> None:
    del handle["images/b"]
    handle["images/b"] = h5py.ExternalLink(str(other_file(tmp_path)), "/images/b")


def soft_link_out_of_the_image(handle: h5py.File, tmp_path: Path) -> None:
    del handle["images/b/attention"]
    handle["images/b/attention"] = h5py.SoftLink("/images/a/attention")


def virtual_dataset(handle: h5py.File, tmp_path: Path) -> None:
    layout = h5py.VirtualLayout(shape=(12, 12), dtype=np.float16)
    layout[:] = h5py.VirtualSource(str(other_file(tmp_path)), "data", shape=(12, 12))
    del handle["images/b/attention"]
    handle["images/b"].create_virtual_dataset("attention", layout)


def no_checksum(handle: h5py.File, tmp_path: Path) -> None:
    del handle["images/b/attention"]
    handle["images/b"].create_dataset("attention", data=ATTENTION.astype(np.float16), chunks=(12, 12), compression="gzip")


def contiguous_without_checksum(handle: h5py.File, tmp_path: Path) -> None:
    del handle["images/b/attention"]
    handle["images/b"].create_dataset("attention", data=ATTENTION.astype(np.float16))


def missing_chunks(handle: h5py.File, tmp_path: Path) -> None:
    del handle["images/b/attention"]
    dataset = handle["images/b"].create_dataset("attention", shape=(12, 12), dtype=np.float16, chunks=(6, 12), fletcher32=True)
    dataset[:6] = ATTENTION[:6]  # the second chunk never written: it would read as zeros


def extra_hard_link(handle: h5py.File, tmp_path: Path) -> None:
    del handle["images/b/attention"]
    handle["images/b/attention"] = handle["images/a/attention"]


def huge_declared_shape(handle: h5py.File, tmp_path: Path) -> None:
    # The shard stays a few kB; reading it used to allocate 18.6 GiB (37 GiB as float32).
    del handle["images/b/attention"]
    shape = (100_000, 100_000)
    handle["images/b"].create_dataset("attention", shape=shape, dtype=np.float16, chunks=chunk_shape(shape, 2), fletcher32=True, compression="gzip")


TAMPERING: dict[str, tuple[Callable[[h5py.File, Path], None], str]] = {
    "external storage": (external_storage, r"'gradcam': its values are stored outside the shard in \[.*passwd'\]; refused"),
    "external link": (external_link, r"'attention': is an external link to .*elsewhere\.h5:/data; refused"),
    "external image group": (external_image_group, r": is an external link to .*elsewhere\.h5:/images/b; refused"),
    "soft link": (soft_link_out_of_the_image, r"'attention': is a soft link to /images/a/attention; refused"),
    "virtual dataset": (virtual_dataset, r"'attention': is a virtual dataset \(VDS\) mapping other files; refused"),
    "no checksum": (no_checksum, r"'attention': has no fletcher32 checksum.*; refused"),
    "contiguous": (contiguous_without_checksum, r"'attention': contiguous layout without checksum.*; refused"),
    "missing chunks": (missing_chunks, r"'attention': holds 1 of the 2 chunks.*read as zeros\); refused"),
    "extra hard link": (extra_hard_link, r"'attention': is reachable under 2 names \(extra hard links\); refused"),
    "huge shape": (huge_declared_shape, r"'attention': (declares shape \(100000, 100000\).*|holds 0 of the 5000 chunks.*); refused"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampered_shard_is_refused_by_read_verify_and_inspect(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    tamper, reason = TAMPERING[case]
    store_dir = tmp_path / "cams"
    path = write_store(store_dir)
    with h5py.File(path, "r+") as handle:
        tamper(handle, tmp_path)
    expected = re.escape(str(path)) + r": image 'b'(: array )?" + reason

    store = CamStore(store_dir)
    with pytest.raises(StoreError, match=expected):
        store.read("b", ["gradcam", "attention"])  # what refine reads
    with pytest.raises(StoreError, match=expected.replace("'b'", "'[ab]'")):  # the hard link is shared with 'a'
        dict(store.iter_images())
    np.testing.assert_array_equal(store.read("c").arrays["gradcam"], GRADCAM + 2)  # the untouched images stay readable

    problems = store.verify()
    assert any(re.search(expected, problem) for problem in problems), problems
    assert all(str(path) in problem for problem in problems)

    capsys.readouterr()
    assert wsss_main(["inspect", str(store_dir), "--verify"]) == 1
    printed = capsys.readouterr().out
    assert "verify: FAILED" in printed and re.search(expected, printed), printed


def test_array_larger_than_the_memory_limit_is_refused(tmp_path: Path) -> None:
    write_store(tmp_path)
    store = CamStore(tmp_path, max_array_bytes=200)  # attention: 144 float16 + 144 float32 = 864 bytes
    with pytest.raises(StoreError, match=r"image 'a': array 'attention': declares shape \(12, 12\) float16.*more than"):
        store.read("a", ["attention"])
    assert CamStore(tmp_path, max_array_bytes=864).read("a", ["attention"]).arrays["attention"].shape == (12, 12)
    assert len(CamStore(tmp_path, max_array_bytes=200).verify()) == 3


def flipped_image_ids(handle: h5py.File) -> None:
    """The root metadata names an image the shard does not hold (what a flipped attribute or a hand merge leaves)."""
    from wsss.io.attributes import to_attr

    handle.attrs["image_ids"] = to_attr(["a", "astronaut", "c"])


def images_not_a_group(handle: h5py.File) -> None:
    """The images' metadata unreadable while the root attributes still read (a flipped byte did this)."""
    del handle["images"]
    handle.create_dataset("images", data=np.zeros(3, np.float32))


@pytest.mark.parametrize("tamper", [flipped_image_ids, images_not_a_group])
def test_refine_refuses_a_cam_shard_whose_metadata_disagrees_naming_it(tmp_path: Path, tamper: Callable[[h5py.File], None]) -> None:
    """refine used to die with `KeyError: 'astronaut'` (tasks/refine.py) where `wsss inspect --verify` named the shard."""
    from tasks.refine import run_refine
    from wsss.catalog import ArtifactLayout
    from wsss.params import Params

    layout = ArtifactLayout(tmp_path)
    path = write_store(layout.cams)
    with h5py.File(path, "r+") as handle:
        handle.attrs["shard_index"] = 0
        tamper(handle)
    with pytest.raises(StoreError, match=re.escape(str(path)) + r": (its image_ids attribute does not list|cannot read its images' content keys)"):
        run_refine(Params(), layout)
    assert not layout.refined.exists() or not any(layout.refined.iterdir())


def test_a_refused_virtual_dataset_does_not_crash_the_process_at_exit(tmp_path: Path) -> None:
    """The refusal was right, then the stage died with a segfault (exit 139, not 2): the error, kept alive
    on a thread until exit as Prefect keeps a failed run's exception, held the refused HDF5 dataset."""
    import subprocess
    import sys
    import textwrap

    store_dir = tmp_path / "cams"
    with h5py.File(write_store(store_dir), "r+") as handle:
        virtual_dataset(handle, tmp_path)
    script = textwrap.dedent(f"""
        import threading
        from wsss.errors import StoreError
        from wsss.io import CamStore
        def keep(error, forever=threading.Event()):
            forever.wait()

        try:
            CamStore({str(store_dir)!r}).read("b", ["gradcam", "attention"])
        except StoreError as error:
            print(error)
            threading.Thread(target=keep, args=(error,), daemon=True).start()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert "is a virtual dataset (VDS) mapping other files; refused" in result.stdout
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
