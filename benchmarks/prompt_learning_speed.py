"""Seconds per SemPLeS prompt-learning step on a ViT-B/16-sized CLIP (CPU, and CUDA when present).

A step encodes the learned prompts of the classes in a batch through the frozen text tower,
computes L_prompt against precomputed background image features and updates the contexts
(AdamW). The background image features are computed once per (image, tag) pair before training
(CLIP is frozen); that one-off cost is reported per pair as well.

Defaults are SemPLeS's VOC settings: 20 classes, 30 context tokens, batch 128 pairs (so every
class appears in most batches). Weights are random (open_clip `pretrained=None`): speed does not
depend on their values.
Usage: python -m benchmarks.prompt_learning_speed [--steps 10] [--threads 2] [--device cpu|cuda] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics

import open_clip
import torch

from benchmarks.common import json_option, timed, write_json
from wsss.imaging import CLIP_MEAN, CLIP_STD
from wsss.prompts.learning import BackgroundPrompts, LearnPromptsSettings, freeze, masked_background_features, prompt_tokens, train_background_prompts


def measure(device: str, steps: int, classes: int, batch: int, context_tokens: int) -> dict[str, float | str]:
    torch.manual_seed(0)
    model = freeze(open_clip.create_model("ViT-B-16", pretrained=None).to(device))
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    pixels = torch.rand(16, 3, 224, 224)
    masks = torch.rand(16, 224, 224)
    masked_background_features(model, pixels[:2], masks[:2], CLIP_MEAN, CLIP_STD)  # warm-up
    seconds, _ = timed(lambda: masked_background_features(model, pixels, masks, CLIP_MEAN, CLIP_STD))
    feature_seconds = seconds / len(pixels)

    generator = torch.Generator().manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(batch * 2, 512, generator=generator), dim=-1).to(device)
    class_ids = torch.arange(batch * 2) % classes
    class_text = torch.nn.functional.normalize(torch.randn(classes, 512, generator=generator), dim=-1).to(device)
    settings = LearnPromptsSettings(enabled=True, context_tokens=context_tokens, batch_size=batch, max_steps=steps + 1)
    tokens = prompt_tokens(tokenizer, settings.prefix, context_tokens)
    prompts = BackgroundPrompts(classes, context_tokens, 512, settings.init_scale, 0).to(device)
    record = train_background_prompts(model, tokens, prompts, features, class_ids, class_text, settings)
    step_times = record.step_seconds[1:]  # the first step pays one-off allocation costs
    return {
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "classes": classes,
        "batch_pairs": batch,
        "context_tokens": context_tokens,
        "steps_timed": len(step_times),
        "seconds_per_step_median": round(statistics.median(step_times), 4),
        "seconds_per_step_min": round(min(step_times), 4),
        "seconds_per_pair_background_features": round(feature_seconds, 4),
        "loss_first": round(record.losses[0], 4),
        "loss_last": round(record.losses[-1], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--context-tokens", type=int, default=30)
    json_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    results = []
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: not available on this machine")
            continue
        result = measure(device, args.steps, args.classes, args.batch, args.context_tokens)
        results.append(result)
        print(json.dumps(result))
    write_json(args.json, results)


if __name__ == "__main__":
    main()
