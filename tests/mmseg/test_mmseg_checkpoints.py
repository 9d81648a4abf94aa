"""mmengine checkpoints: plain data on disk, weights-only loads with nothing allow-listed (issue 11, finding 1).

The payload (tests/malicious_files.py) needs only `builtins.getattr` on torch's weights-only
allow-list to reach torch.serialization's globals, swap a helper for `exec` and run code that
creates a marker file and overwrites another file. It is fed to every way this project loads an
mmengine checkpoint: `train.init_checkpoint` (Pretrained init), the resume checkpoint of an
interrupted run, `load_from`, the evaluate stage's model, mmengine's own loader and the converter.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmseg")

import wsss_mmseg  # first: its mmcv.ops shim goes in before mmengine and mmseg are imported

# isort: split

from mmengine.logging import HistoryBuffer
from PIL import Image

from tests.malicious_files import Target, getattr_checkpoint, torch_serialization_guard
from wsss.errors import CheckpointError
from wsss_mmseg.training import build_train_config, score_segmenter, train_segmenter

TINY_CONFIG = wsss_mmseg.CONFIG_DIR / "deeplabv2_tiny_cpu.py"
CLASSES = ("background", "thing", "other")


@pytest.fixture(scope="module")
def two_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for folder in ("images", "masks"):
        (root / folder).mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        image = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
        mask = np.zeros((40, 48), np.uint8)
        mask[10:30, 12:36] = 1
        Image.fromarray(image).save(root / "images" / f"im{index}.png")
        Image.fromarray(mask).save(root / "masks" / f"im{index}.png")
    (root / "train.txt").write_text("im0\nim1\n")
    return root


def _config(root: Path, work_dir: Path, **overrides: object):
    return build_train_config(
        TINY_CONFIG,
        work_dir,
        data_root=root,
        image_dir="images",
        mask_dir="masks",
        split_file="train.txt",
        class_names=CLASSES,
        img_suffix=".png",
        seed=0,
        **{"max_iters": 1, **overrides},
    )


def _via_init_checkpoint(root: Path, evil: Path, tmp: Path) -> None:
    train_segmenter(_config(root, tmp / "work", init_checkpoint=evil))


def _via_resume(root: Path, evil: Path, tmp: Path) -> None:
    """An interrupted run's work dir (as `.wsss-scratch/train-*/`) whose latest checkpoint is the payload."""
    work = tmp / "work"
    work.mkdir()
    resume_from = work / "iter_2.pth"
    resume_from.write_bytes(evil.read_bytes())
    (work / "last_checkpoint").write_text(str(resume_from))
    train_segmenter(_config(root, work, resume=True, max_iters=4))


def _via_load_from(root: Path, evil: Path, tmp: Path) -> None:
    train_segmenter(_config(root, tmp / "work", load_from=evil))


def _via_evaluate(root: Path, evil: Path, tmp: Path) -> None:
    score_segmenter(
        TINY_CONFIG, evil, image_dir=root / "images", gt_dir=root / "masks", split_file=root / "train.txt", class_names=CLASSES, img_suffix=".png"
    )


def _via_predict_and_export(root: Path, evil: Path, tmp: Path) -> None:
    """`wsss predict` / `wsss export-model`: the checkpoint beside a model.json naming the tiny config."""
    from wsss.inference.trained_model import TrainedModel
    from wsss.io.records import ModelRecord
    from wsss_mmseg.inference import load_segmenter

    ModelRecord(
        checkpoint=str(evil),
        trained_iterations=1,
        num_images=2,
        class_names=list(CLASSES),
        input_manifest_sha256="",
        pseudo_params=None,
        pseudo_flow_run_id=None,
        params={"config": str(TINY_CONFIG)},
        flow_run_id=None,
    ).write(tmp / "model.json")
    model = TrainedModel.at(evil, tmp / "model.json")
    load_segmenter(model.config, model.checkpoint, num_classes=len(model.class_names))


def _via_mmengine_loader(root: Path, evil: Path, tmp: Path) -> None:
    from mmengine.runner.checkpoint import _load_checkpoint

    _load_checkpoint(str(evil), map_location="cpu")


def _via_converter(root: Path, evil: Path, tmp: Path) -> None:
    from wsss_mmseg.checkpoints import convert_legacy_checkpoint

    convert_legacy_checkpoint(evil, tmp / "converted.pth")


LOAD_PATHS: dict[str, Callable[[Path, Path, Path], None]] = {
    "init_checkpoint": _via_init_checkpoint,
    "resume": _via_resume,
    "load_from": _via_load_from,
    "evaluate": _via_evaluate,
    "predict_and_export": _via_predict_and_export,
    "mmengine_loader": _via_mmengine_loader,
    "convert": _via_converter,
}


@pytest.mark.parametrize("load_path", sorted(LOAD_PATHS))
def test_getattr_payload_runs_no_code_through_any_load_path(two_images: Path, tmp_path: Path, load_path: str) -> None:
    target = Target.in_folder(tmp_path)
    evil = getattr_checkpoint(tmp_path / "evil.pth", target)
    with torch_serialization_guard() as guard, pytest.raises(Exception) as refused:  # noqa: PT011 - the type is asserted after the payload check
        LOAD_PATHS[load_path](two_images, evil, tmp_path)
    assert target.untouched(), "the checkpoint's code ran"
    assert not guard["replaced"], "the pickle replaced a torch.serialization helper"
    assert refused.type is CheckpointError and re.search(r"(evil|iter_2)\.pth: (refused|cannot convert)", str(refused.value))


def test_control_the_payload_runs_when_getattr_is_allowed_or_pickle_is_free(tmp_path: Path) -> None:
    """The payload is real: the old allow-list (getattr + mmengine types) and a free unpickle both run it."""
    allowed_before = [getattr, HistoryBuffer, OrderedDict, np.ndarray, np.dtype]
    (tmp_path / "a").mkdir()
    target = Target.in_folder(tmp_path / "a")
    evil = getattr_checkpoint(tmp_path / "a" / "evil.pth", target)
    with torch_serialization_guard() as guard, torch.serialization.safe_globals(allowed_before), pytest.raises(Exception, match="Weights only load"):
        torch.load(evil, map_location="cpu")  # "refused"... after the code ran
    assert target.hit() and guard["replaced"]

    (tmp_path / "b").mkdir()
    target = Target.in_folder(tmp_path / "b")
    evil = getattr_checkpoint(tmp_path / "b" / "evil.pth", target)
    with torch_serialization_guard(), pytest.raises(Exception):  # noqa: B017, PT011 - whatever torch raises after the code ran
        torch.load(evil, map_location="cpu", weights_only=False)  # stdlib pickle + torch's persistent_load
    assert target.hit()


def test_plain_form_round_trips_message_hub_numpy_and_state_dict_metadata() -> None:
    from wsss_mmseg.checkpoints import from_plain, to_plain

    buffer = HistoryBuffer([1.5, 0.25, 0.125], [1, 2, 1])
    state_dict = OrderedDict(weight=torch.arange(3.0))
    state_dict._metadata = OrderedDict({"": {"version": 2}})  # type: ignore[attr-defined]
    checkpoint = {
        "meta": {"iter": 2, "epoch": 0, "palette": np.array([[1, 2, 3]], np.uint8)},
        "state_dict": state_dict,
        "message_hub": {"log_scalars": OrderedDict({"train/loss": buffer}), "runtime_info": OrderedDict(eta=np.float64(3.5), iter=np.int64(7))},
    }
    plain = to_plain(checkpoint)
    assert plain["state_dict"] is state_dict  # nothing to convert: the very object, _metadata kept
    assert plain["message_hub"]["runtime_info"] == {"eta": 3.5, "iter": 7}
    assert type(plain["message_hub"]["runtime_info"]["eta"]) is float

    back = from_plain(plain)
    restored = back["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(restored, HistoryBuffer)
    np.testing.assert_array_equal(restored._log_history, buffer._log_history)
    np.testing.assert_array_equal(restored._count_history, buffer._count_history)
    assert restored.mean() == buffer.mean() and restored.max_length == buffer.max_length
    np.testing.assert_array_equal(back["meta"]["palette"], checkpoint["meta"]["palette"])

    with pytest.raises(TypeError, match=r"checkpoint\.meta\.thing: object has no plain form"):
        to_plain({"meta": {"thing": object()}})


def test_saved_checkpoint_is_plain_data_and_evaluates(two_images: Path, tmp_path: Path) -> None:
    last = train_segmenter(_config(two_images, tmp_path))
    # Nothing of ours is on the allow-list (torch itself registers its exception classes).
    assert not {getattr, HistoryBuffer} & set(torch.serialization.get_safe_globals())
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["meta"]["iter"] == 1
    scores = score_segmenter(
        TINY_CONFIG,
        last,
        image_dir=two_images / "images",
        gt_dir=two_images / "masks",
        split_file=two_images / "train.txt",
        class_names=CLASSES,
        img_suffix=".png",
    )
    assert 0.0 <= scores.mean_iou <= 1.0


def legacy_checkpoint(path: Path) -> Path:
    """What mmengine wrote before: HistoryBuffer objects (methods pickled via getattr) and numpy scalars."""
    buffer = HistoryBuffer([0.75, 0.5], [1, 1])
    torch.save(
        {
            "meta": {"iter": 2},
            "state_dict": OrderedDict(w=torch.ones(2)),
            "message_hub": {
                "log_scalars": OrderedDict({"train/loss": buffer}),
                "runtime_info": OrderedDict(eta=np.float64(1.25)),
                "resumed_keys": {},
            },
        },
        path,
    )
    return path


def test_checkpoint_of_an_earlier_version_is_refused_then_converted_without_running_code(tmp_path: Path) -> None:
    from wsss_mmseg.checkpoints import convert_legacy_checkpoint, from_plain, load_plain_checkpoint

    old = legacy_checkpoint(tmp_path / "iter_2.pth")
    with pytest.raises(CheckpointError, match=r"iter_2\.pth: refused.*HistoryBuffer.*wsss_mmseg\.checkpoints convert"):
        load_plain_checkpoint(str(old))

    new = convert_legacy_checkpoint(old, tmp_path / "converted.pth")
    converted = from_plain(load_plain_checkpoint(str(new)))
    restored = converted["message_hub"]["log_scalars"]["train/loss"]
    np.testing.assert_array_equal(restored._log_history, [0.75, 0.5])
    assert converted["message_hub"]["runtime_info"]["eta"] == 1.25
    assert torch.equal(converted["state_dict"]["w"], torch.ones(2))
    assert HistoryBuffer._statistics_methods["min"] is HistoryBuffer.min  # class-wide table untouched


def test_the_convert_command_every_refusal_names_runs(tmp_path: Path) -> None:
    """`python -m wsss_mmseg.checkpoints convert OLD NEW` (and `--help`) crashed at import with
    `KeyError: 'PlainCheckpointHook is already registered'` (the module ran twice)."""
    import os
    import subprocess
    import sys

    from wsss_mmseg.checkpoints import CONVERT_COMMAND, from_plain, load_plain_checkpoint

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    command = [sys.executable, *CONVERT_COMMAND.split()[1:4]]  # python -m wsss_mmseg.checkpoints convert
    helped = subprocess.run([*command[:-1], "--help"], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert helped.returncode == 0 and "usage: python -m wsss_mmseg.checkpoints" in helped.stdout, helped.stderr[-2000:]

    old, new = legacy_checkpoint(tmp_path / "iter_2.pth"), tmp_path / "plain.pth"
    converted = subprocess.run([*command, str(old), str(new)], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert converted.returncode == 0 and f"wrote {new}" in converted.stdout, converted.stderr[-2000:]
    restored = from_plain(load_plain_checkpoint(str(new)))["message_hub"]["log_scalars"]["train/loss"]
    np.testing.assert_array_equal(restored._log_history, [0.75, 0.5])


def test_the_convert_command_refuses_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wsss_mmseg.checkpoints.__main__ import main

    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "new.pth")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'missing.pth'}: not a readable PyTorch checkpoint")
    (tmp_path / "dir").mkdir()
    assert main(["convert", str(legacy_checkpoint(tmp_path / "old.pth")), str(tmp_path / "dir")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'dir'}: cannot write (Is a directory)")
    (tmp_path / "notes.pth").write_text("hello")  # torch.load raised KeyError: 101 past every handler
    assert main(["convert", str(tmp_path / "notes.pth"), str(tmp_path / "new.pth")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'notes.pth'}: not a readable PyTorch checkpoint (KeyError")
    from wsss_mmseg.checkpoints import load_plain_checkpoint

    with pytest.raises(CheckpointError, match=r"notes\.pth: not a readable PyTorch checkpoint"):
        load_plain_checkpoint(str(tmp_path / "notes.pth"))
