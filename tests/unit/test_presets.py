"""A class preset carries its reference protocol: switching `classes.preset: coco` (nothing else)
gives the reference COCO script's box threshold and tags in class-id order.

Before, `caa.box_threshold` stayed 0.4 under the COCO preset (the reference's COCO script uses 0.7:
pseudo masks agreed on 41-48 % of pixels with the reference instead of >= 99.99 %), and an image's
COCO tags followed the JSON's annotation order instead of the reference list's ascending class ids.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.prepare import run_prepare
from tasks.refine import refine_attributes
from tests.unit.dataset_builders import write_coco_set
from wsss.catalog import ArtifactLayout
from wsss.errors import ConfigError
from wsss.params import Params, load_params
from wsss.presets import PRESET_PROTOCOL, with_preset_values
from wsss.stage_inputs import read_manifest
from wsss.text.vocabulary import COCO_CLASS_NAMES

ROOT = Path(__file__).resolve().parents[2]


def shipped() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def coco_params(tmp_path: Path, **sections: dict) -> Path:
    """The shipped params.yaml with only the dataset and `classes.preset: coco` changed (the README's COCO example)."""
    write_coco_set(tmp_path / "coco")
    params = shipped()
    params["data"] = {
        "kind": "coco",
        "root": str(tmp_path / "coco"),
        "split": "val2014",
        "instances_json": "annotations/instances_val2014.json",
        "images_dir": "val2014",
    }
    params["classes"] = {"preset": "coco"}
    for name, values in sections.items():
        params[name].update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_the_coco_preset_alone_gives_the_reference_coco_protocol_and_tag_order(tmp_path: Path) -> None:
    params = load_params(coco_params(tmp_path))
    assert params.caa.box_threshold == 0.7  # generate_cams_coco14.py
    assert (params.learn_prompts.lambda_prompt, params.learn_prompts.lr, params.learn_prompts.lambda_refine) == (0.01, 0.01, 0.2)
    layout = ArtifactLayout(tmp_path)
    run_prepare(params, layout)
    tags = {r.image_id: r.tags for r in read_manifest(layout).records}
    for image_tags in tags.values():
        assert list(image_tags) == sorted(image_tags, key=COCO_CLASS_NAMES.index)
    assert tags["COCO_val2014_000000000042"] == ("person", "motorbike", "dog")  # the JSON lists person, dog, motorcycle
    # What the refine stage records (and lineage shows) is the effective value.
    assert refine_attributes(params, layout, {})["params"]["caa"]["box_threshold"] == 0.7
    assert params.protocol_lines("caa") == ["caa.box_threshold = 0.7 (classes.preset coco)"]


def test_a_value_the_user_sets_wins_over_the_preset(tmp_path: Path) -> None:
    path = coco_params(tmp_path)
    (tmp_path / "params.local.yaml").write_text("caa: {box_threshold: 0.5}\n")
    params = load_params(path)
    assert params.caa.box_threshold == 0.5 and params.learn_prompts.lr == 0.01
    assert params.protocol_lines("caa") == ["caa.box_threshold = 0.5 (set in the params, classes.preset coco fixes 0.7)"]


def test_other_presets_and_explicit_classes_keep_the_section_defaults() -> None:
    for classes in ({"preset": "voc"}, {"preset": "sample"}, {"names": ["cat", "dog"]}, None):
        raw = {**shipped(), "classes": classes}
        assert Params.from_mapping(raw).caa.box_threshold == 0.4, classes
    assert Params.from_mapping({}).caa.box_threshold == 0.4
    assert Params.from_mapping({"classes": {"preset": "coco"}}).caa.box_threshold == 0.7


def test_null_is_the_presets_value_only_for_keys_a_preset_fixes() -> None:
    raw = shipped()
    assert raw["caa"]["box_threshold"] is None  # shipped: "the preset's value"
    raw["caa"]["sinkhorn_rounds"] = None
    with pytest.raises(ConfigError, match=r"caa\.sinkhorn_rounds must be int"):
        Params.from_mapping(raw)


def test_the_table_fixes_only_known_keys_within_their_ranges() -> None:
    defaults = Params()
    for preset, values in PRESET_PROTOCOL.items():
        built = Params.from_mapping(with_preset_values({"classes": {"preset": preset}}, preset))
        for key, value in values.items():
            section, name = key.split(".", 1)
            assert getattr(getattr(built, section), name) == value != getattr(getattr(defaults, section), name), key
