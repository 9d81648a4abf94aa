"""Params sections as typed dataclasses, and the one builder that reads them from parsed YAML.

A section is a frozen dataclass next to the step it configures. Each field declares its type
(the annotation), its default, a one-line description and, for numbers, a finite range:

    @dataclass(frozen=True)
    class CaaSettings:
        SECTION: ClassVar[str] = "caa"
        box_threshold: float = setting(0.4, "contour threshold, fraction of the CAM max", ge=0, le=1)

        def __post_init__(self) -> None:
            check_fields(self)

`build_section(CaaSettings, {"box_threshold": 0.5}, "caa")` checks every key against the
annotations (Optional, Literal and `choices`, tuple[...] items, Mapping[str, str], nested
sections, bool is not int, floats finite), the declared ranges and checks, and names the dotted
key in every error (`caa.box_threshold must be in [0, 1], got 1.5`). Direct construction runs the
same range checks through `check_fields`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, Union

from wsss.errors import ConfigError

# The value of a key that the machine decides (`x: int | Auto`): resolved once per run by
# `wsss.machine_layout.resolve_auto`, never read as a number before that.
AUTO = "auto"
Auto = Literal["auto"]

# A check returns what is wrong with a (well-typed) value, or None when it is fine.
Check = Callable[[Any], "str | None"]


def setting(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    check: Check | None = None,
    param: bool = True,
    identity: bool = True,
) -> Any:
    """A section field: default, one-line `doc`, range (for numbers, or each item of a tuple),
    allowed `choices`, an extra `check`; `param=False` marks a field callers set that is not a
    params.yaml key; `identity=False` a key that never changes an output kept under a reuse key
    (how many processes, the codec, the shard layout): the one rule of what enters a reuse key
    (`wsss.incremental.keys.key_identity`)."""
    metadata = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "check": check, "param": param, "identity": identity}
    if isinstance(default, (list, dict, set)):
        frozen = dict(default) if isinstance(default, dict) else tuple(default)
        return dataclasses.field(default_factory=lambda: frozen, metadata=metadata)
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@functools.cache
def type_hints(kind: type) -> dict[str, Any]:
    """The resolved annotations of a section class (cached: they never change)."""
    return typing.get_type_hints(kind)


def param_fields(kind: type) -> list[dataclasses.Field[Any]]:
    """The fields of a section that are params.yaml keys, in declaration order."""
    return [f for f in dataclasses.fields(kind) if f.metadata.get("param", True)]


def build_section(kind: type, values: Any, prefix: str) -> Any:
    """An instance of the section `kind` from a parsed mapping (an empty one: all defaults).

    Raises:
        ConfigError: naming the dotted key: a null section, unknown keys, wrong types, values out of range.
    """
    if values is None:
        # Not "all defaults": merged over params.yaml, `clip: null` silently reset every clip key.
        raise ConfigError(f"{prefix} is null; a section is a mapping of its keys (delete it to take every default)")
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix} must be a mapping, got {type(values).__name__} {values!r}")
    declared = {f.name: f for f in param_fields(kind)}
    no_unknown_keys(values, declared, prefix)
    hints = type_hints(kind)
    checked = {name: coerce(values[name], hints[name], f"{prefix}.{name}", declared[name].metadata) for name in values}
    try:
        return kind(**checked)
    except TypeError as error:
        raise ConfigError(f"{prefix}: {error}") from error


def no_unknown_keys(values: Mapping[str, Any], known: Mapping[str, Any] | set[str], prefix: str) -> None:
    unknown = sorted(str(k) for k in set(values) - set(known))
    if unknown:
        dotted = ", ".join(f"{prefix}.{k}" if prefix else k for k in unknown)
        raise ConfigError(f"unknown key(s) {dotted}; known: {', '.join(sorted(known))}")


def coerce(value: Any, annotation: Any, key: str, metadata: Mapping[str, Any] | None = None) -> Any:
    """`value` checked against `annotation` (and the field's range/choices/check), in its typed form."""
    metadata = metadata or {}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        if Auto in options and len(options) == 2:  # `int | Auto`: "auto", or a value of the other type
            if value == AUTO:
                return value
            options = [a for a in options if a is not Auto]
            return coerce(value, options[0], key, {**metadata, "or_auto": True})
        if len(options) != 1:
            raise TypeError(f"{key}: only Optional[X] unions are supported, not {annotation}")
        return coerce(value, options[0], key, {**metadata, "optional": True})
    if origin is tuple:
        if value is None:  # not "empty": a key written `key:` with its items lost
            raise ConfigError(f"{key} is null; give a list ([] for none)")
        items = value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {type(value).__name__} {value!r}")
        return tuple(coerce(item, args[0], f"{key}[{index}]", metadata) for index, item in enumerate(items))
    if origin in (Mapping, dict) or annotation is dict:
        return _coerce_mapping(value, args, key)
    if origin is Literal:
        _check_choices(value, args, key)
        return value
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return value if isinstance(value, annotation) else build_section(annotation, value, key)
    typed = _coerce_scalar(value, annotation, key, bool(metadata.get("optional")), bool(metadata.get("or_auto")))
    _check_value(typed, key, metadata)
    return typed


def _coerce_mapping(value: Any, args: tuple[Any, ...], key: str) -> dict[str, Any]:
    if value is None:
        raise ConfigError(f"{key} is null; give a mapping ({{}} for none)")
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping, got {type(value).__name__} {value!r}")
    value_type = args[1] if len(args) == 2 else Any
    return {_coerce_scalar(k, str, f"{key} key", False): coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}


def _coerce_scalar(value: Any, kind: Any, key: str, optional: bool, or_auto: bool = False) -> Any:
    if kind is Any:
        return value
    wanted = f"{kind.__name__}{' (or null)' if optional else ''}{' (or auto)' if or_auto else ''}"
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {wanted}, got {type(value).__name__} {value!r}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    return value


def _check_choices(value: Any, choices: tuple[Any, ...], key: str) -> None:
    if isinstance(value, bool) or value not in choices:
        raise ConfigError(f"{key} must be one of {tuple(choices)}, got {value!r}")


def _check_value(value: Any, key: str, metadata: Mapping[str, Any]) -> None:
    """Range (numbers), choices and the extra check of one typed, non-null value."""
    if metadata.get("choices") is not None:
        _check_choices(value, metadata["choices"], key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        problem = range_problem(value, metadata)
        if problem:
            raise ConfigError(f"{key} must be {problem}, got {value!r}")
    if metadata.get("check") is not None:
        problem = metadata["check"](value)
        if problem:
            raise ConfigError(f"{key} {problem}, got {value!r}")


def range_problem(value: float, metadata: Mapping[str, Any]) -> str | None:
    """The declared range in words when `value` lies outside it (e.g. `in [0, 1]`), else None."""
    low, high = metadata.get("ge"), metadata.get("le")
    low_open, high_open = metadata.get("gt"), metadata.get("lt")
    inside = (
        (low is None or value >= low)
        and (low_open is None or value > low_open)
        and (high is None or value <= high)
        and (high_open is None or value < high_open)
    )
    if inside and math.isfinite(value):
        return None
    left = f"[{low:g}" if low is not None else f"({low_open:g}" if low_open is not None else "(-inf"
    right = f"{high:g}]" if high is not None else f"{high_open:g})" if high_open is not None else "inf)"
    return f"in {left}, {right}"


def check_fields(section: Any, prefix: str | None = None) -> None:
    """Types, ranges, choices and checks of every field of a section built directly (its `__post_init__`)."""
    prefix = prefix or getattr(section, "SECTION", type(section).__name__)
    kind: type = type(section)
    hints = type_hints(kind)
    for field in param_fields(kind):
        coerce(getattr(section, field.name), hints[field.name], f"{prefix}.{field.name}", field.metadata)


def plain(section: Any) -> Any:
    """A section (or value) as JSON-ready data: params keys only, tuples as lists."""
    if dataclasses.is_dataclass(section) and not isinstance(section, type):
        return {f.name: plain(getattr(section, f.name)) for f in param_fields(type(section))}
    if isinstance(section, (tuple, list)):
        return [plain(item) for item in section]
    if isinstance(section, Mapping):
        return {str(k): plain(v) for k, v in section.items()}
    return section


def iter_keys(kind: type, prefix: str) -> Iterator[tuple[str, Any, dataclasses.Field[Any]]]:
    """Every params key below a section, depth first: (dotted key, annotation, field)."""
    hints = type_hints(kind)
    for field in param_fields(kind):
        key, annotation = f"{prefix}.{field.name}", hints[field.name]
        nested = [a for a in (annotation, *typing.get_args(annotation)) if isinstance(a, type) and dataclasses.is_dataclass(a)]
        if nested:
            yield from iter_keys(nested[0], key)
        else:
            yield key, annotation, field


def numeric_kind(annotation: Any) -> type | None:
    """int or float when a key holds a number or a tuple of numbers (Optional or not), else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if candidate in (int, float):
            return candidate
        if typing.get_origin(candidate) is tuple and typing.get_args(candidate)[0] in (int, float):
            return typing.get_args(candidate)[0]
    return None
