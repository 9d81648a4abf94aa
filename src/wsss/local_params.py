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

from wsss.bounded_parsing import ParseError, load_yaml
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


def read_local_params(params_path: Path) -> dict[str, Any]:
    """The overrides next to `params_path` (`params.local.yaml`); {} when there is none.

    Raises:
        ConfigError: If the file is not YAML or not a mapping (naming the file).
    """
    path = local_params_path(params_path)
    if not path.is_file():
        return {}
    try:
        values = load_yaml(path.read_text(), str(path)) or {}
    except (OSError, ParseError) as error:
        reason = " ".join(str(error).removeprefix(f"{path}: ").split())
        raise ConfigError(f"{path}: cannot read params overrides ({reason})") from error
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return values


def with_local_params(params: Mapping[str, Any], params_path: Path) -> dict[str, Any]:
    """`params` (read from `params_path`) with `params.local.yaml` beside it merged over them."""
    return merge_params(params, read_local_params(params_path))
