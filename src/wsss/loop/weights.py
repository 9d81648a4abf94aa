"""The CLIP weights of a run, checked before anything starts (`wsss run`, `make pipeline`).

Without weights a run used to fail inside its first CLIP stage, minutes in, after chained
tracebacks. Now the command says in one line what is missing and what to do, before starting
anything. With `random_if_missing` (`make pipeline`'s sample run) it does what the sample's
script did: when the weights params.yaml asks for cannot be found (no `clip.checkpoint`, the
`openai` tag not cached, offline) it writes `clip.random_init: true` into the untracked,
git-ignored params.local.yaml (every stage merges it over params.yaml and records it), and
removes that key again once real weights are found; params.yaml and every tracked file stay as
they are. A named checkpoint file that is missing is an error, never a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wsss.clip.weights import check_weights  # torch-free (open_clip only to look up a pretrained tag)
from wsss.errors import CheckpointError
from wsss.io.atomic import write_text_atomic
from wsss.local_params import LOCAL_PARAMS, merge_params, read_local_params, read_params_file
from wsss.params import Params

SMOKE_RUN_HINT = "for a smoke run with random weights put `clip: {random_init: true}` in params.local.yaml (untracked)"


@dataclass(frozen=True)
class RunWeights:
    """What the run uses (`LoadedClip.weights`), and whether this check chose random ones."""

    weights: str
    random_because_missing: bool = False


def check_run_weights(root: Path) -> RunWeights:
    """The weights of params.yaml + params.local.yaml, or a CheckpointError saying what to do."""
    from wsss.params import load_params

    params = load_params(root / "params.yaml")
    try:
        return RunWeights(check_weights(params.clip.source()))
    except CheckpointError as error:
        raise CheckpointError(f"{error} ({SMOKE_RUN_HINT})") from error


def weights_or_random(root: Path) -> RunWeights:
    """The sample's rule: real weights when found, else `clip.random_init: true` in params.local.yaml."""
    params_path = root / "params.yaml"
    tracked = read_params_file(params_path)
    local = _without_random_init(read_local_params(params_path))  # decided anew below
    params = Params.from_mapping(merge_params(tracked, local))
    try:
        result = RunWeights(check_weights(params.clip.source()))
    except CheckpointError:
        if params.clip.checkpoint is not None:  # a named file that fails is an error, never a fallback
            raise
        local = merge_params(local, {"clip": {"random_init": True}})
        random = Params.from_mapping(merge_params(tracked, local))
        result = RunWeights(check_weights(random.clip.source()), random_because_missing=True)
    _write_local(root / LOCAL_PARAMS, local)
    return result


def _without_random_init(local: dict[str, Any]) -> dict[str, Any]:
    clip = {k: v for k, v in (local.get("clip") or {}).items() if k != "random_init"}
    return {**local, "clip": clip} if clip else {k: v for k, v in local.items() if k != "clip"}


def _write_local(path: Path, local: dict[str, Any]) -> None:
    """params.local.yaml as `local`, untouched when it already says that (no rewrite, no rerun)."""
    current = read_local_params(path.with_name("params.yaml"))
    if local == current:
        return
    if local:
        write_text_atomic(
            path,
            "# Written by `wsss run --random-weights-if-missing` (untracked): merged over params.yaml "
            "by every stage.\n" + yaml.safe_dump(local, sort_keys=False),
        )
    else:
        path.unlink(missing_ok=True)
