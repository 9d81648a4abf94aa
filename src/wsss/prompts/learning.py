"""SemPLeS contrastive prompt learning (SemPLeS stage (b), docs/method.md) on a frozen open_clip model.

Per class k a learnable context `p_k` of N token embeddings is placed CoOp-style into
`<sot> a photo of [p_k] . <eot>` and run through CLIP's frozen text transformer. It is trained
so that the class's *background* image `X_b = (1 - M_k) * X` matches it, while it stays away
from the class name's embedding:

    L_prompt = -log sim(E_I(X_b), E_T(p_k)) + lambda_p * log sim(E_T(t_k), E_T(p_k))

with `sim` the cosine similarity clamped to [1e-4, 0.9999] (SemPLeS's `clip_loss.py`). CLIP
stays frozen, so the background image features are computed once; a training step only runs
the text tower over the classes in the batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from wsss.errors import ConfigError
from wsss.prompts.settings import LearnPromptsSettings

if TYPE_CHECKING:
    from wsss.open_clip_types import ClipModel

SIM_MIN, SIM_MAX = 1e-4, 0.9999
MASK_EPS = 1e-4  # SemPLeS's min-max epsilon of the 224x224 masks
PLACEHOLDER = "x"


def clamped_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity clamped to [1e-4, 0.9999]. Shape: `(S, E), (S, E)` -> `(S,)`."""
    return F.cosine_similarity(a.float(), b.float(), dim=-1).clamp(SIM_MIN, SIM_MAX)


@dataclass(frozen=True)
class PromptLoss:
    """L_prompt and its two terms (scalars)."""

    total: torch.Tensor
    match: torch.Tensor  # -mean log sim(E_I(X_b), E_T(p_k))
    push: torch.Tensor  # mean log sim(E_T(t_k), E_T(p_k)), weighted by lambda_p in `total`


def prompt_learning_loss(
    background_features: torch.Tensor, prompt_features: torch.Tensor, class_features: torch.Tensor, lambda_prompt: float
) -> PromptLoss:
    """SemPLeS stage (b) loss, averaged over the (image, tag) pairs of a batch.

    Args:
        background_features: `(S, E)` E_I(X_b) of each pair's background image.
        prompt_features: `(S, E)` E_T(p_k) of each pair's class.
        class_features: `(S, E)` E_T(t_k), the class-name prompt of each pair's class.
        lambda_prompt: lambda_p.
    """
    match = -torch.log(clamped_similarity(background_features, prompt_features)).mean()
    push = torch.log(clamped_similarity(class_features, prompt_features)).mean()
    return PromptLoss(match + lambda_prompt * push, match, push)


def refinement_penalty(foreground_features: torch.Tensor, prompt_features: torch.Tensor) -> torch.Tensor:
    """SemPLeS stage (c) term `-log(1 - sim(E_I(X_f), E_T(p_k)))` per row.

    Shape: `(S, E), (S, E)` -> `(S,)`; large when a foreground segment looks like the class's
    learned background.
    """
    return -torch.log(1 - clamped_similarity(foreground_features, prompt_features))


def freeze(model: ClipModel) -> ClipModel:
    """Eval mode, no parameter gradients: only the prompts may train."""
    return model.eval().requires_grad_(False)


@dataclass(frozen=True)
class PromptTokens:
    """Token ids of `<sot> prefix x x ... x . <eot>` and where the N placeholders sit.

    Attributes:
        ids: `(L,)` token ids truncated after the end-of-text token (the text tower is causal
            and pools there, so later positions cannot change the result).
        context_positions: `(N,)` indices of the placeholders.
        eot_position: index of the end-of-text token.
    """

    ids: torch.Tensor
    context_positions: torch.Tensor
    eot_position: int


def prompt_tokens(tokenizer: Any, prefix: str, context_tokens: int) -> PromptTokens:
    """Tokenise the CoOp template with one-token placeholders where the context goes."""
    sentence = " ".join([prefix, *([PLACEHOLDER] * context_tokens)]).strip() + "."
    ids = tokenizer([sentence])[0]
    placeholder_id = tokenizer([PLACEHOLDER])[0][1]
    positions = torch.nonzero(ids == placeholder_id).flatten()
    if len(positions) != context_tokens:
        # fewer slots than asked: the sentence was cut at CLIP's context length
        raise ConfigError(
            f"learn_prompts: {prefix!r} + {context_tokens} context tokens does not fit CLIP's {len(ids)}-token context (found {len(positions)} slots)"
        )
    eot = int(ids.argmax())
    return PromptTokens(ids[: eot + 1].clone(), positions, eot)


def check_text_tower(model: ClipModel) -> None:
    """Prompt learning runs CLIP's own text tower step by step; other towers are refused."""
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection", "attn_mask")
    missing = [name for name in needed if getattr(model, name, None) is None]
    if missing or getattr(model, "text_pool_type", "argmax") != "argmax":
        raise ConfigError(f"prompt learning needs an open_clip CLIP text tower with end-of-text pooling; missing {missing or 'argmax pooling'}")


def encode_context_prompts(model: ClipModel, tokens: PromptTokens, context: torch.Tensor) -> torch.Tensor:
    """E_T of prompts whose placeholder embeddings are replaced by learned contexts.

    The steps of open_clip 3.3's `CLIP.encode_text`: token embedding, + positional embedding,
    causal transformer, `ln_final`, pooling at the end-of-text token, text projection.

    Args:
        model: open_clip CLIP model (frozen).
        tokens: the template's token ids and placeholder positions.
        context: `(P, N, D)` learned context per prompt, D = text width.

    Returns:
        `(P, E)` text features (not normalised); differentiable w.r.t. `context`.
    """
    length = len(tokens.ids)
    device = model.token_embedding.weight.device
    cast_dtype = model.transformer.get_cast_dtype()
    ids = tokens.ids.to(device)
    base = model.token_embedding(ids).to(cast_dtype)  # (L, D)
    keep = torch.ones(length, 1, dtype=cast_dtype, device=device)
    keep[tokens.context_positions] = 0
    scatter = torch.zeros(context.shape[1], length, dtype=cast_dtype, device=device)
    scatter[torch.arange(context.shape[1]), tokens.context_positions.to(device)] = 1
    # placeholders are swapped for the context by a masked sum, which keeps autograd simple
    x = base[None] * keep[None] + torch.einsum("nl,pnd->pld", scatter, context.to(cast_dtype))
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
    pooled = x[:, tokens.eot_position]
    projection = model.text_projection
    return projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection


class BackgroundPrompts(nn.Module):
    """The learnable contexts `(C, N, D)`, uniform in [0, init_scale) (seeded)."""

    def __init__(self, num_classes: int, context_tokens: int, width: int, init_scale: float, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        initial = torch.rand(num_classes, context_tokens, width, generator=generator) * init_scale
        self.context = nn.Parameter(initial)

    def forward(self, model: ClipModel, tokens: PromptTokens, class_ids: torch.Tensor) -> torch.Tensor:
        """E_T(p_k) for each class id. Shape: `(P,)` -> `(P, E)`."""
        return encode_context_prompts(model, tokens, self.context[class_ids.to(self.context.device)])


def masked_background_features(
    model: ClipModel, pixels: torch.Tensor, masks: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Frozen E_I of `X_b = (1 - M) * X`, normalised, without gradients.

    Args:
        pixels: `(S, 3, s, s)` images in [0, 1] at CLIP's input size.
        masks: `(S, s, s)` foreground masks M_k in [0, 1].
        mean, std: CLIP's normalisation (applied after masking: the background is black).

    Returns:
        `(S, E)` L2-normalised image features.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    shift = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    scale = torch.tensor(std, device=device).view(1, 3, 1, 1)
    background = (1 - masks.to(device)[:, None]) * pixels.to(device)
    with torch.no_grad():
        return F.normalize(model.encode_image(((background - shift) / scale).to(dtype)).float(), dim=-1)


def mask_at_clip_size(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a map to `(size, size)` (bilinear, align_corners=True) and min-max it (eps 1e-4).

    Shape: `(H, W)` -> `(size, size)`; as SemPLeS prepares M_k from its CAMs.
    """
    resized = F.interpolate(mask.float()[None, None], (size, size), mode="bilinear", align_corners=True)[0, 0]
    low, high = resized.min(), resized.max()
    return (resized - low) / (high - low + MASK_EPS)


def scaled_learning_rate(settings: LearnPromptsSettings) -> float:
    """SemPLeS's scripts scale the learning rate linearly with the batch: `lr * batch / 512`."""
    return settings.lr * settings.batch_size / 512


def cosine_learning_rate(base_lr: float, epoch: int, epochs: int) -> float:
    """Per-epoch cosine decay to 0 without warm-up (timm's `cosine` scheduler as SemPLeS sets it)."""
    return 0.5 * base_lr * (1 + math.cos(math.pi * epoch / epochs))


@dataclass
class TrainingRecord:
    """Loss per step and wall-clock seconds per step (for the report and the benchmark)."""

    losses: list[float] = field(default_factory=list)
    matches: list[float] = field(default_factory=list)
    pushes: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)


def total_steps(pairs: int, settings: LearnPromptsSettings) -> int:
    """Optimiser steps of a training run over `pairs` (image, tag) pairs: every epoch, or `max_steps`."""
    total = settings.epochs * -(-pairs // settings.batch_size)
    return total if settings.max_steps is None else min(total, settings.max_steps)


def train_background_prompts(
    model: ClipModel,
    tokens: PromptTokens,
    prompts: BackgroundPrompts,
    background_features: torch.Tensor,
    class_ids: torch.Tensor,
    class_features: torch.Tensor,
    settings: LearnPromptsSettings,
    on_step: Callable[[int, PromptLoss], None] | None = None,
) -> TrainingRecord:
    """Optimise the contexts with L_prompt; CLIP (already frozen) is never updated.

    Args:
        background_features: `(S, E)` normalised E_I(X_b) of every (image, tag) pair.
        class_ids: `(S,)` class of each pair.
        class_features: `(C, E)` E_T(t_k) of every class ("a photo of {name}.").
    """
    if len(background_features) == 0:
        raise ConfigError("learn_prompts: no (image, tag) pairs to learn from")
    if any(p.requires_grad for p in model.parameters()):
        raise ConfigError("learn_prompts: CLIP must be frozen (requires_grad False) before prompt learning")
    device = prompts.context.device
    base_lr = scaled_learning_rate(settings)
    optimizer = torch.optim.AdamW(prompts.parameters(), lr=base_lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    pairs = len(background_features)
    steps_per_epoch = -(-pairs // settings.batch_size)
    total = total_steps(pairs, settings)
    record = TrainingRecord()
    order = torch.randperm(pairs, generator=generator)
    for step in range(total):
        position = step % steps_per_epoch
        if position == 0:
            epoch = step // steps_per_epoch
            for group in optimizer.param_groups:
                group["lr"] = cosine_learning_rate(base_lr, epoch, settings.epochs)
            if step:
                order = torch.randperm(pairs, generator=generator)
        batch = order[position * settings.batch_size : (position + 1) * settings.batch_size]
        started = time.perf_counter()
        batch_classes = class_ids[batch]
        unique, inverse = torch.unique(batch_classes, return_inverse=True)
        # each class's prompt is encoded once per step, however many pairs carry it
        prompt_features = prompts(model, tokens, unique)[inverse.to(device)]
        loss = prompt_learning_loss(
            background_features[batch].to(device), prompt_features, class_features[batch_classes].to(device), settings.lambda_prompt
        )
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        record.step_seconds.append(time.perf_counter() - started)
        record.losses.append(float(loss.total.detach()))
        record.matches.append(float(loss.match.detach()))
        record.pushes.append(float(loss.push.detach()))
        if on_step:
            on_step(step, loss)
    return record


def learned_background_embeddings(model: ClipModel, tokens: PromptTokens, prompts: BackgroundPrompts) -> torch.Tensor:
    """`(C, E)` L2-normalised E_T(p_k) of every class, without gradients."""
    with torch.no_grad():
        ids = torch.arange(prompts.context.shape[0])
        return F.normalize(prompts(model, tokens, ids).float(), dim=-1)
