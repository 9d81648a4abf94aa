"""Text embeddings of class prompts, computed once per run and reused for every image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from wsss.text.templates import check_template

if TYPE_CHECKING:
    from wsss.open_clip_types import ClipModel


class PromptEmbeddingCache:
    """L2-normalised CLIP text embeddings of `template.format(name)`, cached per (templates, name).

    With several templates the embeddings are averaged and renormalised (the reference's
    `zeroshot_classifier`); with one template this is just the normalised embedding.

    Args:
        model: open_clip CLIP model (its `encode_text` is used).
        tokenizer: the model's open_clip tokenizer.
        device: where token ids are sent.
    """

    def __init__(self, model: ClipModel, tokenizer: Any, device: torch.device | str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self._cache: dict[tuple[tuple[str, ...], str], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._cache)

    def _encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """`encode_text`, skipping the padding after the longest prompt's end-of-text token.

        CLIP's text tower is causal and pools at the end-of-text token (the largest id), so the
        positions after it cannot change the result, and prompts use ~10 of the 77 positions.
        Towers that are not causal argmax-pooled CLIP text towers get the full sequence.
        """
        model = self.model
        mask = getattr(model, "attn_mask", None)
        if mask is None or getattr(model, "text_pool_type", None) != "argmax" or not hasattr(model, "token_embedding"):
            return model.encode_text(tokens)
        length = int(tokens.argmax(dim=-1).max()) + 1
        tokens = tokens[:, :length]
        cast_dtype = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
        x = model.ln_final(model.transformer(x, attn_mask=mask[:length, :length]))
        x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
        projection = model.text_projection
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection

    def embed(self, names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """Embeddings for `names` under `templates`.

        Shape: returns `(len(names), E)` float32 on the cache's device.
        """
        key_templates = tuple(check_template(t) for t in templates)
        if not key_templates:
            raise ValueError("at least one prompt template is needed")
        missing = [n for n in dict.fromkeys(names) if (key_templates, n) not in self._cache]
        if missing:
            sentences = [t.format(n) for n in missing for t in key_templates]
            with torch.no_grad():
                features = F.normalize(self._encode(self.tokenizer(sentences).to(self.device)).float(), dim=-1)
            per_name = features.view(len(missing), len(key_templates), -1).mean(dim=1)
            for name, embedding in zip(missing, F.normalize(per_name, dim=-1), strict=True):
                self._cache[(key_templates, name)] = embedding
        if not names:
            return torch.empty(0, 0, device=self.device)
        return torch.stack([self._cache[(key_templates, n)] for n in names])
