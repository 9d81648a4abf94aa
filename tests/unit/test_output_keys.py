"""Per-image output keys: what makes an output reusable, atomic writes, removal of stale outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsss import output_keys
from wsss.output_keys import content_key, write_bytes_atomic


def test_content_key_changes_with_bytes_dtype_shape_and_values() -> None:
    maps = np.arange(12, dtype=np.float16).reshape(3, 4)
    key = content_key([maps], {"sha": "a"})
    assert key == content_key([maps.copy()], {"sha": "a"})
    changed = maps.copy()
    changed[1, 2] += 1
    others = [
        content_key([changed], {"sha": "a"}),
        content_key([maps.astype(np.float32)], {"sha": "a"}),
        content_key([maps.reshape(4, 3)], {"sha": "a"}),
        content_key([maps], {"sha": "b"}),
    ]
    assert key not in others and len(set(others)) == 4


def test_row_reused_only_with_matching_key_and_every_output(tmp_path: Path) -> None:
    keys, mask = tmp_path / "keys", tmp_path / "a.png"
    keys.mkdir()
    write_bytes_atomic(mask, b"png")
    assert output_keys.reusable_row(keys, "a", "k1", [mask]) is None  # no key yet
    output_keys.record(keys, "a", "k1", {"image_id": "a"})
    assert output_keys.reusable_row(keys, "a", "k1", [mask]) == {"image_id": "a"}
    assert output_keys.reusable_row(keys, "a", "k2", [mask]) is None  # inputs changed
    assert output_keys.reusable_row(keys, "a", "k1", [mask, tmp_path / "missing.npy"]) is None
    (keys / "a.json").write_text("{trunc")
    assert output_keys.reusable_row(keys, "a", "k1", [mask]) is None  # unreadable key: recompute
    output_keys.forget(keys, "a")
    assert not (keys / "a.json").exists()


def test_atomic_write_leaves_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "x.npy"
    write_bytes_atomic(target, b"1")
    write_bytes_atomic(target, b"22")
    assert target.read_bytes() == b"22" and [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_remove_stale_outputs_keeps_only_listed_ids(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png.partial"):
        (tmp_path / name).write_bytes(b"")
    removed = output_keys.remove_stale_outputs([tmp_path, tmp_path / "absent"], {"a"})
    assert sorted(p.name for p in removed) == ["b.png", "c.png.partial"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
