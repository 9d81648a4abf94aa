"""Untrusted files: pickles that run code, YAML tags that build objects, paths that leave the root.

Each malicious file tries to create a marker file when loaded; the tests assert that loading
is refused with a clear error AND that the marker was never created (no code ran).
(Corrupted HDF5 shards: tests/unit/test_cam_store.py::test_bytes_flipped_mid_file_are_reported_with_the_shard_name.)
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.malicious_files import Target, getattr_torchscript_archive, setstate_torchscript_archive, torch_serialization_guard
from wsss.clip import ClipSource, load_clip
from wsss.datasets import Manifest
from wsss.errors import CheckpointError, ConfigError, DatasetError


class CreatesMarker:
    """Unpickling this calls `Path.touch(marker)`: arbitrary code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A torch.save file (zip + pickle) whose state dict carries the code-running object."""
    torch.save({"visual.proj": torch.zeros(2, 2), "payload": CreatesMarker(marker)}, path)
    return path


def test_clip_checkpoint_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = malicious_checkpoint(tmp_path / "ViT-B-16.pt", marker)
    with pytest.raises(CheckpointError, match=r"ViT-B-16.pt.*weights-only"):
        load_clip(ClipSource(checkpoint=path))
    assert not marker.exists()
    torch.load(path, weights_only=False)  # control: the payload is live when unpickled freely
    assert marker.exists()


def test_legacy_pickle_checkpoint_is_refused_without_running_it(tmp_path: Path) -> None:
    """A plain (non-zip) pickle file, as older tools write them."""
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps({"state_dict": CreatesMarker(marker)}))
    with pytest.raises(CheckpointError):
        load_clip(ClipSource(checkpoint=path))
    assert not marker.exists()


def test_torchscript_setstate_payload_runs_no_code(tmp_path: Path) -> None:
    """OpenAI's ViT-B-16.pt is a TorchScript archive; a crafted one runs its `__setstate__` on torch.jit.load."""
    target = Target.in_folder(tmp_path)
    path = setstate_torchscript_archive(tmp_path / "ViT-B-16.pt", target)
    with pytest.raises(Exception) as refused:  # noqa: PT011 - the type is asserted after the payload check
        load_clip(ClipSource(checkpoint=path))
    assert target.untouched(), "the archive's TorchScript ran"
    assert refused.type is CheckpointError
    assert re.search(r"ViT-B-16\.pt: its TorchScript code .* defines __setstate__", str(refused.value))
    torch.jit.load(str(path))  # control: the payload is live when TorchScript loads it
    assert target.hit()


def test_torchscript_object_state_is_never_handed_to_code(tmp_path: Path) -> None:
    """Without the code scan, a non-dict object state (input of a __setstate__) is still refused."""
    target = Target.in_folder(tmp_path)
    crafted = setstate_torchscript_archive(tmp_path / "crafted.pt", target)
    path = tmp_path / "ViT-B-16.pt"
    with zipfile.ZipFile(crafted) as source, zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            if "/code/" not in info.filename:
                archive.writestr(info.filename.replace("crafted/", "ViT-B-16/"), source.read(info))
    with pytest.raises(Exception) as refused:  # noqa: PT011 - the type is asserted after the payload check
        load_clip(ClipSource(checkpoint=path))
    assert target.untouched(), "the archive's TorchScript ran"
    assert refused.type is CheckpointError
    assert re.search(r"ViT-B-16\.pt: TorchScript object .*StatefulModule carries a custom state", str(refused.value))


def test_torchscript_archive_with_a_getattr_pickle_runs_no_code(tmp_path: Path) -> None:
    target = Target.in_folder(tmp_path)
    path = getattr_torchscript_archive(tmp_path / "ViT-B-16.pt", target)
    with torch_serialization_guard() as guard, pytest.raises(CheckpointError, match=r"ViT-B-16\.pt: .*getattr"):
        load_clip(ClipSource(checkpoint=path))
    assert target.untouched() and not guard["replaced"]


def test_mmseg_checkpoint_loading_refuses_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mmengine's own loader, once wsss_mmseg is imported, reads local files weights-only, explicitly
    (mmengine's implicit default gave way to TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1).

    The getattr payload against every mmengine load path: tests/mmseg/test_mmseg_checkpoints.py.
    """
    pytest.importorskip("mmseg")
    import wsss_mmseg  # noqa: F401  (first: routes mmengine's local loader through the plain loader)

    # isort: split
    from mmengine.runner.checkpoint import _load_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "iter_10.pth"
    torch.save({"meta": {}, "state_dict": {"w": torch.zeros(1)}, "hook": CreatesMarker(marker)}, path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(CheckpointError, match=r"iter_10\.pth: refused"):
        _load_checkpoint(str(path), map_location="cpu")
    assert not marker.exists()


def test_confidence_maps_with_pickled_objects_are_refused(tmp_path: Path) -> None:
    """Training reads confidence maps with allow_pickle=False (wsss_mmseg/transforms.py)."""
    marker = tmp_path / "pwned"
    path = tmp_path / "a.npy"
    np.save(path, np.array([CreatesMarker(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(path, allow_pickle=False)
    assert not marker.exists()


def test_params_yaml_with_python_tags_is_refused(tmp_path: Path) -> None:
    from wsss.params import load_params

    marker = tmp_path / "pwned"
    path = tmp_path / "params.yaml"
    path.write_text(f"data: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n")
    with pytest.raises(ConfigError, match=r"params.yaml: cannot read params.*python/object"):
        load_params(path)
    assert not marker.exists()
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(path.read_text())


@pytest.mark.parametrize(
    ("image_path", "reason"), [("../outside.jpg", "'..' component"), ("/etc/passwd", "is absolute"), ("a/../../b.jpg", "'..' component")]
)
def test_manifest_paths_cannot_escape_the_dataset_root(image_path: str, reason: str) -> None:
    record = {"image_id": "x", "image_path": image_path, "tags": ["cat"], "ground_truth_path": None, "sha256": "0" * 64, "width": 1, "height": 1}
    text = json.dumps({"format": "wsss.datasets.manifest", "version": 1, "name": "m", "class_names": ["cat"], "records": [record]})
    with pytest.raises(DatasetError, match=rf"manifest.json: record 0: .*{reason}"):
        Manifest.from_json(text, "manifest.json")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "JSON nested deeper than 64 levels"),  # RecursionError in json.loads
        ("[" * 200 + "]" * 200, "nested deeper than 64 levels"),  # parses, but deeper than anything we write
        ('"' + "x" * (2 << 20) + '"', "more than the limit of 1048576"),
    ],
)
def test_learned_prompts_with_hostile_metadata_are_refused_naming_the_file(tmp_path: Path, value: str, reason: str) -> None:
    from safetensors.torch import save_file

    from wsss.errors import StoreError
    from wsss.prompts.learned_file import load_learned_prompts

    path = tmp_path / "prompts.safetensors"
    tensors = {"context": torch.zeros(2, 3, 4), "background_text": torch.zeros(2, 5), "class_text": torch.zeros(2, 5)}
    save_file(tensors, str(path), metadata={"params": value})
    with pytest.raises(StoreError, match=rf"prompts\.safetensors: cannot read learned prompts \(metadata 'params': .*{reason}"):
        load_learned_prompts(path)


def test_confidence_map_declaring_more_data_than_it_holds_is_refused(tmp_path: Path) -> None:
    """A 1 kB .npy whose header declares 100000 x 100000 float16 (18.6 GiB) is refused, not allocated."""
    pytest.importorskip("mmseg")
    from wsss_mmseg.transforms import read_confidence_map

    path = tmp_path / "img.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f2", "fortran_order": False, "shape": (100_000, 100_000)})
        handle.write(b"\0" * 1024)
    with pytest.raises(ValueError, match=r"img\.npy: not a readable confidence \.npy"):
        read_confidence_map(path)

    marker = tmp_path / "pwned"
    np.save(path, np.array([CreatesMarker(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"img\.npy"):
        read_confidence_map(path)
    assert not marker.exists()
