"""One-call GPU check (issue 14 §3): prints one table of the figures that need an accelerator.

1. CAM+CAA images/s, fp16, batch 1/16/32/64 by size bucket (`CamSettings.batch_size`), on
   500x375 images and on a VOC-like mix of sizes (1-3 tags), from network-ready inputs to numpy
   results; and the literal reference procedure (`tests/reference_clip_es.py`, one image at a
   time, fp16 autocast) on the same GPU. The ratio is the figure to report.
2. fp16 vs fp32 on the same images: max-abs difference of the refined maps, and pixel agreement
   of the pseudo masks (stage path: float16 maps, dense CRF when pydensecrf is there).
3. The cams + refine stages end to end (decode, model, CAA, HDF5 writes): `device_check_stages`.
4. DeepLabV2-R101 recipe (crop 321, batch 10, CGL), 50 iterations through
   `benchmarks/deeplabv2_train_speed.py`: iterations/s and peak CUDA memory.

Weights: nothing can be downloaded on the GPU machine, so by default a random ViT-B/16
(QuickGELU) with its weights rounded to fp16 (as OpenAI's files are) and its query/key
projections scaled by `--sharpen` (3), so that attention is peaked as in trained CLIP
(`tests/conftest.py::sharpen_attention`). Speed does not depend on weight values; the fp16-vs-fp32
figures do: the tests' factor 8 gives last-block attention logits of ~150-180, which fp16
attention cannot resolve (refined maps then differ by ~0.5), factor 3 gives ~20-25. The table
prints the logit range next to the figure; `--clip-checkpoint` runs the check with real weights.

Without CUDA the same script runs a CPU profile with tiny sizes (so it is known to work): fp32 in
part 1 (fp16 matmuls are slow on CPU), fp16 vs fp32 in part 2, 2 training iterations; the targets
are GPU targets and are not judged there. Figures go to `--json` and to `$OUT` if set.
Run it through `benchmarks/device_check.sh`, which installs missing wheels from `.whl/`.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "benchmarks", ROOT, ROOT / "src"):
    sys.path.insert(0, str(path))

from device_check_stages import ShardPool, cams_then_refine, stage_images  # noqa: E402
from device_check_table import TARGET_MAX_ABS, format_table  # noqa: E402
from voc_like import TaggedImage, voc_like_images, write_jpegs  # noqa: E402
from wsss.cam import CaaSettings, CamSettings, ClipEsCamExtractor, PreparedImage, box_mask  # noqa: E402
from wsss.cam.extractor import size_bucket  # noqa: E402
from wsss.cam.last_block import forward_last_block  # noqa: E402
from wsss.clip import ClipSource, LoadedClip, TowerState, cast_for_inference, load_clip  # noqa: E402
from wsss.pseudo import PseudoSettings, pseudo_label  # noqa: E402
from wsss.io.settings import StoreSettings  # noqa: E402
from wsss.scaleout import RunnerSettings  # noqa: E402
from wsss.text import REFERENCE_TEMPLATE, voc_vocabulary  # noqa: E402



@dataclass(frozen=True)
class Profile:
    """Sizes of one run: the GPU check, or the CPU fallback that only proves the script works."""

    name: str
    scale: float  # image sizes relative to VOC's
    voc_images: int
    mix_images: int
    batch_sizes: tuple[int, ...]
    reference_images: int
    compare_images: int
    stage_images: int
    stage_batch: int
    train_args: tuple[str, ...]
    budget_s: float  # no part starts after this; part 3 stops its cams loop at 3/4 of it
    train_timeout_s: float  # part 4, cut further so that the run ends by budget_s + 120 s
    throughput_precision: str  # part 1
    decode_workers: int  # part 3's tuned variants (runner.decode_workers)
    refine_processes: int  # part 3's parallel refine (runner.kind: dask, runner.workers)
    cams_processes: int  # part 3's parallel cams: processes sharing the GPU (runner.kind: dask)


GPU = Profile("gpu", 1.0, 128, 256, (1, 16, 32, 64), 32, 48, 500, 32,
              ("--iters", "45", "--warmup", "5", "--batch", "10", "--crop", "321", "--images", "40", "--workers", "8"),
              420, 240, "fp16", 6, 8, 4)
CPU = Profile("cpu", 0.3, 2, 3, (1, 2), 2, 2, 4, 2,
              ("--iters", "1", "--warmup", "1", "--batch", "2", "--crop", "129", "--images", "4", "--workers", "0"),
              1800, 900, "fp32", 2, 2, 2)


def sharpen_attention(model: torch.nn.Module, factor: float = 8.0) -> None:
    """Peaked attention, as trained CLIP has (same as `tests/conftest.py::sharpen_attention`)."""
    with torch.no_grad():
        for block in model.visual.transformer.resblocks:
            block.attn.in_proj_weight[: 2 * block.attn.embed_dim] *= factor


def build_clips(device: str, checkpoint: Path | None, sharpen: float) -> tuple[LoadedClip, LoadedClip]:
    """The same weights in fp32 and in fp16 (`cast_for_inference`, what `clip.precision: fp16` does)."""
    if checkpoint is not None:
        clip32 = load_clip(ClipSource(checkpoint=checkpoint), device, "fp32")
    else:
        torch.manual_seed(0)
        model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
        sharpen_attention(model, sharpen)
        with torch.no_grad():  # OpenAI's released weights are fp16 values
            for parameter in model.parameters():
                parameter.copy_(parameter.half().float())
        model = cast_for_inference(model.eval().requires_grad_(False).to(device), torch.float32)
        weights = f"random-init(seed=0, q/k x{sharpen:g}, fp16-rounded)"
        clip32 = LoadedClip(model, open_clip.get_tokenizer("ViT-B-16"), "ViT-B-16-quickgelu", weights)
    clip16 = copy.copy(clip32)
    clip16.model = cast_for_inference(copy.deepcopy(clip32.model), torch.float16)
    return clip32, clip16


@dataclass(frozen=True)
class StageExtractor:
    """Builds part 3's extractor in a worker process (picklable): the same weights as the parent's."""

    device: str
    checkpoint: Path | None
    sharpen: float
    precision: str
    batch_size: int

    def __call__(self) -> ClipEsCamExtractor:
        clip32, clip16 = build_clips(self.device, self.checkpoint, self.sharpen)
        return ClipEsCamExtractor(clip16 if self.precision == "fp16" else clip32, voc_vocabulary(), CamSettings(batch_size=self.batch_size))


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function: Callable[[], object]) -> float:
    synchronize()
    started = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - started


def peak_cuda_mib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def one_batch_per_bucket(prepared: list, batch_size: int) -> list:
    """Warm-up items: the first `batch_size` images of every size bucket (each shape runs once)."""
    seen: Counter = Counter()
    chosen = []
    for item in prepared:
        key = size_bucket(item[0])
        if seen[key] < batch_size:
            seen[key] += 1
            chosen.append(item)
    return chosen


def cam_caa_throughput(clip16: LoadedClip, clip32: LoadedClip, sets: dict[str, list[TaggedImage]], profile: Profile) -> dict[str, Any]:
    """Part 1: images/s per batch size on each image set, CAM-only share, and the reference loop."""
    from tests.reference_clip_es import reference_cams, reference_text

    vocabulary = voc_vocabulary()
    clip = clip16 if profile.throughput_precision == "fp16" else clip32
    report: dict[str, Any] = {"precision": profile.throughput_precision, "sets": {}}
    for name, images in sets.items():
        preparer = ClipEsCamExtractor(clip, vocabulary, CamSettings())
        started = time.perf_counter()
        prepared = [(preparer.prepare(item.image), item.class_ids) for item in images]
        prepare_ms = 1000 * (time.perf_counter() - started) / len(images)
        rows: dict[str, Any] = {}
        for batch_size in profile.batch_sizes:
            extractor = ClipEsCamExtractor(clip, vocabulary, CamSettings(batch_size=batch_size))
            extractor.extract_batch(one_batch_per_bucket(prepared, batch_size))
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            seconds = timed(lambda: extractor.extract_batch(prepared))
            rows[str(batch_size)] = {"images_per_s": round(len(prepared) / seconds, 1), "peak_cuda_mib": peak_cuda_mib()}
            print(f"  part 1 {name} batch {batch_size}: {rows[str(batch_size)]}", flush=True)
        largest = profile.batch_sizes[-1]
        cam_only = ClipEsCamExtractor(clip, vocabulary, CamSettings(batch_size=largest))
        cam_only_seconds = timed(lambda: cam_only.extract_batch(prepared, refine=False))
        report["sets"][name] = {
            "images": len(images),
            "size_buckets": len({size_bucket(p) for p, _ in prepared}),
            "tags_per_image": round(float(np.mean([len(i.class_ids) for i in images])), 2),
            "prepare_ms_per_image_one_thread": round(prepare_ms, 2),
            "batches": rows,
            "cam_only": {"batch": largest, "images_per_s": round(len(prepared) / cam_only_seconds, 1)},
        }

    model, tokenizer = clip32.model, clip32.tokenizer
    class_text = reference_text(model, tokenizer, [REFERENCE_TEMPLATE.format(n) for n in vocabulary.prompt_names])
    background = reference_text(model, tokenizer, [REFERENCE_TEMPLATE.format(w) for w in vocabulary.background_words])
    cuda = torch.cuda.is_available()
    images = sets["voc_500x375"][: profile.reference_images]

    def reference_loop(items: list[TaggedImage]) -> None:
        with torch.autocast("cuda", dtype=torch.float16) if cuda else nullcontext():
            for item in items:
                reference_cams(model, item.image, class_text[list(item.class_ids)], background)

    reference_loop(images[:2])
    seconds = timed(lambda: reference_loop(images))
    reference = round(len(images) / seconds, 2)
    best = max(row["images_per_s"] for row in report["sets"]["voc_500x375"]["batches"].values())
    report["reference"] = {
        "procedure": "tests/reference_clip_es.py::reference_cams, one image at a time",
        "precision": "fp16 autocast" if cuda else "fp32",
        "images": len(images),
        "images_per_s": reference,
    }
    report["speedup_best_batch_vs_reference"] = round(best / reference, 2)
    return report


def attention_logit_max(extractor: ClipEsCamExtractor, prepared: PreparedImage) -> float:
    """max |q.k| / sqrt(d) of the last block on one image: how far fp16 attention is stretched."""
    tower = extractor.tower
    with torch.no_grad():
        pixels = prepared.pixels[None].to(tower.device)
        state = tower.run_blocks(TowerState(tower.embed(pixels), None, 0), 0, tower.num_blocks - 1, tower.num_blocks)
        cache = forward_last_block(tower.blocks[-1], state.tokens, tower.visual.ln_post, tower.visual.proj)
        logits = cache.q.float() @ cache.k.float().transpose(-1, -2) / cache.q.shape[-1] ** 0.5
    return round(float(logits.abs().max()), 2)


def pseudo_labels(job: tuple[np.ndarray, np.ndarray, np.ndarray, PseudoSettings, bool]) -> tuple[np.ndarray, np.ndarray]:
    """Thresholded and raw labels of one image, as the pseudo stage computes them from stored maps."""
    rgb, cams, class_ids, settings, use_crf = job
    label = pseudo_label(rgb, cams, class_ids, replace(settings, crf=use_crf))
    return label.labels, label.raw_labels


def fp16_vs_fp32(clip16: LoadedClip, clip32: LoadedClip, images: list[TaggedImage], batch_size: int, use_crf: bool) -> dict[str, Any]:
    """Part 2: the same images through both precisions; map differences and pseudo-mask agreement."""
    vocabulary = voc_vocabulary()
    ours32 = ClipEsCamExtractor(clip32, vocabulary, CamSettings(batch_size=batch_size))
    ours16 = ClipEsCamExtractor(clip16, vocabulary, CamSettings(batch_size=batch_size))
    prepared = [(ours32.prepare(item.image), item.class_ids) for item in images]
    results32, results16 = ours32.extract_batch(prepared), ours16.extract_batch(prepared)
    report: dict[str, Any] = {"images": len(images), "last_block_attention_logit_max": attention_logit_max(ours32, prepared[0][0])}
    for name in ("refined", "gradcam", "attention"):
        differences = [np.abs(getattr(a, name) - getattr(b, name)) for a, b in zip(results32, results16)]
        report[f"{name}_max_abs"] = float(max(d.max() for d in differences))
        report[f"{name}_mean_abs"] = float(np.mean([d.mean() for d in differences]))
    # A CAM value crossing the box threshold moves a whole box edge: where that happens the refined
    # maps differ by much more than the arithmetic does; count those images apart.
    threshold = ours32.caa.box_threshold
    flipped, steady = 0, [0.0]
    for a, b in zip(results32, results16):
        if all(np.array_equal(box_mask(x, threshold), box_mask(y, threshold)) for x, y in zip(a.gradcam, b.gradcam)):
            steady.append(float(np.abs(a.refined - b.refined).max()))
        else:
            flipped += 1
    report["images_with_different_box_masks"] = flipped
    report["refined_max_abs_where_boxes_agree"] = max(steady)
    over = sum(int((np.abs(a.refined - b.refined) > TARGET_MAX_ABS).sum()) for a, b in zip(results32, results16))
    report["refined_pixel_fraction_over_target"] = over / sum(a.refined.size for a in results32)
    settings = PseudoSettings()
    jobs = [
        (np.asarray(item.image), result.refined.astype(np.float16), result.class_ids, settings, use_crf)
        for results in (results32, results16)
        for item, result in zip(images, results)
    ]
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers > 1:  # fork: the children only run numpy and the CRF, never CUDA
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            labels = list(pool.map(pseudo_labels, jobs))
    else:
        labels = [pseudo_labels(job) for job in jobs]
    half = len(images)
    pixels = sum(l.size for l, _ in labels[:half])
    report["pseudo_agreement"] = sum(int((a == b).sum()) for (a, _), (b, _) in zip(labels[:half], labels[half:])) / pixels
    report["raw_label_agreement"] = sum(int((a == b).sum()) for (_, a), (_, b) in zip(labels[:half], labels[half:])) / pixels
    report["crf"] = use_crf
    report["pseudo_path"] = (
        "float16 refined maps -> " + ("dense CRF (pydensecrf)" if use_crf else "NO CRF (pydensecrf missing)")
        + f" -> labels; confidence threshold {settings.confidence_threshold}"
    )
    return report


def deeplab_training(profile: Profile, timeout: float) -> dict[str, Any]:
    """Part 4: `benchmarks/deeplabv2_train_speed.py` in a child process (the `train` stage's path)."""
    with tempfile.TemporaryDirectory(prefix="device-check-train-") as temp:
        out = Path(temp) / "train.json"
        command = [sys.executable, str(ROOT / "benchmarks" / "deeplabv2_train_speed.py"), *profile.train_args, "--json", str(out)]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if completed.returncode != 0:
            raise RuntimeError(f"exit {completed.returncode}: {completed.stderr[-3000:]}")
        report = json.loads(out.read_text())
    report["args"] = " ".join(profile.train_args)
    return report


def stages_end_to_end(clip: LoadedClip, images: list[TaggedImage], profile: Profile, deadline: float,
                      make_extractor: StageExtractor) -> dict[str, Any]:
    """Part 3: JPEGs on disk through the cams and refine stages (`device_check_stages`): the stage
    defaults, without the I/O overlap, and two settings for a GPU machine (more decode threads with
    CAA on the GPU; refine shards on worker processes; both stages' shards on worker processes)."""
    vocabulary = voc_vocabulary()
    with tempfile.TemporaryDirectory(prefix="device-check-stages-") as temp:
        root = Path(temp) / "images"
        paths = write_jpegs(images, root)
        records = stage_images(root, paths, {i.image_id: i.class_ids for i in images}, vocabulary.class_names)
        extractor = ClipEsCamExtractor(clip, vocabulary, CamSettings(batch_size=profile.stage_batch))
        runner = RunnerSettings()
        report = cams_then_refine(extractor, records, root, Path(temp) / "stores", deadline=deadline,
                                  overlap=runner.overlap_io, decode_workers=runner.decode_workers)
        records = records[: report["images"]]
        fields = ("images", "images_per_s", "cams_images_per_s", "refine_images_per_s", "decode_workers", "caa_device", "refine_processes",
                  "images_per_shard", "cams_seconds", "cams_breakdown_s", "cams_processes")

        def variant(name: str, **settings: Any) -> None:
            figures = cams_then_refine(extractor, records, root, Path(temp) / name, **settings)
            report[name] = {k: figures[k] for k in fields}
            print(f"  part 3 {name}: {report[name]}", flush=True)

        variant("without_overlap", overlap=False)
        variant("caa_on_device", decode_workers=profile.decode_workers, caa=CaaSettings(device=str(extractor.device)))
        # Shards small enough for every process to get two (the stage's are `store.images_per_shard`, 500).
        per_shard = max(1, len(records) // (2 * profile.refine_processes))
        variant("cams_uncompressed", decode_workers=profile.decode_workers, store=StoreSettings(compression="none"))
        small_shards = StoreSettings(images_per_shard=per_shard)
        with ShardPool(profile.refine_processes) as pool:
            variant("refine_processes", decode_workers=profile.decode_workers, pool=pool, store=small_shards)
            with ShardPool(profile.cams_processes, make_extractor) as cams_pool:
                variant("both_processes", decode_workers=max(1, profile.decode_workers // 2), pool=pool, cams_pool=cams_pool,
                        store=small_shards)
        return report


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
        "packages": {name: version(name) for name in ("open_clip_torch", "mmsegmentation", "mmengine", "mmcv-lite", "pydensecrf2", "hdf5plugin", "h5py", "numpy")},
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("auto", "gpu", "cpu"), default="auto", help="auto: gpu when CUDA is present")
    parser.add_argument("--budget-s", type=float, help="stop starting parts after this many seconds")
    parser.add_argument("--clip-checkpoint", type=Path, help="real CLIP weights (OpenAI/open_clip file) instead of random ones")
    parser.add_argument("--sharpen", type=float, default=3.0, help="query/key scale of the random weights (see above)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--parts", default="1234", help="which parts to run, e.g. 3 (default: all)")
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
    if "1" in args.parts:
        run_part(figures, "1_cam_caa", deadline, lambda: cam_caa_throughput(clip16, clip32, sets, profile))
    compare = voc_like_images(profile.compare_images, mix=True, scale=profile.scale, seed=3)
    if "2" in args.parts:
        run_part(figures, "2_fp16_vs_fp32", deadline, lambda: fp16_vs_fp32(clip16, clip32, compare, profile.batch_sizes[-1], crf_available()))
    stage_set = voc_like_images(profile.stage_images, mix=True, scale=profile.scale, seed=4)
    stage_deadline = started + 0.75 * (deadline - started)
    stage_clip = clip16 if profile.throughput_precision == "fp16" else clip32
    if "3" in args.parts:
        factory = StageExtractor(device, args.clip_checkpoint, args.sharpen, profile.throughput_precision, profile.stage_batch)
        run_part(figures, "3_stages", deadline, lambda: stages_end_to_end(stage_clip, stage_set, profile, stage_deadline, factory))
    hard_end = deadline + 120.0  # the device runs one command for at most 600 s, wheel install included
    if "4" in args.parts:
        run_part(figures, "4_deeplabv2", deadline,
                 lambda: deeplab_training(profile, max(30.0, min(profile.train_timeout_s, hard_end - time.perf_counter()))))
    figures["seconds_total"] = round(time.perf_counter() - started, 1)
    table = format_table(figures, on_gpu and profile.name == "gpu")
    print("\n" + table, flush=True)
    text = json.dumps(figures, indent=1, default=str)
    for target in [args.json, Path(os.environ["OUT"]) / "device_check.json" if os.environ.get("OUT") else None]:
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text + "\n")
            target.with_suffix(".txt").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
