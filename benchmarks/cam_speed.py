"""CAM + CAA cost relative to a bare forward of the same CLIP ViT-B/16, measured in one run.

Prints, per image size (VOC-like 500x375 and 513x513) and tag count K:
  * seconds/image of a bare no-grad forward (fused attention, final tokens + pooled feature);
  * seconds/image of CLIP-ES CAM extraction + CAA refinement to full resolution with the
    default settings (reference-exact attention, closed-form batched backward over all tags),
    and with one autograd backward per tag;
  * seconds/image of the literal reference procedure (`wsss.reference_clip_es`: one forward
    and backward of the last block per tag, explicit T @ T, cv2) for comparison;
  * their ratios, peak RSS, and the peak RSS of a 4000x3000 photo (child process).
On a CUDA machine it also reports fp16 images/s with batching by size bucket.

Timings are taken round-robin over all variants (min and median of --repeats rounds), so that
noise from other processes hits all of them alike; ratios use the same statistic.
Usage: python -m benchmarks.cam_speed [--repeats 5] [--threads 2] [--json out.json]
Weights are random (open_clip `pretrained=None`): speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from functools import partial

import open_clip
import torch
from PIL import Image

from benchmarks.common import ROOT, json_option, timed, write_json
from wsss.cam import CamSettings, ClipEsCamExtractor
from wsss.clip import LoadedClip, cast_for_inference
from wsss.reference_clip_es import reference_cams, reference_text
from wsss.text import REFERENCE_TEMPLATE, voc_vocabulary

SIZES = {"voc_500x375": (375, 500), "square_513x513": (513, 513)}
TAG_SETS = {1: [14], 2: [14, 8], 3: [14, 8, 4]}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def interleaved(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """(min, median) seconds of each function, timed round-robin so that machine noise is shared."""
    for function in functions.values():
        function()  # warm-up: allocator, caches, positional-embedding table
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            samples[name].append(timed(function)[0])
    return {name: (min(values), statistics.median(values)) for name, values in samples.items()}


def photo(size: tuple[int, int]) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((size[1], size[0]), Image.BICUBIC)


def build_clip(device: str) -> LoadedClip:
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None).eval().requires_grad_(False).to(device)
    return LoadedClip(model, open_clip.get_tokenizer("ViT-B-16"), "ViT-B-16", "random-init(seed=0)")


def cpu_report(repeats: int) -> dict[str, object]:
    clip = build_clip("cpu")
    vocabulary = voc_vocabulary()
    ours = ClipEsCamExtractor(clip, vocabulary, CamSettings())
    per_tag = ClipEsCamExtractor(clip, vocabulary, CamSettings(backward="autograd_per_tag"))
    prompts = [REFERENCE_TEMPLATE.format(w) for w in vocabulary.background_words]
    background = reference_text(clip.model, clip.tokenizer, prompts)
    report: dict[str, object] = {}
    for label, size in SIZES.items():
        image = photo(size)
        prepared = ours.prepare(image)
        pixels = prepared.pixels[None]

        def bare(pixels: torch.Tensor = pixels) -> None:
            with torch.no_grad():
                ours.tower.pool(ours.tower.forward_features(pixels))

        functions: dict[str, Callable[[], object]] = {"bare": bare}
        for k, tags in TAG_SETS.items():
            names = [REFERENCE_TEMPLATE.format(vocabulary.prompt_names[t]) for t in tags]
            text = reference_text(clip.model, clip.tokenizer, names)
            functions[f"K={k} ours"] = lambda tags=tags, prepared=prepared: ours.extract(prepared, tags)
            functions[f"K={k} ours, autograd per tag"] = lambda tags=tags, prepared=prepared: per_tag.extract(prepared, tags)
            functions[f"K={k} reference procedure"] = lambda text=text, image=image: reference_cams(clip.model, image, text, background)
        timings = interleaved(functions, repeats)
        bare_min, bare_median = timings.pop("bare")
        rows: dict[str, object] = {"bare_forward_s": {"min": round(bare_min, 4), "median": round(bare_median, 4)}}
        print(f"{label}: bare forward min {bare_min:.3f}s median {bare_median:.3f}s", flush=True)
        for name, (low, mid) in timings.items():
            rows[name] = {
                "min_s": round(low, 4),
                "median_s": round(mid, 4),
                "ratio_of_min": round(low / bare_min, 3),
                "ratio_of_median": round(mid / bare_median, 3),
            }
            print(f"  {name:34s} min {low:.3f}s ({low / bare_min:.3f}x)  median {mid:.3f}s ({mid / bare_median:.3f}x)", flush=True)
        report[label] = rows
    report["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return report


def large_photo_report() -> dict[str, object]:
    """Runs in a child process so that its peak RSS is its own."""
    clip = build_clip("cpu")
    extractor = ClipEsCamExtractor(clip, voc_vocabulary(), CamSettings())
    big = photo((3000, 4000))
    before = peak_rss_mib()
    seconds, result = timed(lambda: extractor.extract(big, [14, 8]))
    return {
        "image": "4000x3000",
        "network_input_grid": list(result.grid),
        "maps_shape": list(result.refined.shape),
        "seconds": round(seconds, 2),
        "peak_rss_mib_before": round(before, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "max_side_policy": "longer side scaled to CamSettings.max_side=1024 for the network; maps resized to 4000x3000",
    }


def gpu_report(batch_sizes: tuple[int, ...] = (1, 16, 32)) -> dict[str, object]:
    clip = build_clip("cuda")
    cast_for_inference(clip.model, torch.float16)
    report: dict[str, object] = {"device": torch.cuda.get_device_name()}
    for batch_size in batch_sizes:
        extractor = ClipEsCamExtractor(clip, voc_vocabulary(), CamSettings(batch_size=batch_size))
        prepared = extractor.prepare(photo((375, 500)))
        items = [(prepared, TAG_SETS[1 + i % 2]) for i in range(max(64, 2 * batch_size))]
        extractor.extract_batch(items[:batch_size])
        seconds, _ = timed(partial(extractor.extract_batch, items))
        report[f"batch_{batch_size}_images_per_s"] = round(len(items) / seconds, 1)
    report["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--large-only", action="store_true", help=argparse.SUPPRESS)
    json_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.large_only:
        print(json.dumps(large_photo_report()))
        return
    figures: dict[str, object] = {"torch": torch.__version__, "threads": args.threads, "cpu_fp32": cpu_report(args.repeats)}
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.cam_speed", "--large-only", "--threads", str(args.threads)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    figures["large_photo"] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"4000x3000 photo: {figures['large_photo']}")
    if torch.cuda.is_available():
        figures["gpu_fp16"] = gpu_report()
        print(f"GPU: {figures['gpu_fp16']}")
    else:
        figures["gpu_fp16"] = "no CUDA device on this machine"
    print(json.dumps(figures, indent=2))
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
