"""The pseudo stage entry on a hand-made refined store (no CLIP): keys, long ids, a full disk."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tasks.pseudo import run_pseudo
from tests.params_edit import read_params, with_values
from wsss.catalog import ArtifactLayout
from wsss.datasets import ImageRecord, Manifest
from wsss.errors import ArtifactWriteError
from wsss.io import ShardWriter, atomic, shard_path
from wsss.io.pseudo_store import PseudoMaskStore
from wsss.params import Params

ROOT = Path(__file__).resolve().parents[2]

LONG_ID = "i" * 250  # a legal id: `<id>.png` is 254 characters


def write_refined(layout: ArtifactLayout, keys: dict[str, str]) -> None:
    rng = np.random.default_rng(0)
    with ShardWriter(shard_path(layout.refined, 0), {"stage": "refine"}) as writer:
        for image_id in sorted(keys):
            maps = rng.random((1, 6, 7)).astype(np.float16)
            writer.add(
                image_id,
                {"refined": maps},
                {
                    "class_ids": [7],
                    "tags": ["cat"],
                    "original_size": [6, 7],
                    "source_path": f"{image_id[:8]}.jpg",
                    "source_sha256": "0" * 64,
                    "content_key": keys[image_id],
                },
            )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Params, ArtifactLayout]:
    params = Params.from_mapping(with_values(read_params(), {"pseudo.crf": False, "pseudo.jobs": 1}))
    layout = ArtifactLayout(tmp_path)
    records = tuple(ImageRecord(i, f"{i[:8]}.jpg", ("cat",), None, "0" * 64, 7, 6) for i in (LONG_ID, "b"))
    layout.manifest.parent.mkdir(parents=True)
    layout.manifest.write_text(Manifest("m", records, tuple(params.vocabulary.class_names)).to_json())
    return params, layout


def test_an_image_id_at_the_name_limit_gets_its_mask(setup: tuple[Params, ArtifactLayout]) -> None:
    params, layout = setup
    write_refined(layout, {LONG_ID: "k1", "b": "k1"})
    run = run_pseudo(params, layout)
    assert run.computed == ("b", LONG_ID) and run.failed == {}
    assert PseudoMaskStore(layout.pseudo).labels(LONG_ID).shape == (6, 7)


def test_masks_follow_the_refined_keys_whatever_ran_before(setup: tuple[Params, ArtifactLayout]) -> None:
    """A mask is keyed by the refined maps it was made from: new refined keys mean new masks."""
    params, layout = setup
    write_refined(layout, {LONG_ID: "k1", "b": "k1"})
    assert run_pseudo(params, layout).computed == ("b", LONG_ID)
    assert run_pseudo(params, layout).computed == ()  # nothing changed
    write_refined(layout, {LONG_ID: "k1", "b": "k2"})  # e.g. refine published, then the run was killed
    rerun = run_pseudo(params, layout)
    assert rerun.computed == ("b",) and rerun.reused == (LONG_ID,)
    summary = PseudoMaskStore(layout.pseudo).read_summary()
    assert summary is not None and [row["image_id"] for row in summary.images] == ["b", LONG_ID]


class FullDiskAfter:
    """The `os` module as the atomic writer sees it: creating a file fails like a full disk after
    `budget` files."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def open(self, path: object, flags: int, *args: object) -> int:
        if flags & os.O_CREAT:
            self.budget -= 1
            if self.budget < 0:
                raise OSError(errno.ENOSPC, "No space left on device")
        return os.open(path, flags, *args)


def test_a_full_disk_stops_the_stage_with_one_error_and_loses_nothing(setup: tuple[Params, ArtifactLayout], monkeypatch: pytest.MonkeyPatch) -> None:
    params, layout = setup
    write_refined(layout, {LONG_ID: "k1", "b": "k1"})
    run_pseudo(params, layout)
    store = PseudoMaskStore(layout.pseudo)
    before = {p.name: p.read_bytes() for p in layout.pseudo.folder("masks").iterdir()}
    write_refined(layout, {LONG_ID: "k2", "b": "k2"})
    monkeypatch.setattr(atomic, "os", FullDiskAfter(5))  # b's 3 files + key, then 1 more
    with pytest.raises(ArtifactWriteError) as raised:
        run_pseudo(params, layout)
    message = str(raised.value)
    assert "No space left on device" in message and "\n" not in message and LONG_ID in message
    assert {p.name for p in layout.pseudo.folder("masks").iterdir()} == set(before)  # every mask still there
    assert not list(layout.pseudo.root.rglob(".tmp-*"))
    monkeypatch.undo()
    assert run_pseudo(params, layout).computed == (LONG_ID,)  # b was complete under its new key
    assert store.reusable_row("b", "x") is None and len(list(layout.pseudo.folder("keys").iterdir())) == 2


def test_a_change_to_the_code_that_writes_masks_rewrites_them_and_other_code_does_not(
    setup: tuple[Params, ArtifactLayout], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported bug: a palette colour changed, the stage reran and kept every mask (their keys
    did not cover palette.py, through which masks are written). viz.py writes no mask."""
    from wsss import stage_code

    params, layout = setup
    core = tmp_path / "core"
    shutil.copytree(ROOT / "src", core, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    monkeypatch.setattr(stage_code, "CORE_ROOT", core)
    stage_code.code_digest.cache_clear()
    try:
        write_refined(layout, {LONG_ID: "k1", "b": "k1"})
        assert run_pseudo(params, layout).computed == ("b", LONG_ID)
        for name, rewritten in (("viz.py", ()), ("palette.py", ("b", LONG_ID))):
            source = core / "wsss" / name
            source.write_text(source.read_text() + "\n# a colour changed\n")
            stage_code.code_digest.cache_clear()  # a new process would read the file afresh
            assert run_pseudo(params, layout).computed == rewritten, name
    finally:
        stage_code.code_digest.cache_clear()


def test_a_mask_row_and_png_are_what_the_previous_formulas_gave() -> None:
    """Pixels per label by bincount (was np.unique over every pixel), the palette built once (was per
    mask): the same summary row and the same PNG bytes."""
    import io

    from PIL import Image

    from wsss.io.pseudo_store import mask_row
    from wsss.palette import palette_png_bytes, voc_palette
    from wsss.pseudo.labels import PseudoLabel

    rng = np.random.default_rng(3)
    labels = rng.choice(np.array([0, 4, 9, 255], dtype=np.uint8), size=(37, 53))
    label = PseudoLabel(labels, rng.random((37, 53), dtype=np.float32), labels)
    values, counts = np.unique(labels, return_counts=True)
    row = mask_row("x", label, ["cat"], "0" * 64, 255)
    assert row["label_pixels"] == {str(int(v)): int(c) for v, c in zip(values, counts, strict=False)}
    assert list(row["label_pixels"]) == ["0", "4", "9", "255"]
    image = Image.frombytes("P", (53, 37), labels.tobytes())
    image.putpalette(voc_palette().flatten().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert palette_png_bytes(labels) == buffer.getvalue()
