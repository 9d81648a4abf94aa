"""predict: segment a batch of new images with the trained model, once or on a schedule.

    python -m flows.predict run --input 'incoming/*.jpg' [--out outputs/predict] [--crf] [--params params.yaml]
    python -m flows.predict serve --input 'incoming/*.jpg' --cron "0 * * * *" | --interval 600 [--name hourly]

The same run as `wsss predict` (checked the same way; failures in the output's `failures.json`).
`serve` registers the deployment `wsss-predict/<name>` with the Prefect server at `PREFECT_API_URL`
and runs its scheduled and manual runs (`prefect deployment run 'wsss-predict/<name>'`) until stopped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from prefect import flow

from tasks.command import run_stage
from tasks.predict import run_predict_images
from tasks.run_names import stage_run_name
from tasks.runtime import link_written_files
from wsss.params import load_params


@flow(name="wsss-predict", flow_run_name=stage_run_name("predict"))
def predict_flow(
    params_path: str = "params.yaml",
    inputs: list[str] | None = None,
    out: str = "outputs/predict",
    crf: bool = False,
    overlays: bool = False,
    device: str = "cpu",
    batch_size: int = 1,
) -> dict[str, Any]:
    """Label PNGs (+ overlays) of the images matched by `inputs` (files, folders, globs)."""
    result = run_predict_images(
        load_params(params_path), inputs=tuple(inputs or ()), out=out, crf=crf, overlays=overlays, device=device, batch_size=batch_size
    )
    link_written_files("wsss-predict-files", result["written_files"], f"Label maps written by this predict run ({result['line']})")
    return result


def flow_parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "params_path": args.params,
        "inputs": args.input,
        "out": args.out,
        "crf": args.crf,
        "overlays": args.overlays,
        "device": args.device,
        "batch_size": args.batch_size,
    }


def serve(args: argparse.Namespace) -> None:
    """Serve the flow as deployment `wsss-predict/<name>` on the schedule (blocks until stopped)."""
    if args.cron is None and args.interval is None:
        raise SystemExit("error: give --cron or --interval")
    predict_flow.serve(
        name=args.name,
        cron=args.cron,
        interval=args.interval,
        parameters=flow_parameters(args),
        description="Segment new images with the trained model",
        limit=1,
    )


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", action="append", required=True, help="image file, folder or glob (repeatable)")
    parser.add_argument("--out", default="outputs/predict", help="output folder (default: outputs/predict)")
    parser.add_argument("--crf", action="store_true", help="dense CRF (evaluate's crf=on)")
    parser.add_argument("--overlays", action="store_true", help="also write overlays")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--batch-size", type=int, default=1, help="images of one size per forward")
    parser.add_argument("--cron", help="serve: cron schedule, e.g. '0 * * * *'")
    parser.add_argument("--interval", type=int, help="serve: seconds between runs")
    parser.add_argument("--name", default="predict", help="serve: deployment name (default: predict)")


if __name__ == "__main__":
    sys.exit(
        run_stage({"run": lambda args: predict_flow(**flow_parameters(args)), "serve": serve}, lock=False, extra=options, stage="predict")
    )  # reads the model, writes outside artifacts/: no lock
