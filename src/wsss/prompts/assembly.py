"""SemPLeS prompt learning assembled (docs/method.md, "SemPLeS"): (image, tag) pairs -> frozen background features ->
trained contexts -> the tensors and records the `learn_prompts` stage saves.

Pure functions of arrays and a loaded CLIP; the stage entry only reads images and masks from the
stores and writes the files.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from wsss.clip.loading import LoadedClip
from wsss.imaging import CLIP_MEAN, CLIP_STD
from wsss.prompts.decode import nearest_words, report_markdown
from wsss.prompts.learning import (
    BackgroundPrompts,
    TrainingRecord,
    check_text_tower,
    learned_background_embeddings,
    mask_at_clip_size,
    masked_background_features,
    prompt_tokens,
    train_background_prompts,
)
from wsss.prompts.settings import LearnPromptsSettings
from wsss.text import ClassVocabulary, PromptEmbeddingCache

FEATURE_BATCH = 32  # (image, tag) pairs per frozen image-encoder call


def square_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """`(3, size, size)` in [0, 1], bicubic (the whole image, squashed like SemPLeS's 224 crops)."""
    resized = image.resize((size, size), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255).permute(2, 0, 1)


def masks_from_labels(labels: np.ndarray, class_ids: Sequence[int], size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """M_k at CLIP size: the pixels a pseudo mask (before the confidence filter) labels k + 1."""
    tensor = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    for class_id in class_ids:
        yield int(class_id), mask_at_clip_size((tensor == class_id + 1).float(), size)


def masks_from_refined(refined: np.ndarray, class_ids: Sequence[int], size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """M_k at CLIP size: the soft refined map of each tag (SemPLeS's own choice)."""
    for class_id, cam in zip(class_ids, refined, strict=True):
        yield int(class_id), mask_at_clip_size(torch.from_numpy(np.asarray(cam, dtype=np.float32)), size)


def background_features(clip: LoadedClip, pairs: Iterable[tuple[torch.Tensor, int, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen E_I(X_b) of every (pixels, class id, mask) pair: `(S, E)` features and `(S,)` class ids."""
    features: list[torch.Tensor] = []
    ids: list[int] = []
    pixels_batch: list[torch.Tensor] = []
    masks_batch: list[torch.Tensor] = []

    def flush() -> None:
        if pixels_batch:
            features.append(masked_background_features(clip.model, torch.stack(pixels_batch), torch.stack(masks_batch), CLIP_MEAN, CLIP_STD).cpu())
            pixels_batch.clear()
            masks_batch.clear()

    for pixels, class_id, mask in pairs:
        pixels_batch.append(pixels)
        masks_batch.append(mask)
        ids.append(class_id)
        if len(pixels_batch) == FEATURE_BATCH:
            flush()
    flush()
    width = features[0].shape[1] if features else 0
    return (torch.cat(features) if features else torch.empty(0, width)), torch.tensor(ids, dtype=torch.long)


def learn_background_prompts(
    clip: LoadedClip,
    vocabulary: ClassVocabulary,
    features: torch.Tensor,
    class_ids: torch.Tensor,
    settings: LearnPromptsSettings,
    report: Callable[[int, Any], None] | None = None,
) -> tuple[dict[str, torch.Tensor], TrainingRecord]:
    """Train one context per class; returns the tensors to save (`context`, `background_text`,
    `class_text`) and the per-step record."""
    model = clip.model.eval().requires_grad_(False)
    check_text_tower(model)
    device = model.token_embedding.weight.device
    tokens = prompt_tokens(clip.tokenizer, settings.prefix, settings.context_tokens)
    class_text = PromptEmbeddingCache(model, clip.tokenizer, device).embed(vocabulary.prompt_names, (settings.prefix + " {}.",))
    prompts = BackgroundPrompts(
        vocabulary.num_classes, settings.context_tokens, model.token_embedding.weight.shape[1], settings.init_scale, settings.seed
    ).to(device)
    record = train_background_prompts(model, tokens, prompts, features.to(device), class_ids, class_text, settings, report)
    tensors = {
        "context": prompts.context.detach().cpu(),
        "background_text": learned_background_embeddings(model, tokens, prompts).cpu(),
        "class_text": class_text.cpu(),
    }
    return tensors, record


def training_summary(record: TrainingRecord, pairs: int, device: str) -> dict[str, Any]:
    """Pairs, steps, first/last loss and the median seconds per step (the first step excluded)."""
    steady = record.step_seconds[1:] or record.step_seconds
    return {
        "pairs": int(pairs),
        "steps": len(record.losses),
        "loss_first": round(record.losses[0], 6),
        "loss_last": round(record.losses[-1], 6),
        "seconds_per_step_median": round(statistics.median(steady), 6),
        "device": device,
    }


def prompts_report(
    clip: LoadedClip, tensors: Mapping[str, torch.Tensor], class_names: Sequence[str], settings: LearnPromptsSettings, summary: Mapping[str, Any]
) -> str:
    """report.md: the nearest vocabulary words of every learned context token."""
    embedding = clip.model.token_embedding.weight.detach().cpu()
    decoded = nearest_words(tensors["context"], embedding, clip.tokenizer, class_names, settings.report_top_k)
    return report_markdown(decoded, settings.prefix, dict(summary))
