"""Typed, validated configuration built from a plain mapping (the parsed params.yaml).

Config flows one way: params.yaml -> `CoreConfig.from_mapping` -> frozen dataclasses -> plain
arguments into core functions. Unknown keys and wrong types are rejected here, before any
work, with the dotted key named. Core functions never read configuration files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from wsss.cam.caa import CaaSettings
from wsss.cam.extractor import CamSettings
from wsss.clip.loading import ClipSource
from wsss.errors import ConfigError
from wsss.pseudo.crf import CrfParams
from wsss.text.vocabulary import ClassVocabulary, coco_vocabulary, voc_vocabulary


@dataclass(frozen=True)
class PseudoSettings:
    """How refined CAMs become pseudo masks (spec §1.5).

    Attributes:
        background_alpha: exponent of the background score `(1 - max cam)^alpha`.
        crf: run the dense CRF.
        crf_reference_image_quirk: feed the CRF the reference's mean-subtracted uint8 image.
        confidence_threshold: pixels whose confidence is below become `ignore_index`; None = keep all.
        ignore_index: label of ignored pixels.
        crf_params: dense CRF parameters.
    """

    background_alpha: float = 1.0
    crf: bool = True
    crf_reference_image_quirk: bool = True
    confidence_threshold: float | None = 0.95
    ignore_index: int = 255
    crf_params: CrfParams = CrfParams()


@dataclass(frozen=True)
class CoreConfig:
    """Everything the core needs: weights, device and precision, vocabulary, CAM and pseudo settings."""

    clip: ClipSource
    device: str
    precision: str
    vocabulary: ClassVocabulary
    cam: CamSettings
    caa: CaaSettings
    pseudo: PseudoSettings

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> CoreConfig:
        """Validate the `clip`, `classes`, `cam`, `caa` and `pseudo` sections of params."""
        clip = dict(_section(params, "clip"))
        device = _pop_typed(clip, "device", str, "clip", "cpu")
        precision = _pop_typed(clip, "precision", str, "clip", "fp32")
        if precision not in ("fp32", "fp16", "bf16"):
            raise ConfigError(f"clip.precision must be fp32, fp16 or bf16, got {precision!r}")
        if clip.get("checkpoint") is not None:
            clip["checkpoint"] = Path(_typed(clip["checkpoint"], str, "clip.checkpoint"))
        pseudo = dict(_section(params, "pseudo"))
        crf_params = _build(CrfParams, _section(pseudo, "crf_params", "pseudo."), "pseudo.crf_params")
        pseudo.pop("crf_params", None)
        cam = dict(_section(params, "cam"))
        if "templates" in cam:
            cam["templates"] = tuple(_typed(t, str, "cam.templates[]") for t in _typed(cam["templates"], list, "cam.templates"))
        return cls(
            clip=_build(ClipSource, clip, "clip"),
            device=device,
            precision=precision,
            vocabulary=vocabulary_from_mapping(_section(params, "classes")),
            cam=_build(CamSettings, cam, "cam"),
            caa=_build(CaaSettings, _section(params, "caa"), "caa"),
            pseudo=_build(PseudoSettings, {**pseudo, "crf_params": crf_params}, "pseudo"),
        )


def vocabulary_from_mapping(section: Mapping[str, Any]) -> ClassVocabulary:
    """`classes: {preset: voc|coco}` or `{names: [...], synonyms: {...}, background: [...]}`."""
    _no_unknown(section, {"preset", "names", "synonyms", "background"}, "classes.")
    preset = section.get("preset")
    if preset is not None:
        if set(section) != {"preset"}:
            raise ConfigError("classes.preset cannot be combined with names/synonyms/background")
        presets = {"voc": voc_vocabulary, "coco": coco_vocabulary}
        if preset not in presets:
            raise ConfigError(f"classes.preset must be one of {sorted(presets)}, got {preset!r}")
        return presets[preset]()
    names = [_typed(n, str, "classes.names[]") for n in _typed(section.get("names", []), list, "classes.names")]
    synonyms = _typed(section.get("synonyms") or {}, dict, "classes.synonyms")
    background = [_typed(w, str, "classes.background[]") for w in _typed(section.get("background", []), list, "classes.background")]
    return ClassVocabulary.build(names, synonyms, background)


def _section(params: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = params.get(key) or {}
    return _typed(value, dict, f"{prefix}{key}")


def _typed(value: Any, kind: type, key: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def _pop_typed(section: dict[str, Any], key: str, kind: type, prefix: str, default: Any) -> Any:
    return _typed(section.pop(key, default), kind, f"{prefix}.{key}")


def _no_unknown(section: Mapping[str, Any], known: set[str], prefix: str, allow_extra: bool = False) -> None:
    unknown = sorted(set(section) - known)
    if unknown and not allow_extra:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + k for k in unknown)}; known: {', '.join(sorted(known))}")


def _build(kind: type, values: Mapping[str, Any], prefix: str) -> Any:
    """Instantiate a dataclass from a mapping, naming unknown or mistyped keys."""
    declared = {f.name: f for f in fields(kind)}
    _no_unknown(values, set(declared), f"{prefix}.")
    checked = {}
    for key, value in values.items():
        default = getattr(kind(), key) if _has_defaults(kind) else None
        if value is not None and default is not None and not isinstance(default, (tuple, Path, CrfParams)):
            value = _typed(value, type(default), f"{prefix}.{key}")
        checked[key] = value
    try:
        return kind(**checked)
    except TypeError as error:
        raise ConfigError(f"{prefix}: {error}") from error


def _has_defaults(kind: type) -> bool:
    try:
        kind()
    except TypeError:
        return False
    return True
