"""pseudo: pseudo masks, raw labels, confidence maps and a per-image summary."""

from __future__ import annotations

import sys

from prefect import flow

from flows.cli import run_stage
from tasks import pseudo as pseudo_tasks
from tasks.common import PSEUDO_DIR, REFINED_STORE, Progress, core_config, dataset_root, flow_run_id, load_params, read_manifest, write_json
from tasks.reporting import link_written_files
from wsss.datasets import manifest_sha256
from wsss.io import CamStore


@flow(name="wsss-pseudo")
def pseudo_flow(params_path: str = "params.yaml") -> int:
    """Pseudo masks, raw labels and confidence maps for every image, plus a per-image summary."""
    params = load_params(params_path)
    settings = core_config(params).pseudo
    refined = CamStore(REFINED_STORE)
    jobs = [
        pseudo_tasks.PseudoJob(image_id, REFINED_STORE, dataset_root(params), PSEUDO_DIR, settings)
        for image_id in refined.image_ids()
    ]
    progress = Progress("wsss-pseudo-progress", len(jobs), "Pseudo masks written")
    rows = pseudo_tasks.make_pseudo_masks(jobs, settings.jobs, progress)
    pseudo_tasks.remove_outputs_of_dropped_images(PSEUDO_DIR, [job.image_id for job in jobs])
    manifest = read_manifest()
    write_json(PSEUDO_DIR / "summary.json", {
        "params": params.get("pseudo"),
        "input_manifest_sha256": manifest_sha256(manifest),
        "flow_run_id": flow_run_id(),
        "images": rows,
    })
    link_written_files("wsss-pseudo-files", [PSEUDO_DIR / "summary.json", *(PSEUDO_DIR / sub for sub in ("masks", "raw", "confidence"))],
                       f"Files written by this pseudo run ({len(rows)} images)")
    return len(rows)


if __name__ == "__main__":
    sys.exit(run_stage({"pseudo": pseudo_flow}))
