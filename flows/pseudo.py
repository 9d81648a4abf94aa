"""pseudo: pseudo masks, raw labels, confidence maps and a per-image summary."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from tasks.command import run_stage
from tasks.progress import Progress
from tasks.pseudo import run_pseudo
from tasks.run_names import stage_run_name
from tasks.runtime import link_written_files
from wsss.catalog import ArtifactLayout
from wsss.params import load_params


@flow(name="wsss-pseudo", flow_run_name=stage_run_name("pseudo"))
def pseudo_flow(params_path: str = "params.yaml") -> dict[str, Any]:
    """Pseudo masks, raw labels and confidence maps for every refined image (only what changed)."""
    params = load_params(params_path)
    layout = ArtifactLayout.for_params(params)
    progress = Progress("wsss-pseudo-progress", "Pseudo masks written", "pseudo")
    result = run_pseudo(params, layout, progress)
    progress.finish(f"{len(result.removed)} removed" if result.removed else "")
    link_written_files(
        "wsss-pseudo-files",
        [layout.pseudo.summary, *layout.pseudo.output_folders()],
        f"Files written by this pseudo run ({len(result.computed)} images)",
    )
    return result.as_dict()


if __name__ == "__main__":
    sys.exit(run_stage({"pseudo": lambda args: pseudo_flow(args.params)}))
