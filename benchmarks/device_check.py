"""One-call GPU check (issue 14 §3): prints one table of the figures that need an accelerator.

0. The stage defaults, the first rows (`benchmarks.device_check_defaults`): cams + refine end to
   end with the shipped params.yaml (only `clip.device: cuda`, `clip.precision: fp16` set), and
   CAM+CAA images/s of that default path against the reference's one-image loop on the same GPU.
1. CAM+CAA images/s, fp16, batch 1/16/32/64 by size bucket (`CamSettings.batch_size`), on
   500x375 images and on a VOC-like mix of sizes (1-3 tags), from network-ready inputs to numpy
   results; and the literal reference procedure (`wsss.reference_clip_es`, one image at a
   time, fp16 autocast) on the same GPU. The ratio is the figure to report.
2. fp16 vs fp32 on the same images: max-abs difference of the refined maps, and pixel agreement
   of the pseudo masks (stage path: float16 maps, dense CRF when pydensecrf is there).
3. The cams + refine stages end to end (decode, model, CAA, HDF5 writes): `benchmarks.device_check_stages`.
4. DeepLabV2-R101 recipe (crop 321, batch 10, CGL), 50 iterations through
   `benchmarks.deeplabv2_train_speed`: iterations/s and peak CUDA memory.

Weights: nothing can be downloaded on the GPU machine, so by default a random ViT-B/16
(QuickGELU) with its weights rounded to fp16 (as OpenAI's files are) and its query/key
projections scaled by `--sharpen` (3), so that attention is peaked as in trained CLIP
(`wsss.reference_clip_es.sharpen_attention`). Speed does not depend on weight values; the fp16-vs-fp32
figures do: the tests' factor 8 gives last-block attention logits of ~150-180, which fp16
attention cannot resolve (refined maps then differ by ~0.5), factor 3 gives ~20-25. The table
prints the logit range next to the figure; `--clip-checkpoint` runs the check with real weights.

Without CUDA the same script runs a CPU profile with tiny sizes (so it is known to work): fp32 in
part 1 (fp16 matmuls are slow on CPU), fp16 vs fp32 in part 2, 2 training iterations; the targets
are GPU targets and are not judged there. Figures go to `--json` and to `$OUT` if set.
Run it through `bash benchmarks/device_check.sh`, which installs missing wheels from `.whl/` and then
runs `python -m benchmarks.device_check`; the parts live in `benchmarks.device_check_parts`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import json_option, voc_like_images, write_json
from benchmarks.device_check_defaults import DefaultExtractor, default_path_vs_reference, default_stages_end_to_end, shipped_params
from benchmarks.device_check_parts import CPU, GPU, StageExtractor, build_clips, cam_caa_throughput, deeplab_training, fp16_vs_fp32, stages_end_to_end
from benchmarks.device_check_table import format_table

CPU_PROFILE_IMAGE_PROCESSES = 2


def environment() -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        "packages": {
            name: version(name)
            for name in ("open_clip_torch", "mmsegmentation", "mmengine", "mmcv-lite", "pydensecrf2", "hdf5plugin", "h5py", "numpy")
        },
    }


def crf_available() -> bool:
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def run_part(figures: dict[str, Any], key: str, deadline: float, function: Callable[[], dict[str, Any]]) -> None:
    """Run one part; its failure is recorded in the table instead of ending the check."""
    if time.perf_counter() > deadline:
        figures[key] = {"skipped": "time budget spent"}
        return
    started = time.perf_counter()
    print(f"part {key} ...", flush=True)
    try:
        figures[key] = function()
    except Exception:  # noqa: BLE001  a broken part must not hide the others' figures
        figures[key] = {"error": traceback.format_exc()}
        print(figures[key]["error"], flush=True)
    figures["seconds"][key] = round(time.perf_counter() - started, 1)


def stage_defaults(
    params: Any, clip: Any, clip32: Any, stage_set: list, voc_set: list, reference_images: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Part 0: (a) the stages end to end with the defaults, (b) the default path vs the reference loop."""
    with tempfile.TemporaryDirectory(prefix="device-check-defaults-") as temp:
        stages = default_stages_end_to_end(params, clip, stage_set, Path(temp), DefaultExtractor(params, args.clip_checkpoint, args.sharpen))
    print(f"  part 0 stages: {stages}", flush=True)
    return {"stages": stages, "cam_caa": default_path_vs_reference(params, clip, clip32, voc_set, reference_images)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("auto", "gpu", "cpu"), default="auto", help="auto: gpu when CUDA is present")
    parser.add_argument("--budget-s", type=float, help="stop starting parts after this many seconds")
    parser.add_argument("--clip-checkpoint", type=Path, help="real CLIP weights (OpenAI/open_clip file) instead of random ones")
    parser.add_argument("--sharpen", type=float, default=3.0, help="query/key scale of the random weights (see above)")
    json_option(parser)
    parser.add_argument("--parts", default="01234", help="which parts to run, e.g. 03 (default: all)")
    args = parser.parse_args()
    started = time.perf_counter()
    on_gpu = torch.cuda.is_available()
    profile = {"gpu": GPU, "cpu": CPU}[args.profile if args.profile != "auto" else ("gpu" if on_gpu else "cpu")]
    deadline = started + (args.budget_s or profile.budget_s)
    device = "cuda" if on_gpu else "cpu"
    clip32, clip16 = build_clips(device, args.clip_checkpoint, args.sharpen)
    figures: dict[str, Any] = {"profile": profile.name, "environment": environment(), "weights": clip32.weights, "seconds": {}}
    print(json.dumps(figures["environment"]), flush=True)
    sets = {
        "voc_500x375": voc_like_images(profile.voc_images, mix=False, scale=profile.scale, seed=1),
        "voc_mix": voc_like_images(profile.mix_images, mix=True, scale=profile.scale, seed=2),
    }
    stage_set = voc_like_images(profile.stage_images, mix=True, scale=profile.scale, seed=4)
    stage_clip = clip16 if profile.throughput_precision == "fp16" else clip32
    if "0" in args.parts:
        defaults = shipped_params(device, profile.throughput_precision)
        if not on_gpu:  # the CPU profile only shows that it works: it runs the GPU layout's image processes too
            defaults = defaults.replace(runner=replace(defaults.runner, image_processes=CPU_PROFILE_IMAGE_PROCESSES))
        run_part(
            figures,
            "0_defaults",
            deadline,
            lambda: stage_defaults(defaults, stage_clip, clip32, stage_set, sets["voc_500x375"], profile.reference_images, args),
        )
    if "1" in args.parts:
        run_part(figures, "1_cam_caa", deadline, lambda: cam_caa_throughput(clip16, clip32, sets, profile))
    compare = voc_like_images(profile.compare_images, mix=True, scale=profile.scale, seed=3)
    if "2" in args.parts:
        run_part(figures, "2_fp16_vs_fp32", deadline, lambda: fp16_vs_fp32(clip16, clip32, compare, profile.batch_sizes[-1], crf_available()))
    stage_deadline = started + 0.75 * (deadline - started)
    if "3" in args.parts:
        factory = StageExtractor(device, args.clip_checkpoint, args.sharpen, profile.throughput_precision, profile.stage_batch)
        run_part(figures, "3_stages", deadline, lambda: stages_end_to_end(stage_clip, stage_set, profile, stage_deadline, factory))
    hard_end = deadline + 120.0  # the device runs one command for at most 600 s, wheel install included
    if "4" in args.parts:
        run_part(
            figures,
            "4_deeplabv2",
            deadline,
            lambda: deeplab_training(profile, max(30.0, min(profile.train_timeout_s, hard_end - time.perf_counter()))),
        )
    figures["seconds_total"] = round(time.perf_counter() - started, 1)
    table = format_table(figures, on_gpu and profile.name == "gpu")
    print("\n" + table, flush=True)
    for target in [args.json, Path(os.environ["OUT"]) / "device_check.json" if os.environ.get("OUT") else None]:
        if target is not None:
            write_json(target, figures)
            target.with_suffix(".txt").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
