"""Every `auto` of the params is resolved in one function, from the cores and the CLIP device;
what a stage records (and keys) is the resolved value; the layout is recorded beside, in no key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks import cams, refine
from wsss.catalog import ArtifactLayout
from wsss.datasets import ImageRecord, Manifest
from wsss.errors import ConfigError
from wsss.incremental import key_identity
from wsss.machine_layout import Machine, layout_record, resolve_auto, resolved
from wsss.params import Params, load_params
from wsss.settings import AUTO

ROOT = Path(__file__).resolve().parents[2]
CLIP = {"model_name": "ViT-B-16", "weights": "random-init"}


def shipped() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def on(device: str, **sections: dict) -> Params:
    raw = shipped()
    raw["clip"]["device"] = device
    for name, values in sections.items():
        raw[name].update(values)
    return Params.from_mapping(raw)


def layout_of(params: Params) -> tuple:
    return (params.cam.batch_size, params.caa.device, params.runner.decode_workers, params.runner.image_processes, params.pseudo.jobs)


def test_the_shipped_params_say_auto_where_the_machine_decides() -> None:
    params = Params.from_mapping(shipped())
    assert layout_of(params) == (AUTO,) * 5


@pytest.mark.parametrize(
    ("device", "cores", "expected"),
    [
        ("cpu", 2, (1, "cpu", 2, 0, 2)),  # this project's machine: the layout it always had (pseudo.jobs was 2)
        ("cpu", 16, (1, "cpu", 2, 0, 16)),  # CLIP on the CPU: torch uses the cores, no extra processes
        ("cuda", 16, (32, "cpu", 6, 8, 16)),  # a GPU host: batches, decode threads, 8 image processes (CAA on them)
        ("cuda:1", 3, (32, "cuda:1", 2, 0, 3)),  # too few cores for processes: CAA on the CLIP device
        ("cuda", 64, (32, "cpu", 6, 8, 64)),
    ],
)
def test_auto_values_follow_the_cores_and_the_clip_device(device: str, cores: int, expected: tuple) -> None:
    assert layout_of(resolve_auto(on(device), Machine(cores))) == expected


def test_explicit_values_are_kept() -> None:
    params = on("cuda", cam={"batch_size": 4}, caa={"device": "cuda"}, runner={"decode_workers": 3, "image_processes": 0}, pseudo={"jobs": 1})
    assert layout_of(resolve_auto(params, Machine(16))) == (4, "cuda", 3, 0, 1)


def test_resolving_twice_changes_nothing() -> None:
    once = resolve_auto(on("cuda"), Machine(16))
    assert resolve_auto(once, Machine(2)) == once


def test_loaded_params_hold_no_auto(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(shipped()))
    params = load_params(path, {"workers": 3})
    assert AUTO not in layout_of(params) and params.runner.workers == 3
    assert layout_of(params) == layout_of(resolve_auto(Params.from_mapping(shipped())))


@pytest.mark.parametrize(
    ("key", "value"),
    [("cam.batch_size", "AUTO"), ("cam.batch_size", "2"), ("runner.image_processes", -1), ("caa.device", "gpu"), ("pseudo.jobs", "all")],
)
def test_anything_else_is_refused_naming_the_key(key: str, value: object) -> None:
    raw = shipped()
    section, name = key.split(".")
    raw[section][name] = value
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', chr(92) + '.')}"):
        Params.from_mapping(raw)


def stage_attributes(params: Params) -> tuple[dict, dict]:
    manifest = Manifest("m", (ImageRecord("a", "a.jpg", ("cat",), None, "0" * 64, 7, 6),), tuple(params.vocabulary.class_names))
    cam_attrs = cams.cam_attributes(params, ArtifactLayout(), manifest, CLIP, "t {}.")
    return cam_attrs, refine.refine_attributes(params, ArtifactLayout(), cam_attrs)


def test_on_the_cpu_the_stores_record_and_key_what_the_old_explicit_defaults_did() -> None:
    """Byte-identical `params` attributes and keys on this machine: auto resolves to batch 1 and CAA on the CPU."""
    resolved = resolve_auto(Params.from_mapping(shipped()), Machine(2))
    explicit = on("cpu", cam={"batch_size": 1}, caa={"device": "cpu"}, runner={"decode_workers": 2, "image_processes": 0})
    for now, before in zip(stage_attributes(resolved), stage_attributes(explicit), strict=True):
        assert now["params"] == before["params"] and now["params_sha256"] == before["params_sha256"]
        assert key_identity(now) == key_identity(before)


def test_the_layout_is_recorded_but_enters_no_key() -> None:
    small = resolve_auto(on("cuda"), Machine(3))
    large = resolve_auto(on("cuda", caa={"device": "cuda"}), Machine(16))
    assert layout_record(large, Machine(16)) == {"cores": 16, "runner": {**large.section_dict("runner")}}
    assert large.runner.image_processes == 8 and small.runner.image_processes == 0
    cam_small, refine_small = stage_attributes(small)
    cam_large, refine_large = stage_attributes(large)
    assert "layout" in cam_large and key_identity(cam_small) == key_identity(cam_large)
    assert "layout" not in key_identity(refine_large)
    # What changes a value does enter the key: the CAA device (cuda on 3 cores, set to cuda on 16).
    assert key_identity(refine_small) == key_identity(refine_large)
    assert key_identity(refine_large) != key_identity(stage_attributes(resolve_auto(on("cuda"), Machine(16)))[1])


def test_a_value_read_as_resolved_names_its_key_when_auto_slipped_through() -> None:
    params = resolve_auto(Params.from_mapping(shipped()), Machine(2))
    assert resolved(params.pseudo.jobs, "pseudo.jobs") == 2
    with pytest.raises(ConfigError, match=r"^pseudo\.jobs is still 'auto' here: wsss\.machine_layout\.resolve_auto"):
        resolved(Params.from_mapping(shipped()).pseudo.jobs, "pseudo.jobs")
