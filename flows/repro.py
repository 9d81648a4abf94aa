"""repro: `wsss run`'s parent flow run (`run | <dataset> | <params hash>`): `dvc repro`, with every
stage's flow run as its subflow run.

    python -m flows.repro [STAGE ...] [--force]     (`wsss run` starts it with its Prefect set-up)
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.command import run_stage
from tasks.command_line import repro_arguments
from tasks.repro import run_dvc_repro
from tasks.run_names import stage_run_name


@flow(name="wsss-run", flow_run_name=stage_run_name("run"))
def repro_flow(params_path: str = "params.yaml", targets: list[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Bring the stages (default: all) up to date with `dvc repro`; the stages' runs are this run's
    subflow runs. `params_path` names the run (dataset, params hash); DVC's stages read params.yaml."""
    return run_dvc_repro(targets or [], force)


if __name__ == "__main__":
    # No run lock here: each stage process DVC starts takes it.
    sys.exit(run_stage({"run": lambda args: repro_flow(args.params, args.targets, args.force)}, lock=False, extra=repro_arguments, stage="run"))
