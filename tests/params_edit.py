"""The one way tests read, change and write a params file: dotted keys, the YAML read and written once.

    edit_params(repo, {"caa.box_threshold": 0.5, "data": {"kind": "folder", ...}})

A dotted key sets one value (missing or null parents become mappings); a bare section name
replaces the whole section. `repo` is a params file or a folder holding `params.yaml`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def params_file(target: Path | str) -> Path:
    path = Path(target)
    return path / "params.yaml" if path.is_dir() else path


def read_params(target: Path | str = ROOT) -> dict:
    """The params file as plain data (default: the repository's shipped params.yaml)."""
    return yaml.safe_load(params_file(target).read_text())


def write_params(target: Path | str, params: Mapping) -> Path:
    path = params_file(target)
    path.write_text(yaml.safe_dump(dict(params), sort_keys=False))
    return path


def with_values(params: dict, changes: Mapping[str, object]) -> dict:
    """`params` with every dotted key of `changes` set (in place; returned for chaining)."""
    for dotted, value in changes.items():
        node = params
        *parents, leaf = dotted.split(".")
        for part in parents:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise TypeError(f"{dotted}: {part} is not a mapping")
        node[leaf] = value
    return params


def edit_params(target: Path | str, changes: Mapping[str, object]) -> dict:
    """Set `changes` (dotted keys) in the params file at `target`; returns the params written."""
    params = with_values(read_params(target), changes)
    write_params(target, params)
    return params
