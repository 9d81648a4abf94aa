"""params.yaml -> the typed `Params`: the shipped file is valid; bad keys, types and values are named.

The Optional and numeric cases are enumerated from the typed sections themselves (not a hand
list), so a key added later is covered the day it is added.
"""

from __future__ import annotations

import json
import math
import operator
import typing
from pathlib import Path

import pytest

from tests.params_edit import read_params, with_values, write_params
from wsss.errors import ConfigError
from wsss.params import Params, load_params
from wsss.presets import preset_keys
from wsss.provenance import canonical_json
from wsss.settings import iter_keys, numeric_kind


def shipped_with_preset_keys_filled() -> dict:
    """params.yaml with its nulls "the preset's value" replaced by the value the shipped preset
    (the sample's: none fixed) leaves: the section default."""
    raw, defaults = read_params(), Params()
    for key in preset_keys():
        section, name = key.split(".", 1)
        if raw[section][name] is None:
            raw[section][name] = getattr(getattr(defaults, section), name)
    return raw


def every_key() -> list[tuple[str, object, object]]:
    """(dotted key, annotation, field) of every params key of every section."""
    hints = typing.get_type_hints(Params)
    return [item for name in hints for item in iter_keys(hints[name], name)]


def test_shipped_params_build_the_reference_configuration() -> None:
    params = Params.from_mapping(read_params())
    assert params.cam.templates == ("a clean origami {}.",)  # set by the caller from the prompts stage
    assert (params.cam.affinity_layers, params.caa.sinkhorn_rounds, params.caa.affinity_power) == (8, 3, 2)
    assert params.caa.box_threshold == 0.4
    # The default dataset is the embedded sample: VOC's 20 classes + cup + rocket, VOC wording.
    assert params.vocabulary.num_classes == 22 and len(params.vocabulary.background_words) == 25
    assert params.vocabulary.prompt_names[14] == "person with clothes,people,human"
    assert params.pseudo.confidence_threshold == 0.95 and params.pseudo.crf_params.bilateral_sxy == 67.0
    assert params.clip.model_name == "ViT-B-16" and params.clip.precision == "fp32"


def test_recorded_sections_are_the_yaml_as_written() -> None:
    """What artifacts record and hash is derived from the typed object, and equals today's file with
    the preset's values in place of its nulls (so the attributes of existing stores stay byte-identical)."""
    raw = shipped_with_preset_keys_filled()
    params = Params.from_mapping(read_params())
    for name in raw:
        assert canonical_json(params.section_dict(name)) == canonical_json(raw[name]), name


def test_cam_templates_is_not_a_params_key() -> None:
    """The prompts stage owns the template: `cam.templates` would have been silently replaced."""
    params = with_values(read_params(), {"cam.templates": ["a photo of a {}."]})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) cam\.templates"):
        Params.from_mapping(params)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("cam", "box_treshold", 0.4, r"unknown key\(s\) cam\.box_treshold"),
        ("cam", "affinity_layers", "8", r"cam\.affinity_layers must be int"),
        ("cam", "exact_attention", 1, r"cam\.exact_attention must be bool"),
        ("cam", "backward", "magic", r"backward must be one of"),
        ("pseudo", "confidence_threshold", "high", r"pseudo\.confidence_threshold must be float"),
        ("clip", "precision", "fp8", r"clip\.precision must be"),
        ("caa", "box_threshold", 1.5, r"box_threshold must be in \[0, 1\]"),
        ("store", "shard_count", True, r"store\.shard_count must be int"),
        ("clip", "sha256", "not-hex", r"clip\.sha256 must be 64 hexadecimal digits"),
        ("prompts", "pin", "a photo of a cat", r"prompts\.pin must contain exactly one '\{\}'"),
        ("prompts", "candidates", ["a {} of {}"], r"prompts\.candidates\[0\] must contain exactly one"),
        ("relabel", "state_dir", "/etc", r"relabel\.state_dir must be a relative path inside the repository"),
        ("relabel", "state_dir", "../elsewhere", r"relabel\.state_dir must be a relative path"),
        ("pseudo", "background_alpha", float("nan"), r"pseudo\.background_alpha must be a finite number"),
    ],
)
def test_bad_values_are_rejected_with_the_key_named(section: str, key: str, value: object, message: str) -> None:
    params = with_values(read_params(), {f"{section}.{key}": value})
    with pytest.raises(ConfigError, match=message):
        Params.from_mapping(params)


def test_unknown_crf_parameter_is_named() -> None:
    params = with_values(read_params(), {"pseudo.crf_params.iters": 5})
    with pytest.raises(ConfigError, match=r"pseudo\.crf_params\.iters"):
        Params.from_mapping(params)


def test_custom_classes_with_synonyms_and_background() -> None:
    params = with_values(read_params(), {"classes": {"names": ["cat", "person"], "synonyms": {"person": "person,people"}, "background": ["sky"]}})
    built = Params.from_mapping(params)
    assert built.vocabulary.prompt_names == ("cat", "person,people") and built.vocabulary.background_words == ("sky",)
    assert built.section_dict("classes") == params["classes"]


def test_preset_cannot_be_mixed_with_explicit_names() -> None:
    params = with_values(read_params(), {"classes": {"preset": "voc", "names": ["cat"]}})
    with pytest.raises(ConfigError, match="preset cannot be combined"):
        Params.from_mapping(params)


def test_integer_is_accepted_where_a_float_is_expected() -> None:
    params = with_values(read_params(), {"pseudo.background_alpha": 2})
    assert Params.from_mapping(params).pseudo.background_alpha == 2.0


def test_whole_params_file_is_validated_and_unknown_sections_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) trian"):
        Params.from_mapping(with_values(read_params(), {"trian": {"max_iters": 3}}))
    path = write_params(tmp_path / "params.yaml", with_values(read_params(), {"train.max_iter": 3}))
    with pytest.raises(ConfigError, match=rf"^{path}: unknown key\(s\) train\.max_iter"):
        load_params(path)


OPTIONAL_KEYS = [(key, annotation) for key, annotation, _ in every_key() if type(None) in typing.get_args(annotation)]


def wrong_value_for(annotation: object) -> object:
    """A value of the wrong type for an Optional field (a number for text, text for a number)."""
    inner = next(a for a in typing.get_args(annotation) if a is not type(None))
    return "not a number" if inner in (int, float) else 5


@pytest.mark.parametrize(("key", "annotation"), OPTIONAL_KEYS, ids=[key for key, _ in OPTIONAL_KEYS])
def test_every_optional_field_is_type_checked(key: str, annotation: object) -> None:
    """Fields whose default is None used to skip the type check (`data.images_dir: 5` was accepted)."""
    assert len(OPTIONAL_KEYS) >= 15
    params = with_values(read_params(), {key: wrong_value_for(annotation)})
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', chr(92) + '.')} (must|is)"):
        Params.from_mapping(params)
    if key != "classes.preset":  # a null preset needs explicit names instead
        Params.from_mapping(with_values(read_params(), {key: None}))  # null stays allowed


NUMERIC_KEYS = [(key, annotation, field) for key, annotation, field in every_key() if numeric_kind(annotation)]


def inside(value: float, metadata: typing.Mapping[str, typing.Any]) -> bool:
    checks = (("ge", operator.ge), ("gt", operator.gt), ("le", operator.le), ("lt", operator.lt))
    return all(metadata[name] is None or check(value, metadata[name]) for name, check in checks)


def is_tuple(annotation: object) -> bool:
    return any(typing.get_origin(a) is tuple for a in (annotation, *typing.get_args(annotation)))


@pytest.mark.parametrize(("key", "annotation", "field"), NUMERIC_KEYS, ids=[key for key, _, _ in NUMERIC_KEYS])
def test_params_fuzz_every_numeric_key(key: str, annotation: object, field: typing.Any, tmp_path: Path) -> None:
    """NaN, inf, negative, zero, wrong types and just-out-of-range values, for every numeric key:
    each is either inside the key's declared finite range (and accepted) or refused at load time
    with one line naming the file and the key."""
    metadata = field.metadata
    low = metadata["ge"] if metadata["ge"] is not None else metadata["gt"]
    high = metadata["le"] if metadata["le"] is not None else metadata["lt"]
    assert low is not None and high is not None and math.isfinite(low) and math.isfinite(high), f"{key} needs a finite range"
    is_int = numeric_kind(annotation) is int
    step = 1 if is_int else 1e-6 * max(1.0, abs(high))
    for value in (float("nan"), float("inf"), float("-inf"), -1, 0, "3", True, low - step, high + step, [1]):
        params = with_values(read_params(), {key: [value] if is_tuple(annotation) else value})
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and math.isfinite(value) and inside(value, metadata) and (isinstance(value, int) or not is_int):
            Params.from_mapping(params)  # legal: accepted
            continue
        with pytest.raises(ConfigError) as raised:
            Params.from_mapping(params)
        assert str(raised.value).startswith(key) and "\n" not in str(raised.value), (key, value, raised.value)
    # From a file, the message names the file first.
    path = tmp_path / "params.yaml"
    write_params(path, with_values(read_params(), {key: [float("nan")] if is_tuple(annotation) else float("nan")}))
    with pytest.raises(ConfigError, match=rf"^{path}: {key.replace('.', chr(92) + '.')}"):
        load_params(path)


def test_config_errors_stop_the_stage_before_any_work_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`python -m flows.<stage>` with a poisoned value: exit 2, one line on stderr, the flow never called."""
    from tasks.command import run_stage

    monkeypatch.chdir(tmp_path)
    called = []
    for key, value in (
        ("pseudo.crf_params.bilateral_srgb", 0),
        ("train.lr", float("nan")),
        ("store.shard_count", True),
        ("evaluate.background_alphas", [float("nan")]),
        ("pseudo.crf_params.iterations", -1),
    ):
        write_params("params.yaml", with_values(read_params(), {key: value}))
        assert run_stage({"x": called.append}, []) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"error: params.yaml: {key}") and error.count("\n") == 1, error
    assert called == [] and not Path("artifacts").exists()


def test_train_recipe_keys_default_to_the_config_file() -> None:
    """params.yaml's train.* recipe keys are null: the mmseg config file is the recipe."""
    train = Params.from_mapping(read_params()).train
    assert train.recipe_overrides() == {}
    changed = Params.from_mapping(with_values(read_params(), {"train.lr": 0.001})).train
    assert changed.recipe_overrides() == {"lr": 0.001}


def test_section_docs_exist_for_every_key() -> None:
    """Every params key carries a one-line description (the README params table can be generated)."""
    missing = [key for key, _, field in every_key() if not field.metadata.get("doc")]
    assert missing == []
    assert all("\n" not in field.metadata["doc"] for _, _, field in every_key())


def test_json_of_sections_is_deterministic() -> None:
    params = Params.from_mapping(read_params())
    raw = shipped_with_preset_keys_filled()
    assert json.loads(canonical_json(params.sections("caa", "store"))) == {"caa": raw["caa"], "store": raw["store"]}
