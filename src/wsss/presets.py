"""What a class preset fixes besides its class list: the params its reference protocol sets.

The section defaults are the reference on VOC (`generate_cams_voc12.py`, SemPLeS's VOC runs), so
the `voc` and `sample` presets fix nothing more. The reference's COCO scripts differ in these
keys (`generate_cams_coco14.py` against `generate_cams_voc12.py`: `scoremap2bbox(threshold=0.7)`;
SemPLeS's COCO settings, docs/method.md). The other COCO differences are data, not params: the class
names, synonyms and background words (the `coco` vocabulary), the image size read from the
decoded image (as every kind here does) and tags in ascending class id (the COCO loader).

The one params loader (`Params.from_mapping`) applies a preset's values to every key the user
did not set: absent, or `null` ("the preset's value"), in params.yaml and params.local.yaml
merged. A value the user writes wins. Artifacts record the effective values; the `prompts` and
`refine` stages log them (`protocol_lines`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PRESET_PROTOCOL: Mapping[str, Mapping[str, Any]] = {
    "coco": {
        "caa.box_threshold": 0.7,  # generate_cams_coco14.py (0.4 in generate_cams_voc12.py)
        "learn_prompts.lambda_prompt": 0.01,  # SemPLeS on COCO: lambda_p
        "learn_prompts.lr": 0.01,
        "learn_prompts.lambda_refine": 0.2,  # lambda_r
    }
}


def preset_keys() -> tuple[str, ...]:
    """Every dotted key some preset fixes, sorted."""
    return tuple(sorted({key for values in PRESET_PROTOCOL.values() for key in values}))


def preset_sections() -> tuple[str, ...]:
    """The params sections holding a key some preset fixes."""
    return tuple(sorted({key.split(".")[0] for key in preset_keys()}))


def with_preset_values(mapping: Mapping[str, Any], preset: str | None) -> dict[str, Any]:
    """`mapping` (a parsed params file) with every preset-fixed key the user left unset (absent or
    null) set to `preset`'s value, or removed (the section default) when `preset` does not fix it.
    A section that is not a mapping is left to the typed builder to refuse."""
    values = PRESET_PROTOCOL.get(preset or "", {})
    result = dict(mapping)
    for key in preset_keys():
        section, name = key.split(".", 1)
        current = result.get(section)
        if current is not None and not isinstance(current, Mapping):
            continue
        given = dict(current or {})
        if given.get(name) is not None:
            continue  # the user's value wins
        given.pop(name, None)
        if key in values:
            given[name] = values[key]
        if given or section in result:
            result[section] = given
    return result


def protocol_lines(preset: str | None, effective: Mapping[str, Any], sections: tuple[str, ...] | None = None) -> list[str]:
    """One line per preset-fixed key (of `sections`, default all): its effective value and where
    it comes from, e.g. `caa.box_threshold = 0.7 (classes.preset coco)`.

    Args:
        effective: dotted key -> the value the run uses.
    """
    fixed = PRESET_PROTOCOL.get(preset or "", {})
    lines = []
    for key in preset_keys():
        if sections is not None and key.split(".")[0] not in sections:
            continue
        value = effective[key]
        if key in fixed:
            origin = f"classes.preset {preset}" if value == fixed[key] else f"set in the params, classes.preset {preset} fixes {fixed[key]}"
        else:
            origin = "default"
        lines.append(f"{key} = {value} ({origin})")
    return lines
