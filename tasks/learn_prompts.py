"""learn_prompts: SemPLeS background prompts learned on the current pseudo masks (thin nodes)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from tasks.common import ARTIFACTS, markdown
from tasks.pseudo import RAW
from wsss.clip import LoadedClip
from wsss.datasets import ImageRecord, safe_join
from wsss.imaging import CLIP_MEAN, CLIP_STD, load_rgb
from wsss.io import CamStore
from wsss.prompts.decode import nearest_words, report_markdown
from wsss.prompts.learned_file import save_learned_prompts
from wsss.prompts.learning import (
    BackgroundPrompts,
    LearnPromptsSettings,
    TrainingRecord,
    check_text_tower,
    learned_background_embeddings,
    mask_at_clip_size,
    masked_background_features,
    prompt_tokens,
    train_background_prompts,
)
from wsss.text import ClassVocabulary, PromptEmbeddingCache

LEARN_PROMPTS_DIR = ARTIFACTS / "learn_prompts"
LEARNED_DIR = ARTIFACTS / "learned"  # the second pass: cams/, refined/, pseudo/
LEARNED_CAMS = LEARNED_DIR / "cams"
LEARNED_REFINED = LEARNED_DIR / "refined"
LEARNED_PSEUDO = LEARNED_DIR / "pseudo"
FEATURE_BATCH = 32  # (image, tag) pairs per frozen image-encoder call


def _square_pixels(path: Path, size: int) -> torch.Tensor:
    """`(3, size, size)` in [0, 1], bicubic (the whole image, squashed like SemPLeS's 224 crops)."""
    image = load_rgb(path).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


def _pair_masks(record: ImageRecord, class_ids: Sequence[int], pseudo_dir: Path, refined: CamStore | None, size: int) -> Iterator[tuple[int, torch.Tensor]]:
    """M_k at CLIP size for every tag of one image, from the pseudo labels or the refined maps."""
    if refined is not None:
        stored = refined.read(record.image_id, ["refined"])
        for class_id, cam in zip(np.asarray(stored.attrs["class_ids"]), stored.arrays["refined"]):
            yield int(class_id), mask_at_clip_size(torch.from_numpy(np.asarray(cam, dtype=np.float32)), size)
        return
    with Image.open(pseudo_dir / RAW / f"{record.image_id}.png") as handle:
        labels = torch.from_numpy(np.asarray(handle, dtype=np.int64))
    for class_id in class_ids:
        yield class_id, mask_at_clip_size((labels == class_id + 1).float(), size)


@task(cache_policy=NONE)
def background_features(
    clip: LoadedClip,
    records: Sequence[ImageRecord],
    vocabulary: ClassVocabulary,
    root: Path,
    pseudo_dir: Path,
    refined_store: Path,
    settings: LearnPromptsSettings,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen E_I(X_b) of every (image, tag) pair: `(S, E)` features and `(S,)` class ids."""
    refined = CamStore(refined_store) if settings.mask_source == "refined" else None
    features, ids = [], []
    pixels_batch, masks_batch = [], []

    def flush() -> None:
        if pixels_batch:
            features.append(masked_background_features(
                clip.model, torch.stack(pixels_batch), torch.stack(masks_batch), CLIP_MEAN, CLIP_STD
            ).cpu())
            pixels_batch.clear()
            masks_batch.clear()

    for record in records:
        tags = [vocabulary.class_id(tag) for tag in record.tags]
        if not tags:
            continue
        pixels = _square_pixels(safe_join(root, record.image_path), settings.image_size)
        for class_id, mask in _pair_masks(record, tags, pseudo_dir, refined, settings.image_size):
            pixels_batch.append(pixels)
            masks_batch.append(mask)
            ids.append(class_id)
            if len(pixels_batch) == FEATURE_BATCH:
                flush()
    flush()
    width = features[0].shape[1] if features else 0
    return (torch.cat(features) if features else torch.empty(0, width)), torch.tensor(ids, dtype=torch.long)


@task(cache_policy=NONE)
def learn_background_prompts(
    clip: LoadedClip, vocabulary: ClassVocabulary, features: torch.Tensor, class_ids: torch.Tensor, settings: LearnPromptsSettings
) -> tuple[dict[str, torch.Tensor], TrainingRecord]:
    """Train the contexts; returns the tensors to save and the per-step record."""
    model = clip.model.eval().requires_grad_(False)
    check_text_tower(model)
    device = model.token_embedding.weight.device
    tokens = prompt_tokens(clip.tokenizer, settings.prefix, settings.context_tokens)
    class_text = PromptEmbeddingCache(model, clip.tokenizer, device).embed(vocabulary.prompt_names, (settings.prefix + " {}.",))
    prompts = BackgroundPrompts(
        vocabulary.num_classes, settings.context_tokens, model.token_embedding.weight.shape[1], settings.init_scale, settings.seed
    ).to(device)
    logger = get_run_logger()

    def report(step: int, loss: Any) -> None:
        if step % 10 == 0:
            logger.info("step %d: L_prompt %.4f (match %.4f, push %.4f)", step, float(loss.total), float(loss.match), float(loss.push))

    record = train_background_prompts(model, tokens, prompts, features.to(device), class_ids, class_text, settings, report)
    tensors = {
        "context": prompts.context.detach().cpu(),
        "background_text": learned_background_embeddings(model, tokens, prompts).cpu(),
        "class_text": class_text.cpu(),
    }
    return tensors, record


@task(cache_policy=NONE, retries=2, retry_delay_seconds=1)
def write_learned_prompts(
    output: Path, tensors: Mapping[str, torch.Tensor], attributes: Mapping[str, Any]
) -> Path:
    """The safetensors file with its lineage attributes."""
    return save_learned_prompts(output / "prompts.safetensors", tensors, attributes)


@task(cache_policy=NONE)
def write_report(
    output: Path, clip: LoadedClip, tensors: Mapping[str, torch.Tensor], class_names: Sequence[str], settings: LearnPromptsSettings, summary: Mapping[str, Any]
) -> Path:
    """Nearest vocabulary words of every learned context token: report.md + a Prefect artifact."""
    decoded = nearest_words(tensors["context"], clip.model.token_embedding.weight.detach().cpu(), clip.tokenizer, class_names, settings.report_top_k)
    text = report_markdown(decoded, settings.prefix, dict(summary))
    path = output / "report.md"
    path.write_text(text)
    markdown("wsss-learned-prompts", text, "Nearest vocabulary words of each learned background prompt")
    return path
