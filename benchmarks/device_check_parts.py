"""The four parts of the GPU check (`benchmarks.device_check` runs them and prints the table).

1. CAM+CAA images/s per batch size by size bucket, and the literal reference loop
   (`wsss.reference_clip_es`, one image at a time) on the same device;
2. fp16 vs fp32 on the same images: refined-map differences and pseudo-mask agreement;
3. the cams + refine stages end to end (`benchmarks.device_check_stages`);
4. the DeepLabV2-R101 recipe through `benchmarks.deeplabv2_train_speed` in a child process.

`Profile` holds the sizes of one run: the GPU check, or the CPU fallback that only shows it works.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch

from benchmarks.common import ROOT, TaggedImage, timed, write_jpegs
from benchmarks.device_check_stages import ShardPool, cams_then_refine, stage_images
from benchmarks.device_check_table import TARGET_MAX_ABS
from wsss.cam import CaaSettings, CamSettings, ClipEsCamExtractor, PreparedImage, box_mask
from wsss.cam.extractor import size_bucket
from wsss.cam.last_block import forward_last_block
from wsss.clip import ClipSource, LoadedClip, TowerState, cast_for_inference, load_clip
from wsss.io.settings import StoreSettings
from wsss.pseudo import PseudoSettings, pseudo_label
from wsss.reference_clip_es import reference_cams, reference_text, sharpen_attention
from wsss.scaleout import RunnerSettings
from wsss.text import REFERENCE_TEMPLATE, voc_vocabulary


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


GPU = Profile(
    "gpu",
    1.0,
    128,
    256,
    (1, 16, 32, 64),
    32,
    48,
    500,
    32,
    ("--iters", "45", "--warmup", "5", "--batch", "10", "--crop", "321", "--images", "40", "--workers", "8"),
    420,
    240,
    "fp16",
    6,
    8,
    4,
)
CPU = Profile(
    "cpu",
    0.3,
    2,
    3,
    (1, 2),
    2,
    2,
    4,
    2,
    ("--iters", "1", "--warmup", "1", "--batch", "2", "--crop", "129", "--images", "4", "--workers", "0"),
    1800,
    900,
    "fp32",
    2,
    2,
    2,
)


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
            seconds, _ = timed(partial(extractor.extract_batch, prepared))
            rows[str(batch_size)] = {"images_per_s": round(len(prepared) / seconds, 1), "peak_cuda_mib": peak_cuda_mib()}
            print(f"  part 1 {name} batch {batch_size}: {rows[str(batch_size)]}", flush=True)
        largest = profile.batch_sizes[-1]
        cam_only = ClipEsCamExtractor(clip, vocabulary, CamSettings(batch_size=largest))
        cam_only_seconds, _ = timed(partial(cam_only.extract_batch, prepared, refine=False))
        report["sets"][name] = {
            "images": len(images),
            "size_buckets": len({size_bucket(p) for p, _ in prepared}),
            "tags_per_image": round(float(np.mean([len(i.class_ids) for i in images])), 2),
            "prepare_ms_per_image_one_thread": round(prepare_ms, 2),
            "batches": rows,
            "cam_only": {"batch": largest, "images_per_s": round(len(prepared) / cam_only_seconds, 1)},
        }

    report["reference"] = reference_loop(clip32, sets["voc_500x375"][: profile.reference_images])
    best = max(row["images_per_s"] for row in report["sets"]["voc_500x375"]["batches"].values())
    report["speedup_best_batch_vs_reference"] = round(best / report["reference"]["images_per_s"], 2)
    return report


def reference_loop(clip32: LoadedClip, images: list[TaggedImage]) -> dict[str, Any]:
    """Images/s of the literal reference procedure, one image at a time, as the reference's own loop
    runs (batch of one; fp16 autocast on a GPU, where the reference's CLIP is fp16)."""
    vocabulary = voc_vocabulary()
    model, tokenizer = clip32.model, clip32.tokenizer
    class_text = reference_text(model, tokenizer, [REFERENCE_TEMPLATE.format(n) for n in vocabulary.prompt_names])
    background = reference_text(model, tokenizer, [REFERENCE_TEMPLATE.format(w) for w in vocabulary.background_words])
    cuda = torch.cuda.is_available()

    def loop(items: list[TaggedImage]) -> None:
        with torch.autocast("cuda", dtype=torch.float16) if cuda else nullcontext():
            for item in items:
                reference_cams(model, item.image, class_text[list(item.class_ids)], background)

    loop(images[:2])
    seconds, _ = timed(lambda: loop(images))
    return {
        "procedure": "wsss.reference_clip_es.reference_cams, one image at a time",
        "precision": "fp16 autocast" if cuda else "fp32",
        "images": len(images),
        "images_per_s": round(len(images) / seconds, 2),
    }


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
        differences = [np.abs(getattr(a, name) - getattr(b, name)) for a, b in zip(results32, results16, strict=True)]
        report[f"{name}_max_abs"] = float(max(d.max() for d in differences))
        report[f"{name}_mean_abs"] = float(np.mean([d.mean() for d in differences]))
    # A CAM value crossing the box threshold moves a whole box edge: where that happens the refined
    # maps differ by much more than the arithmetic does; count those images apart.
    threshold = ours32.caa.box_threshold
    flipped, steady = 0, [0.0]
    for a, b in zip(results32, results16, strict=True):
        if all(np.array_equal(box_mask(x, threshold), box_mask(y, threshold)) for x, y in zip(a.gradcam, b.gradcam, strict=True)):
            steady.append(float(np.abs(a.refined - b.refined).max()))
        else:
            flipped += 1
    report["images_with_different_box_masks"] = flipped
    report["refined_max_abs_where_boxes_agree"] = max(steady)
    over = sum(int((np.abs(a.refined - b.refined) > TARGET_MAX_ABS).sum()) for a, b in zip(results32, results16, strict=True))
    report["refined_pixel_fraction_over_target"] = over / sum(a.refined.size for a in results32)
    settings = PseudoSettings()
    jobs = [
        (np.asarray(item.image), result.refined.astype(np.float16), result.class_ids, settings, use_crf)
        for results in (results32, results16)
        for item, result in zip(images, results, strict=True)
    ]
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers > 1:  # fork: the children only run numpy and the CRF, never CUDA
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            labels = list(pool.map(pseudo_labels, jobs))
    else:
        labels = [pseudo_labels(job) for job in jobs]
    half = len(images)
    pixels = sum(label.size for label, _ in labels[:half])
    report["pseudo_agreement"] = sum(int((a == b).sum()) for (a, _), (b, _) in zip(labels[:half], labels[half:], strict=True)) / pixels
    report["raw_label_agreement"] = sum(int((a == b).sum()) for (_, a), (_, b) in zip(labels[:half], labels[half:], strict=True)) / pixels
    report["crf"] = use_crf
    report["pseudo_path"] = (
        "float16 refined maps -> "
        + ("dense CRF (pydensecrf)" if use_crf else "NO CRF (pydensecrf missing)")
        + f" -> labels; confidence threshold {settings.confidence_threshold}"
    )
    return report


def deeplab_training(profile: Profile, timeout: float) -> dict[str, Any]:
    """Part 4: `benchmarks.deeplabv2_train_speed` in a child process (the `train` stage's path)."""
    with tempfile.TemporaryDirectory(prefix="device-check-train-") as temp:
        out = Path(temp) / "train.json"
        command = [sys.executable, "-m", "benchmarks.deeplabv2_train_speed", *profile.train_args, "--json", str(out)]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"exit {completed.returncode}: {completed.stderr[-3000:]}")
        report = json.loads(out.read_text())
    report["args"] = " ".join(profile.train_args)
    return report


def stages_end_to_end(
    clip: LoadedClip, images: list[TaggedImage], profile: Profile, deadline: float, make_extractor: StageExtractor
) -> dict[str, Any]:
    """Part 3: JPEGs on disk through the cams and refine stages (`device_check_stages`): at the
    profile's batch with the other settings as shipped (part 0 has the true defaults), without the
    I/O overlap, and settings for a GPU machine (more decode threads with CAA on the GPU; refine
    shards on worker processes; both stages' shards on worker processes)."""
    vocabulary = voc_vocabulary()
    with tempfile.TemporaryDirectory(prefix="device-check-stages-") as temp:
        root = Path(temp) / "images"
        paths = write_jpegs(images, root)
        records = stage_images(root, paths, {i.image_id: i.class_ids for i in images}, vocabulary.class_names)
        extractor = ClipEsCamExtractor(clip, vocabulary, CamSettings(batch_size=profile.stage_batch))
        runner = RunnerSettings()
        report = cams_then_refine(
            extractor, records, root, Path(temp) / "stores", deadline=deadline, overlap=runner.overlap_io, decode_workers=runner.decode_workers
        )
        records = records[: report["images"]]
        fields = (
            "images",
            "images_per_s",
            "cams_images_per_s",
            "refine_images_per_s",
            "decode_workers",
            "caa_device",
            "refine_processes",
            "images_per_shard",
            "cams_seconds",
            "cams_breakdown_s",
            "cams_processes",
        )

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
                variant("both_processes", decode_workers=max(1, profile.decode_workers // 2), pool=pool, cams_pool=cams_pool, store=small_shards)
        return report
