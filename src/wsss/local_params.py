"""Untracked per-machine params overrides: `params.local.yaml` next to `params.yaml`.

`make pipeline` must never edit the tracked `params.yaml`. When it finds no CLIP weights it
writes `clip.random_init: true` into the git-ignored `params.local.yaml` instead; every stage
merges that file over `params.yaml` when it loads its params (`wsss.params.load_params`, the one
params loader), and records the merged values
(and the weights identity `random-init`) in its artifacts.

DVC does not track `params.local.yaml` (a params file must exist for every `dvc repro`), so
`scripts/sample_pipeline.sh` forces a rerun whenever it changes that file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wsss.bounded_parsing import MAX_PARAMS_BYTES, ParseError, read_yaml_file
from wsss.errors import ConfigError

LOCAL_PARAMS = "params.local.yaml"


def local_params_path(params_path: Path | str) -> Path:
    """Where the overrides of a params file live: `params.local.yaml` beside it."""
    return Path(params_path).with_name(LOCAL_PARAMS)


def merge_params(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override` merged in: mappings key by key, any other value replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_params(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_params_file(path: Path, what: str = "params") -> dict[str, Any]:
    """One params file as parsed: params.yaml and params.local.yaml are read alike.

    Bounded (`MAX_PARAMS_BYTES`, checked before reading), UTF-8, the YAML safe loader with
    bounded nesting and aliases, a key written twice refused; a mapping of sections, none of
    them null (merged over params.yaml, `clip: null` would reset every `clip` key to its
    built-in default, e.g. `allow_download` to true).

    Raises:
        ConfigError: naming the file (and the key) for each of those problems.
    """
    try:
        values = read_yaml_file(path, max_bytes=MAX_PARAMS_BYTES)
    except (OSError, ParseError) as error:
        reason = " ".join(str(error).removeprefix(f"{path}: ").split())
        raise ConfigError(f"{path}: cannot read {what} ({reason})") from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(values).__name__}")
    for key, value in values.items():
        if value is None:
            raise ConfigError(f"{path}: section {key!r} is null; a section is a mapping of its keys (delete the line, or give the keys to set)")
    return values


def read_local_params(params_path: Path) -> dict[str, Any]:
    """The overrides next to `params_path` (`params.local.yaml`, read as `read_params_file`); {} when there is none.

    Raises:
        ConfigError: naming the file.
    """
    path = local_params_path(params_path)
    # Anything there is read: a folder, a device or a dangling link is an error, not "no overrides".
    return read_params_file(path, "params overrides") if path.exists() or path.is_symlink() else {}


def with_local_params(params: Mapping[str, Any], params_path: Path) -> dict[str, Any]:
    """`params` (read from `params_path`) with `params.local.yaml` beside it merged over them."""
    return merge_params(params, read_local_params(params_path))
