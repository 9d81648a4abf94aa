"""The pipeline's own per-image cost around the model, fed with PRECOMPUTED model outputs.

*** The model does not run while timing. *** Grad-CAM maps and attention are computed once up
front (random-init ViT-B/16; "peaked": query/key scaled like trained CLIP, see
`wsss.reference_clip_es.sharpen_attention`, the realistic case; "uniform": plain random init, whose
near-uniform attention compresses unrealistically) and then fed to the stages' per-image path.
The figures are what the cams and refine stages cost per image outside the network: the ceiling
the pipeline puts on any accelerator, however fast.

Per 500x375 image (24x32 tokens, K = 1 or 2 tags), CPU ms (process time, one torch thread):
  cams:   decode (JPEG -> RGB), resize (PIL bicubic), normalise, HDF5 write (float16 cast +
          codec + fletcher32 + attributes + the shard's final write, amortised), per codec;
  refine: read (gradcam + attention, checksums), CAA (Sinkhorn, T(T(x)), box masks, resize to
          full size), HDF5 write of the refined maps, per codec;
stored bytes per image of both stores per codec; the images/s ceiling of the cams loop,
sequential vs prefetch thread + background writer, with the model as a 0 ms or 5 ms GIL-free
wait (5 ms ~ a GPU at 200 images/s); and, through the stages' engine, how the host work splits
between the stage process and its image processes (`benchmarks/pipeline_io_layouts.py`). Codecs
and layouts are timed round-robin so machine noise hits all alike. The refine read is the
stage's (`ShardReader`: the shard job's CAM shard opened once); "read, per-call open" is the old one.

Usage: python -m benchmarks.pipeline_io_cost [--images 8] [--rounds 5] [--layout-rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from benchmarks.common import json_option, timed, write_json
from benchmarks.pipeline_io_layouts import measure_layouts, report_layouts
from wsss.cam import CaaSettings, CamSettings, ClipEsCamExtractor, refine_image
from wsss.clip import LoadedClip
from wsss.imaging import CLIP_MEAN, CLIP_STD, clip_input_size, clip_pixels, load_rgb
from wsss.io import CODECS, CamStore, ShardWriter, shard_path
from wsss.io.cam_store import ShardReader
from wsss.io.pipelining import BackgroundShardWriter, prefetch
from wsss.io.shard_writer import storage_array
from wsss.reference_clip_es import sharpen_attention
from wsss.text import voc_vocabulary

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
TAGS = ([14], [14, 8])
SIZE = (375, 500)  # (H, W) of a VOC-like photo
CAM_DTYPES = {"gradcam": np.float32, "attention": np.float16}
SHARD_COPIES = 3


def write_photos(directory: Path, count: int) -> list[Path]:
    """`count` distinct 500x375 JPEGs: crops (and mirror images) of skimage photos."""
    from skimage import data

    paths = []
    for index in range(count):
        pixels = getattr(data, PHOTOS[index % len(PHOTOS)])()[..., :3]
        offset = 6 * (index // len(PHOTOS))
        image = Image.fromarray(np.ascontiguousarray(pixels[offset:, offset:])).resize((SIZE[1], SIZE[0]), Image.BICUBIC)
        if (index // len(PHOTOS)) % 2:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        paths.append(directory / f"photo_{index:03d}.jpg")
        image.save(paths[-1], quality=90)
    return paths


def model_outputs(paths: list[Path], peaked: bool) -> list[dict[str, Any]]:
    """Grad-CAM + attention of each photo, computed once (not timed)."""
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None).eval().requires_grad_(False)
    if peaked:
        sharpen_attention(model)
    clip = LoadedClip(model, open_clip.get_tokenizer("ViT-B-16"), "ViT-B-16", "random-init")
    extractor = ClipEsCamExtractor(clip, voc_vocabulary(), CamSettings())
    outputs = []
    for index, path in enumerate(paths):
        result = extractor.extract(load_rgb(path), TAGS[index % 2], refine=False)
        outputs.append({
            "gradcam": result.gradcam, "attention": result.attention,
            "attrs": {"class_ids": result.class_ids, "original_size": list(result.original_size), "grid": list(result.grid),
                      "tag_probabilities": result.tag_probabilities, "tags": ["person", "dog"][: len(result.class_ids)],
                      "source_path": path.name, "source_sha256": "0" * 64, "content_key": "1" * 64},
        })  # fmt: skip
    return outputs


def normalise(resized: Image.Image) -> torch.Tensor:
    """The second half of `clip_pixels` (after its resize), step for step."""
    planes = np.stack([np.asarray(band) for band in resized.split()])
    pixels = torch.from_numpy(planes).to(torch.float32).div_(255)
    return pixels.sub_(torch.tensor(CLIP_MEAN).view(3, 1, 1)).div_(torch.tensor(CLIP_STD).view(3, 1, 1))


def cpu_ms(function: Callable[[], Any], repeat: int = 1) -> float:
    started = time.process_time()
    for _ in range(repeat):
        function()
    return (time.process_time() - started) * 1e3 / repeat


def measure_steps(paths: list[Path], outputs: list[dict[str, Any]], codecs: tuple[str, ...], rounds: int, work: Path) -> dict[str, Any]:
    """Median CPU ms per image of every step, and stored bytes per image, per codec.

    Each shard holds every output SHARD_COPIES times under distinct ids, so that the shard's
    fixed costs (file image, write, fsync) are shared as in a real shard of hundreds of images.
    """
    n = len(outputs) * SHARD_COPIES
    outputs = [outputs[index % len(outputs)] for index in range(n)]
    size = clip_input_size(*SIZE, 16, CamSettings().max_side)
    samples: dict[str, list[float]] = {}

    def record(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    stored: dict[str, dict[str, float]] = {}
    for round_index in range(rounds + 1):  # round 0 warms caches and is dropped
        for path in paths:
            rgb = load_rgb(path)
            resized = rgb.resize((size[1], size[0]), Image.BICUBIC)
            steps = {
                "cams: decode": cpu_ms(partial(load_rgb, path), 3),
                "cams: resize": cpu_ms(partial(rgb.resize, (size[1], size[0]), Image.BICUBIC), 3),
                "cams: normalise": cpu_ms(partial(normalise, resized), 3),
                "cams: prepare (resize + normalise, clip_pixels)": cpu_ms(partial(clip_pixels, rgb, size), 3),
            }
            if round_index:
                for key, value in steps.items():
                    record(key, value)
        for output in outputs[:2]:
            attention = output["attention"]
            numpy_cast = cpu_ms(partial(attention.astype, np.float16), 3)
            store_cast = cpu_ms(partial(storage_array, "bench", "attention", attention, np.float16), 3)
            if round_index:
                record("attention float32->float16: numpy astype (the old store's cast)", numpy_cast)
                record("attention float32->float16: the store's cast (torch, same bits)", store_cast)
        for codec in codecs:
            cams_dir, refined_dir = work / f"cams-{codec}", work / f"refined-{codec}"
            started = time.process_time()
            with ShardWriter(shard_path(cams_dir, 0), {"stage": "cams"}, compression=codec) as writer:
                for index, output in enumerate(outputs):
                    writer.add(f"img{index:04d}", {"gradcam": output["gradcam"], "attention": output["attention"]}, output["attrs"], CAM_DTYPES)
            cams_write = (time.process_time() - started) * 1e3 / n
            store = CamStore(cams_dir)
            read, caa, write, read_per_call = 0.0, 0.0, 0.0, 0.0
            refined_maps = []
            for index in range(n):
                started = time.process_time()
                store.read(f"img{index:04d}", ["gradcam", "attention"])
                read_per_call += time.process_time() - started
            reader = ShardReader(shard_path(cams_dir, 0))
            for index in range(n):
                started = time.process_time()
                cam = reader.read(f"img{index:04d}", ["gradcam", "attention"])
                read += time.process_time() - started
                started = time.process_time()
                height, width = (int(v) for v in cam.attrs["original_size"])
                refined = refine_image(
                    torch.from_numpy(cam.arrays["gradcam"]), torch.from_numpy(cam.arrays["attention"]), (height, width), CaaSettings()
                )
                refined_maps.append(refined.numpy())
                caa += time.process_time() - started
            reader.close()
            started = time.process_time()
            with ShardWriter(shard_path(refined_dir, 0), {"stage": "refine"}, compression=codec) as writer:
                for index, maps in enumerate(refined_maps):
                    writer.add(f"img{index:04d}", {"refined": maps}, outputs[index]["attrs"])
            write = time.process_time() - started
            if round_index:
                record(f"cams: HDF5 write [{codec}]", cams_write)
                record(f"refine: read [{codec}]", read * 1e3 / n)
                record(f"refine: read, per-call open [{codec}]", read_per_call * 1e3 / n)
                record(f"refine: CAA [{codec}]", caa * 1e3 / n)
                record(f"refine: HDF5 write [{codec}]", write * 1e3 / n)
            stored[codec] = {
                "cams_bytes_per_image": shard_path(cams_dir, 0).stat().st_size / n,
                "refined_bytes_per_image": shard_path(refined_dir, 0).stat().st_size / n,
            }
    return {
        "cpu_ms": {key: round(statistics.median(values), 2) for key, values in samples.items()},
        "cpu_ms_min": {key: round(min(values), 2) for key, values in samples.items()},
        "stored": stored,
    }


def ceiling(paths: list[Path], outputs: list[dict[str, Any]], codec: str, model_ms: float, pipelined: bool, repeat: int, work: Path) -> float:
    """Images/s of the cams loop (decode, prepare, model wait, write) over `repeat` passes."""
    size = clip_input_size(*SIZE, 16, CamSettings().max_side)
    jobs = [(index, paths[index % len(paths)]) for index in range(repeat * len(paths))]

    def load(job: tuple[int, Path]) -> torch.Tensor:
        return clip_pixels(load_rgb(job[1]), size)

    target = shard_path(work / f"ceiling-{codec}-{model_ms}-{pipelined}", 0)

    def run() -> None:
        writer = ShardWriter(target, {"stage": "cams"}, compression=codec)
        sink = BackgroundShardWriter(writer, max_pending=8) if pipelined else writer
        with sink:
            loaded = prefetch(jobs, load, depth=4) if pipelined else ((job, load(job)) for job in jobs)
            for (index, _), _pixels in loaded:
                if model_ms:
                    time.sleep(model_ms / 1e3)  # a GPU forward + backward: the CPU thread waits without the GIL
                output = outputs[index % len(outputs)]
                sink.add(f"img{index:05d}", {"gradcam": output["gradcam"], "attention": output["attention"]}, output["attrs"], CAM_DTYPES)

    seconds, _ = timed(run)
    return len(jobs) / seconds


def gil_check(outputs: list[dict[str, Any]], work: Path) -> dict[str, float]:
    """Longest stall of a Python loop on the main thread while another thread writes a shard.

    If HDF5's compression held the GIL, the loop would stall for a whole write; the control is a
    call of similar length that does hold the GIL (sorting a list).
    """
    attention = np.concatenate([output["attention"] for output in outputs[:1]]).astype(np.float16)

    def write() -> None:  # one long H5Dwrite: a single chunk at Zstandard's slowest level
        with ShardWriter(shard_path(work / "gil", 0), {}, compression="zstd", compression_level=19) as writer:
            writer.add("big", {"attention": attention}, {})

    values = list(np.random.default_rng(0).random(1_000_000))

    def hold_gil() -> None:
        sorted(values)

    result = {}
    for label, function in (("HDF5 write (zstd 19, one chunk)", write), ("control: sorted() holding the GIL", hold_gil)):
        thread = threading.Thread(target=function)
        longest = 0.0
        started = last = time.perf_counter()
        thread.start()  # may itself stall: the new thread can take the GIL at once
        while thread.is_alive():
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        longest = max(longest, time.perf_counter() - last)
        result[f"{label}: call ms"] = round((time.perf_counter() - started) * 1e3, 1)
        result[f"{label}: longest main-thread stall ms"] = round(longest * 1e3, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ceiling-passes", type=int, default=6, help="passes over the images per ceiling run")
    parser.add_argument("--layout-rounds", type=int, default=3, help="rounds of the stage-process / image-processes comparison")
    parser.add_argument("--image-processes", type=int, default=2, help="image processes of that comparison")
    json_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    figures: dict[str, Any] = {
        "what": "pipeline's own per-image cost with PRECOMPUTED model outputs (the model does not run while timing)",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, load {os.getloadavg()[0]:.1f} at start",
        "torch_threads": 1,
        "image": f"{SIZE[1]}x{SIZE[0]} JPEG, K = 1 or 2 tags",
    }
    with tempfile.TemporaryDirectory(prefix="wsss-io-cost-") as temporary:
        work = Path(temporary)
        paths = write_photos(work, args.images)
        for kind in ("peaked", "uniform"):
            print(f"computing model outputs once ({kind} attention, not timed) ...", flush=True)
            outputs = model_outputs(paths, peaked=kind == "peaked")
            print(f"measuring per-image steps ({kind}) ...", flush=True)
            figures[kind] = measure_steps(paths, outputs, CODECS, args.rounds if kind == "peaked" else 1, work / kind)
            if kind == "peaked":
                rates = {}
                for model_ms in (0.0, 5.0):
                    for codec in ("gzip", "zstd"):
                        for pipelined in (False, True):
                            key = f"{codec}, model {model_ms:g} ms, {'prefetch + background writer' if pipelined else 'sequential'}"
                            rates[key] = round(ceiling(paths, outputs, codec, model_ms, pipelined, args.ceiling_passes, work / "ceiling"), 1)
                            print(f"  ceiling {key}: {rates[key]} images/s", flush=True)
                figures["ceiling_images_per_s"] = rates
                figures["gil_check"] = gil_check(outputs, work)
                print(f"  GIL check: {figures['gil_check']}", flush=True)
                print("measuring the stages' layouts (stage process vs image processes) ...", flush=True)
                figures["layouts"] = measure_layouts(paths, outputs, args.layout_rounds, work / "layouts", args.image_processes)
    figures["load_at_end"] = round(os.getloadavg()[0], 1)
    report(figures)
    write_json(args.json, figures)


def report(figures: dict[str, Any]) -> None:
    print(f"\n== {figures['what']} ==\n{figures['machine']}, {figures.get('load_at_end')} at the end; {figures['image']}")
    for kind in ("peaked", "uniform"):
        cpu, low, stored = figures[kind]["cpu_ms"], figures[kind]["cpu_ms_min"], figures[kind]["stored"]
        print(f"\n-- {kind} attention: CPU ms per image (median / min over rounds) --")
        for key, value in cpu.items():
            print(f"  {key:66s} {value:7.2f} / {low[key]:7.2f}")
        print("  codec        cams MB/img  refined MB/img  cams CPU ms (target <= 10)  refine CPU ms (target <= 25)")
        for codec, sizes in stored.items():
            totals = []
            for table in (cpu, low):
                cams_total = table["cams: decode"] + table["cams: prepare (resize + normalise, clip_pixels)"] + table[f"cams: HDF5 write [{codec}]"]
                refine_total = sum(table[f"refine: {step} [{codec}]"] for step in ("read", "CAA", "HDF5 write"))
                totals.append((cams_total, refine_total))
            figures[kind].setdefault("totals_ms", {})[codec] = {
                "cams_median": round(totals[0][0], 2),
                "cams_min": round(totals[1][0], 2),
                "refine_median": round(totals[0][1], 2),
                "refine_min": round(totals[1][1], 2),
            }
            print(
                f"  {codec:12s} {sizes['cams_bytes_per_image'] / 1e6:11.3f}  {sizes['refined_bytes_per_image'] / 1e6:14.3f}"
                f"  {totals[0][0]:12.2f} / {totals[1][0]:6.2f}  {totals[0][1]:15.2f} / {totals[1][1]:6.2f}"
            )
    print("\n-- cams loop ceiling (images/s, wall, model replaced by a wait) --")
    for key, value in figures.get("ceiling_images_per_s", {}).items():
        print(f"  {key:62s} {value:7.1f}")
    print("\n-- GIL: does the writer thread block the model loop? --")
    for key, value in figures.get("gil_check", {}).items():
        print(f"  {key:62s} {value:9.1f}")
    if "layouts" in figures:
        report_layouts(figures["layouts"])


if __name__ == "__main__":
    main()
