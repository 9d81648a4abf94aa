"""`wsss run`, `wsss relabel`, `wsss serve`: the pipeline, one relabel run and the served relabel
deployment, each under the Prefect set-up the command owns (`wsss.loop.prefect_server`).

`wsss run [STAGE ...]`: checks what can be checked in a second (the params, the CLIP weights, the
Prefect server named by `PREFECT_API_URL`), reruns every stage when params.local.yaml changed
since the last completed run (DVC does not see that file), returns at once when `dvc status`
says everything is up to date, and otherwise runs `python -m flows.repro`: one parent flow run
(`run | <dataset> | <params hash>`) whose body is `dvc repro`, every stage's flow run its
subflow run. Expected problems are one line (exit 2) with the traceback in `.wsss/logs/`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from wsss.catalog import ArtifactLayout
from wsss.errors import ConfigError, LoopError
from wsss.loop.prefect_server import loop_environment, prefect_api
from wsss.loop.records import local_params_changed
from wsss.loop.status import stale_stages
from wsss.loop.weights import check_run_weights, weights_or_random
from wsss.stages import STAGE_NAMES, upstream_of

CLIP_STAGES = ("prompts", "cams", "learn_prompts", "learned_cams")
DEFAULT_UI_PORT = 4200  # Prefect's own default: its UI finds the API there without PREFECT_UI_API_URL


def repository_root() -> Path:
    """The working directory, when it holds the pipeline (dvc.yaml and params.yaml)."""
    root = Path.cwd()
    missing = [name for name in ("dvc.yaml", "params.yaml") if not (root / name).is_file()]
    if missing:
        raise LoopError(f"{root}: no {' or '.join(missing)} here; run wsss in the pipeline's repository (the folder with dvc.yaml)")
    return root


def needs_clip(targets: list[str]) -> bool:
    """Whether the stages `dvc repro <targets>` may run include one that loads CLIP."""
    involved = set(STAGE_NAMES) if not targets else {name for t in targets for name in (t, *upstream_of(t))}
    return bool(involved & set(CLIP_STAGES))


def say(message: str) -> None:
    print(f"[wsss] {message}", flush=True)


def run_pipeline(args: argparse.Namespace) -> int:
    """`dvc repro [--force] [STAGE ...]` under one parent flow run, with one Prefect server."""
    root = repository_root()
    layout = ArtifactLayout(root)
    weights = weights_or_random(root) if args.random_weights_if_missing else None  # may change params.local.yaml
    if weights is not None and weights.random_because_missing:
        say("NOTE: no CLIP weights found (clip.checkpoint unset, 'openai' tag not cached, offline).")
        say("      Running with RANDOM CLIP weights via params.local.yaml (params.yaml is unchanged);")
        say("      maps and masks will NOT be meaningful. For real maps set clip.checkpoint in params.yaml.")
    force = args.force
    if not force and local_params_changed(layout):
        say("params.local.yaml changed since the last run (DVC does not track it): rerunning every stage")
        force = True
    if not force and not stale_stages(root, args.stages):
        say("every stage is up to date (dvc status): nothing to run")
        return 0
    if weights is None and needs_clip(args.stages):
        weights = check_run_weights(root)
    if weights is not None:
        say(f"CLIP weights: {weights.weights}")
    started = time.monotonic()
    command = [sys.executable, "-m", "flows.repro", *args.stages, *(["--force"] if force else [])]
    with prefect_api(loop_environment(root), layout.log_file("prefect-server")) as env:
        code = subprocess.run(command, cwd=root, env=env, check=False).returncode
    if code != 0:
        print(
            f"error: the pipeline run failed (exit {code}); the failing stage said why above (tracebacks: {layout.log_file('<stage>')})",
            file=sys.stderr,
        )
        return 2
    say(f"pipeline finished in {time.monotonic() - started:.0f} s" + (f" with CLIP weights: {weights.weights}" if weights else ""))
    return 0


def run_relabel(args: argparse.Namespace) -> int:
    """One relabel run (`python -m flows.relabel run`) with the loop's Prefect set-up."""
    root = repository_root()
    layout = ArtifactLayout(root)
    check_run_weights(root)
    with prefect_api(loop_environment(root), layout.log_file("prefect-server")) as env:
        code = subprocess.run([sys.executable, "-m", "flows.relabel", "run", "--params", args.params], cwd=root, env=env, check=False).returncode
    return 0 if code == 0 else 2


def serve_relabel(args: argparse.Namespace) -> int:
    """The relabel deployment on its schedule until stopped, on a server that stays up as long."""
    from wsss.params import load_params
    from wsss.relabel import RelabelSettings

    root = repository_root()
    layout = ArtifactLayout(root)
    settings = load_params(root / args.params).relabel
    if args.cron:
        RelabelSettings(cron=args.cron)  # the params' own check of a cron expression
    if not (args.cron or args.interval or settings.cron or settings.interval_seconds):
        raise ConfigError("give --cron or --interval (or set relabel.cron / relabel.interval_seconds in params.yaml)")
    check_run_weights(root)
    schedule = ["--cron", args.cron] if args.cron else ["--interval", str(args.interval)] if args.interval else []
    command = [sys.executable, "-m", "flows.relabel", "serve", "--params", args.params, "--name", args.name, *schedule]
    with prefect_api(loop_environment(root), layout.log_file("prefect-server"), port=args.port) as env:
        say(f"serving deployment wsss-relabel/{args.name} (Ctrl-C stops it)")
        try:
            code = subprocess.run(command, cwd=root, env=env, check=False).returncode
        except KeyboardInterrupt:
            code = 0
    return 0 if code in (0, 130, -2) else 2
