"""Images/s of `wsss predict` at the recipe's crop, batch 1 and 16, on this machine's CPU or a GPU.

Two figures per batch size, from the code `wsss predict` runs:

* `network`: `wsss_mmseg.inference.predict_batch` (evaluate's prediction path: the model's
  preprocessing, backbone, head, bilinear resize, arg-max; scale 1, no CRF) on crop x crop photos
  already in memory;
* `command`: `wsss_mmseg.predict.run_predict` end to end on a folder of crop x crop JPEGs
  (decode on a thread ahead of the model, forward, label PNG written per image).

The model is the recipe's network (`--config`, default the tiny CPU config; the reference:
`src/wsss_mmseg/configs/deeplabv2_r101_voc_pseudo.py`) with random weights saved as a plain
checkpoint (speed does not depend on weight values; nothing is downloaded). Photos: `skimage.data`
resized to the crop. The first batch of each run is a warm-up and not timed.

Usage: python -m benchmarks.predict_speed [--config PATH] [--device cpu|cuda] [--batches 1,16]
       [--images 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.common import json_option, timed, write_json
from wsss.failures import FailureReport
from wsss.inference.inputs import ImageInput
from wsss.inference.outputs import OutputFolder
from wsss.inference.trained_model import TrainedModel
from wsss.io.records import ModelRecord
from wsss_mmseg import CONFIG_DIR
from wsss_mmseg.inference import load_segmenter, predict_batch
from wsss_mmseg.predict import PredictOptions, run_predict

NUM_CLASSES = 21  # VOC: background + 20


def recipe_crop(config: Path) -> int:
    from mmengine.config import Config

    return int(Config.fromfile(str(config)).crop_size[0])


def random_model(config: Path, folder: Path) -> TrainedModel:
    """The recipe's network with its random initialisation, saved as `wsss predict` finds a trained one."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(config))
    init_default_scope("mmseg")
    cfg.model.decode_head.num_classes = NUM_CLASSES
    network = MODELS.build(cfg.model)
    checkpoint = folder / "model.pth"
    torch.save({"state_dict": network.state_dict(), "meta": {}}, checkpoint)
    record = ModelRecord(
        checkpoint=str(checkpoint),
        trained_iterations=0,
        num_images=0,
        class_names=[f"c{i}" for i in range(NUM_CLASSES)],
        input_manifest_sha256="",
        pseudo_params=None,
        pseudo_flow_run_id=None,
        params={"config": str(config)},
        flow_run_id=None,
    )
    record.write(folder / "model.json")
    return TrainedModel.at(checkpoint, folder / "model.json")


def photos(size: int, count: int) -> list[np.ndarray]:
    from skimage import data

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    return [np.asarray(Image.fromarray(sources[i % len(sources)]).convert("RGB").resize((size, size), Image.BICUBIC)) for i in range(count)]


def network_speed(model: TrainedModel, images: list[np.ndarray], batch: int, device: str) -> dict[str, float]:
    network = load_segmenter(model.config, model.checkpoint, num_classes=NUM_CLASSES, device=device)
    predict_batch(network, images[:batch])  # warm-up
    seconds = [
        timed(lambda start=start: predict_batch(network, images[start : start + batch]))[0] for start in range(0, len(images) - batch + 1, batch)
    ]
    per_batch = statistics.median(seconds)
    return {"batch": batch, "batches_timed": len(seconds), "seconds_per_batch": round(per_batch, 4), "images_per_s": round(batch / per_batch, 2)}


def command_speed(model: TrainedModel, images: list[np.ndarray], batch: int, device: str, folder: Path) -> dict[str, float]:
    inputs = []
    for index, rgb in enumerate(images):
        path = folder / "photos" / f"p{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(path, quality=90)
        inputs.append(ImageInput(path.stem, path))
    options = PredictOptions(batch_size=batch, device=device)
    run_predict(model, inputs[:batch], OutputFolder(folder / "warmup", "predict"), options, FailureReport("predict"))
    summary = run_predict(model, inputs, OutputFolder(folder / f"out-{batch}", "predict"), options, FailureReport("predict"))
    return {
        "batch": batch,
        "images": summary["written"],
        "seconds": summary["seconds"],
        "images_per_s": round(summary["written"] / summary["seconds"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(CONFIG_DIR / "deeplabv2_tiny_cpu.py"), help="the recipe (mmseg config)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", default="1,16", help="batch sizes (default: 1,16)")
    parser.add_argument("--images", type=int, default=64, help="photos per timed run (default: 64)")
    json_option(parser)
    args = parser.parse_args(argv)
    config, batches = Path(args.config), [int(b) for b in args.batches.split(",")]
    crop = recipe_crop(config)
    load = os.getloadavg()
    figures: dict[str, Any] = {
        "config": str(config),
        "crop": crop,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load],
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
        "network": [],
        "command": [],
    }
    images = photos(crop, args.images)
    with tempfile.TemporaryDirectory() as scratch:
        model = random_model(config, Path(scratch))
        for batch in batches:
            figures["network"].append(network_speed(model, images, batch, args.device))
            figures["command"].append(command_speed(model, images, batch, args.device, Path(scratch)))
    figures["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(
        f"wsss predict speed: {config.name}, crop {crop}, {args.device} ({figures['gpu'] or figures['cpu']}, "
        f"{figures['torch_threads']} torch threads), load average {figures['load_average_before']} -> {figures['load_average_after']}"
    )
    for network, command in zip(figures["network"], figures["command"], strict=True):
        print(
            f"  batch {network['batch']:>3}: network {network['images_per_s']:8.2f} images/s "
            f"({network['seconds_per_batch']:.3f} s/batch, median of {network['batches_timed']}); "
            f"command (decode + predict + PNG) {command['images_per_s']:8.2f} images/s over {command['images']} images"
        )
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
