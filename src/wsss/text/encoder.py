"""Text embeddings of class prompts, computed once per run and reused for every image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wsss.text.templates import check_template


class PromptEmbeddingCache:
    """L2-normalised CLIP text embeddings of `template.format(name)`, cached per (templates, name).

    With several templates the embeddings are averaged and renormalised (the reference's
    `zeroshot_classifier`); with one template this is just the normalised embedding.

    Args:
        model: open_clip CLIP model (its `encode_text` is used).
        tokenizer: the model's open_clip tokenizer.
        device: where token ids are sent.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, device: torch.device | str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self._cache: dict[tuple[tuple[str, ...], str], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._cache)

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
                tokens = self.tokenizer(sentences).to(self.device)
                features = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
            per_name = features.view(len(missing), len(key_templates), -1).mean(dim=1)
            for name, embedding in zip(missing, F.normalize(per_name, dim=-1)):
                self._cache[(key_templates, name)] = embedding
        if not names:
            return torch.empty(0, 0, device=self.device)
        return torch.stack([self._cache[(key_templates, n)] for n in names])
