"""params.yaml -> typed config: the shipped file is valid; bad keys and types are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wsss.config import CoreConfig
from wsss.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def shipped_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_build_the_reference_configuration() -> None:
    config = CoreConfig.from_mapping(shipped_params())
    assert config.cam.templates == ("a clean origami {}.",)
    assert (config.cam.affinity_layers, config.caa.sinkhorn_rounds, config.caa.affinity_power) == (8, 3, 2)
    assert config.caa.box_threshold == 0.4
    # The default dataset is the embedded sample: VOC's 20 classes + cup + rocket, VOC wording.
    assert config.vocabulary.num_classes == 22 and len(config.vocabulary.background_words) == 25
    assert config.vocabulary.prompt_names[14] == "person with clothes,people,human"
    assert config.pseudo.confidence_threshold == 0.95 and config.pseudo.crf_params.bilateral_sxy == 67.0
    assert config.clip.model_name == "ViT-B-16" and config.precision == "fp32"


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
    ],
)
def test_bad_values_are_rejected_with_the_key_named(section: str, key: str, value: object, message: str) -> None:
    params = shipped_params()
    params[section][key] = value
    with pytest.raises(ConfigError, match=message):
        CoreConfig.from_mapping(params)


def test_unknown_crf_parameter_is_named() -> None:
    params = shipped_params()
    params["pseudo"]["crf_params"]["iters"] = 5
    with pytest.raises(ConfigError, match=r"pseudo\.crf_params\.iters"):
        CoreConfig.from_mapping(params)


def test_custom_classes_with_synonyms_and_background() -> None:
    params = shipped_params()
    params["classes"] = {"names": ["cat", "person"], "synonyms": {"person": "person,people"}, "background": ["sky"]}
    vocabulary = CoreConfig.from_mapping(params).vocabulary
    assert vocabulary.prompt_names == ("cat", "person,people") and vocabulary.background_words == ("sky",)


def test_preset_cannot_be_mixed_with_explicit_names() -> None:
    params = shipped_params()
    params["classes"] = {"preset": "voc", "names": ["cat"]}
    with pytest.raises(ConfigError, match="preset cannot be combined"):
        CoreConfig.from_mapping(params)


def test_integer_is_accepted_where_a_float_is_expected() -> None:
    params = shipped_params()
    params["pseudo"]["background_alpha"] = 2
    assert CoreConfig.from_mapping(params).pseudo.background_alpha == 2.0


def test_whole_params_file_is_validated_and_unknown_sections_named() -> None:
    from wsss.config import validate_params

    params = shipped_params()
    validate_params(params)
    params["trian"] = {"max_iters": 3}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) trian"):
        validate_params(params)
    params = shipped_params()
    params["train"]["max_iter"] = 3
    with pytest.raises(ConfigError, match=r"train\.max_iter"):
        validate_params(params)
