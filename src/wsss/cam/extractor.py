"""Image + tags -> Grad-CAM maps, attention affinity and CAA-refined maps (CLIP-ES, docs/method.md).

One no-grad pass runs all blocks but the last, summing the attention of the blocks CAA uses;
the last block runs with autograd from its `ln_1` output; all tags of all images in a batch are
back-propagated together. Images are batched only with images of the same network input
size ("size buckets"), so no padding changes the attention.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from wsss.cam.caa import refine_images
from wsss.cam.gradcam import channel_weights_through_linear, gradcam_from_weights, rescore_with_background_prompts, tag_gradients, tag_probabilities
from wsss.cam.last_block import channel_weights, forward_last_block, supports_closed_form
from wsss.cam.settings import CaaSettings, CamSettings
from wsss.clip.loading import LoadedClip
from wsss.clip.vision import ClipVisionTower, TowerState
from wsss.errors import ConfigError
from wsss.imaging import clip_input_size, clip_pixels, to_rgb
from wsss.io.shared_arrays import shared
from wsss.machine_layout import cam_batch_size
from wsss.text.encoder import PromptEmbeddingCache
from wsss.text.vocabulary import ClassVocabulary

LEARNED_BACKGROUND_MODES = ("add", "replace")


@dataclass(frozen=True)
class LearnedBackground:
    """Learned per-class background prompts for the CAM softmax (SemPLeS, optional).

    Attributes:
        embeddings: `(C, E)` E_T(p_k) of every class.
        mode: "add" to the fixed background words or "replace" them.
        rescore_weight: lambda_r of the prompt-guided re-scoring, or None for no re-scoring.
    """

    embeddings: torch.Tensor
    mode: str = "add"
    rescore_weight: float | None = None


@dataclass
class PreparedImage:
    """Network input of one image. `pixels` is `(3, h*patch, w*patch)`; sizes are (height, width)."""

    pixels: torch.Tensor
    original_size: tuple[int, int]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # From an image process through a shared-memory segment (wsss.io.shared_arrays), as a numpy array.
        return _prepared_from_array, (shared(self.pixels.numpy()), self.original_size)


def _prepared_from_array(pixels: np.ndarray, original_size: tuple[int, int]) -> PreparedImage:
    return PreparedImage(torch.from_numpy(pixels), original_size)


def prepare_image(image: Image.Image, patch_size: int, max_side: int | None) -> PreparedImage:
    """Resize and normalise one RGB image for the network (reference transform, `max_side` cap)."""
    rgb = to_rgb(image) if image.mode != "RGB" else image
    size = clip_input_size(rgb.height, rgb.width, patch_size, max_side)
    return PreparedImage(clip_pixels(rgb, size), (rgb.height, rgb.width))


def size_bucket(image: PreparedImage) -> tuple[int, ...]:
    """The network input size: images share a forward only when it is equal."""
    return tuple(image.pixels.shape[-2:])


@dataclass
class CamResult:
    """Everything CLIP-ES computes for one image.

    Attributes:
        class_ids: `(K,)` 0-based class ids of the tags, in map order.
        original_size: `(H, W)` of the source image.
        grid: `(h, w)` token grid.
        gradcam: `(K, h, w)` float32 Grad-CAM maps in [0, 1] (before refinement).
        attention: `(h*w, h*w)` float32 mean attention of the affinity layers (before Sinkhorn).
        tag_probabilities: `(K,)` softmax probability of each tag.
        refined: `(K, H, W)` float32 CAA-refined maps at the original size, or None.
    """

    class_ids: np.ndarray
    original_size: tuple[int, int]
    grid: tuple[int, int]
    gradcam: np.ndarray
    attention: np.ndarray
    tag_probabilities: np.ndarray
    refined: np.ndarray | None = None


class ClipEsCamExtractor:
    """CLIP-ES CAM extraction over a loaded CLIP model.

    Args:
        clip: the loaded model (`wsss.clip.load_clip`).
        vocabulary: classes, prompt names and background words.
        settings: extraction parameters (`batch_size: auto` is decided for the model's device, as
            `wsss.machine_layout.resolve_auto` decides it for `clip.device`).
        caa: refinement parameters used when `extract(..., refine=True)`.
        learned_background: `(C, E)` per-class learned background prompt embeddings (SemPLeS);
            for an image with tags Y the rows of Y join the softmax denominator. None = the
            reference (fixed background words only).
        background_mode: "add" the learned rows to the fixed background words, or "replace" them.
        rescore_weight: when set (lambda_r), each Grad-CAM map is re-scored with the
            prompt-guided refinement term against its tag's learned background prompt
            (`rescore_with_background_prompts`); needs `learned_background` and the closed-form backward.
    """

    def __init__(
        self,
        clip: LoadedClip,
        vocabulary: ClassVocabulary,
        settings: CamSettings | None = None,
        caa: CaaSettings | None = None,
        learned_background: torch.Tensor | None = None,
        background_mode: str = "add",
        rescore_weight: float | None = None,
    ) -> None:
        self.clip = clip
        self.vocabulary = vocabulary
        self.settings = settings or CamSettings()
        self.caa = caa or CaaSettings()
        self.tower = ClipVisionTower(clip.model.visual, self.settings.round_pos_embed_to_fp16)
        if self.settings.affinity_layers > self.tower.num_blocks:
            raise ConfigError(f"affinity_layers={self.settings.affinity_layers} exceeds the model's {self.tower.num_blocks} blocks")
        self.device = self.tower.device
        # `auto` (the shipped params read without `resolve_auto`) by the same rule, for this model's device.
        self.batch_size = cam_batch_size(self.settings.batch_size, self.device.type == "cuda")
        self._closed_form = self.settings.backward == "closed_form" and supports_closed_form(self.tower.blocks[-1])
        self.prompts = PromptEmbeddingCache(clip.model, clip.tokenizer, self.device)
        self.logit_scale = float(clip.model.logit_scale.detach().float().exp())
        templates = self.settings.templates
        self._class_text = self.prompts.embed(vocabulary.prompt_names, templates)
        self._background_text = self.prompts.embed(vocabulary.background_words, templates)
        self._learned_background = self._check_learned(learned_background, background_mode, rescore_weight)
        self.background_mode = background_mode
        self.rescore_weight = rescore_weight
        if learned_background is not None and background_mode == "replace":
            self._background_text = self._background_text[:0]

    def prepare(self, image: Image.Image) -> PreparedImage:
        """Resize and normalise one RGB image for the network (reference transform)."""
        return prepare_image(image, self.tower.patch_size, self.settings.max_side)

    def extract(self, image: Image.Image | PreparedImage, class_ids: Sequence[int], refine: bool = True) -> CamResult:
        """CAMs for one image and its tags (class ids, duplicates removed in order)."""
        prepared = image if isinstance(image, PreparedImage) else self.prepare(image)
        return self.extract_batch([(prepared, class_ids)], refine=refine)[0]

    def extract_batch(self, items: Sequence[tuple[PreparedImage, Sequence[int]]], refine: bool = True) -> list[CamResult]:
        """CAMs for many images; batches are formed within equal input sizes, order is kept."""
        buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, (prepared, _) in enumerate(items):
            buckets[size_bucket(prepared)].append(index)
        results: list[CamResult | None] = [None] * len(items)
        step = self.batch_size
        for indices in buckets.values():
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                batch = [(items[i][0], self._check_tags(items[i][1])) for i in chunk]
                for index, result in zip(chunk, self._extract_same_size(batch, refine), strict=True):
                    results[index] = result
        return [r for r in results if r is not None]

    def image_features(self, images: Sequence[PreparedImage], pooling: str = "cls") -> torch.Tensor:
        """`(N, E)` image features without gradients: "cls" (stock CLIP zero-shot) or "patch_mean"."""
        if pooling not in ("cls", "patch_mean"):
            raise ConfigError(f"pooling must be 'cls' or 'patch_mean', got {pooling!r}")
        features = []
        for prepared in images:
            tokens = self.tower.forward_features(prepared.pixels[None].to(self.device))
            pooled = self.tower.pool_cls(tokens) if pooling == "cls" else self.tower.pool(tokens)
            features.append(pooled.float())
        return torch.cat(features) if features else torch.empty(0, self._class_text.shape[-1])

    def class_text(self, template: str) -> torch.Tensor:
        """`(C, E)` normalised class prompt embeddings under one template (cached)."""
        return self.prompts.embed(self.vocabulary.prompt_names, (template,))

    def _check_tags(self, class_ids: Sequence[int]) -> np.ndarray:
        ids = np.array(list(dict.fromkeys(int(c) for c in class_ids)), dtype=np.int64)
        bad = [int(c) for c in ids if not 0 <= c < self.vocabulary.num_classes]
        if bad:
            raise ConfigError(f"class ids {bad} are outside 0..{self.vocabulary.num_classes - 1}")
        return ids

    def _check_learned(self, learned: torch.Tensor | None, mode: str, rescore_weight: float | None) -> torch.Tensor | None:
        if mode not in LEARNED_BACKGROUND_MODES:
            raise ConfigError(f"background_mode must be one of {LEARNED_BACKGROUND_MODES}, got {mode!r}")
        if learned is None:
            if rescore_weight is not None:
                raise ConfigError("CAM re-scoring needs learned background prompts")
            return None
        expected = (self.vocabulary.num_classes, self._class_text.shape[-1])
        if tuple(learned.shape) != expected:
            raise ConfigError(f"learned background prompts have shape {tuple(learned.shape)}, expected {expected} (classes, embedding)")
        if rescore_weight is not None and not self._closed_form:
            raise ConfigError("CAM re-scoring with learned prompts needs cam.backward: closed_form")
        return F.normalize(learned.float(), dim=-1).to(self.device)

    def _extract_same_size(self, batch: list[tuple[PreparedImage, np.ndarray]], refine: bool) -> list[CamResult]:
        settings, tower = self.settings, self.tower
        pixels = torch.stack([p.pixels for p, _ in batch]).to(self.device)
        grid = (pixels.shape[-2] // tower.patch_size, pixels.shape[-1] // tower.patch_size)
        counts = [len(ids) for _, ids in batch]

        collect_from = tower.num_blocks - settings.affinity_layers
        explicit_from = 0 if settings.exact_attention else collect_from
        with torch.no_grad():
            state = TowerState(tower.embed(pixels), None, 0)
            state = tower.run_blocks(state, 0, tower.num_blocks - 1, collect_from, explicit_from)
        text, valid = self._text_rows([ids for _, ids in batch])
        if self._closed_form:
            rescoring = self.rescore_weight is not None and self._learned_background is not None
            tag_backgrounds = self._tag_background_rows([ids for _, ids in batch]) if rescoring else None
            cams, last_attention, probabilities = self._gradcam_closed_form(state.tokens, text, valid, counts, grid, tag_backgrounds)
        else:
            cams, last_attention, probabilities = self._gradcam_autograd(state.tokens, text, valid, counts, grid)
        attention_sum = last_attention if state.attention_sum is None else state.attention_sum + last_attention
        attention = attention_sum / (state.attention_count + 1)

        # One device-to-host copy per output for the whole batch; each image's arrays are views.
        cams_host, attention_host = cams.cpu().numpy(), attention.cpu().numpy()
        probabilities_host = probabilities.float().cpu().numpy()
        sizes = [prepared.original_size for prepared, _ in batch]
        refined = refine_images(cams, attention, counts, sizes, self.caa) if refine else None
        results = []
        for b, (prepared, ids) in enumerate(batch):
            k = len(ids)
            result = CamResult(
                class_ids=ids,
                original_size=prepared.original_size,
                grid=grid,
                gradcam=cams_host[b, :k],
                attention=attention_host[b],
                tag_probabilities=probabilities_host[b, :k],
            )
            if refined is not None:
                result.refined = refined[b].cpu().numpy()
            results.append(result)
        return results

    def _gradcam_closed_form(
        self,
        tokens: torch.Tensor,
        text: torch.Tensor,
        valid: torch.Tensor,
        counts: list[int],
        grid: tuple[int, int],
        tag_backgrounds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        visual = self.tower.visual
        block = self.tower.blocks[-1]
        cache = forward_last_block(block, tokens, visual.ln_post, visual.proj)
        feature = cache.pooled.detach().float().requires_grad_(True)
        with torch.enable_grad():
            probabilities = tag_probabilities(feature, text, valid, self.logit_scale)
            feature_grads = tag_gradients(probabilities, feature, counts, batched=True)
        weights = channel_weights(block, visual.ln_post, visual.proj, cache, feature_grads)
        cams = gradcam_from_weights(cache.ln1[:, 1:, :], weights, grid)
        if tag_backgrounds is not None and self.rescore_weight is not None:
            ln_post = visual.ln_post
            patches = (cache.post_hat[:, 1:].float() * ln_post.weight.float() + ln_post.bias.float()) @ visual.proj.float()
            cams = rescore_with_background_prompts(cams, patches, tag_backgrounds, self.rescore_weight)
        return cams, cache.attention, probabilities.detach()

    def _gradcam_autograd(
        self, tokens: torch.Tensor, text: torch.Tensor, valid: torch.Tensor, counts: list[int], grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        last = self.tower.run_last_block(tokens)
        probabilities = tag_probabilities(last.pooled, text, valid, self.logit_scale)
        batched = self.settings.backward != "autograd_per_tag"
        grads = tag_gradients(probabilities, last.qkv, counts, batched)
        # (K, L, B, 3D) -> patch tokens -> (K, B, h*w, 3D)
        weights = channel_weights_through_linear(grads[:, 1:].transpose(1, 2), last.in_proj_weight)
        cams = gradcam_from_weights(last.ln1_tokens[:, 1:, :], weights, grid)
        return cams, last.attention, probabilities.detach()

    def _tag_background_rows(self, tag_sets: list[np.ndarray]) -> torch.Tensor:
        """`(B, K_max, E)` learned background prompt of each tag slot (zeros on padding slots)."""
        assert self._learned_background is not None
        index, valid = self._tag_slots(tag_sets)
        return torch.where(valid[..., None], self._learned_background[index], 0.0)

    def _text_rows(self, tag_sets: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, K_max + M [+ K_max], E)` prompt rows and their validity.

        Rows: the tags, then the background words, then (with learned prompts) each tag's learned
        background prompt.
        """
        index, tags_valid = self._tag_slots(tag_sets)
        background = self._background_text
        slot_valid = tags_valid[..., None]
        blocks = [torch.where(slot_valid, self._class_text[index], 0.0), background.expand(len(tag_sets), *background.shape)]
        valid = [tags_valid, tags_valid.new_ones(len(tag_sets), background.shape[0])]
        if self._learned_background is not None:
            blocks.append(torch.where(slot_valid, self._learned_background[index], 0.0))
            valid.append(tags_valid)
        return torch.cat(blocks, dim=1).float(), torch.cat(valid, dim=1)

    def _tag_slots(self, tag_sets: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, K_max)` class id of every tag slot (0 on padding) and its validity, on the device.

        Built on the host and copied once, rather than indexed on the device image by image.
        """
        k_max = max(len(ids) for ids in tag_sets)
        index = np.zeros((len(tag_sets), k_max), dtype=np.int64)
        for b, ids in enumerate(tag_sets):
            index[b, : len(ids)] = ids
        valid = np.arange(k_max)[None, :] < np.array([len(ids) for ids in tag_sets])[:, None]
        return torch.from_numpy(index).to(self.device), torch.from_numpy(valid).to(self.device)
