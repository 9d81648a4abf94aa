"""The learned background prompts on disk: one safetensors file with lineage metadata.

Tensors: `context` `(C, N, D)` (the learned token embeddings), `background_text` `(C, E)`
(normalised E_T(p_k), what the CAM softmax uses) and `class_text` `(C, E)` (E_T(t_k)).
Metadata values are JSON strings (safetensors allows only str -> str).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from wsss.bounded_parsing import loads_json
from wsss.errors import StoreError
from wsss.io.atomic import atomic_path

TENSORS = ("context", "background_text", "class_text")
MAX_METADATA_CHARS = 1 << 20
"""Longest metadata value read back (ours are a few kB); nesting is bounded by `loads_json`."""


@dataclass(frozen=True)
class LearnedPrompts:
    """Learned prompts read back from disk, with the attributes that produced them."""

    context: torch.Tensor
    background_text: torch.Tensor
    class_text: torch.Tensor
    attributes: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return list(self.attributes.get("class_names", []))


def save_learned_prompts(path: Path, tensors: Mapping[str, torch.Tensor], attributes: Mapping[str, Any]) -> Path:
    """Write atomically (`wsss.io.atomic`: a temporary file renamed into place)."""
    missing = [name for name in TENSORS if name not in tensors]
    if missing:
        raise StoreError(f"{path}: learned prompts lack tensors {missing}")
    metadata = {key: json.dumps(value, sort_keys=True, default=str) for key, value in attributes.items()}
    with atomic_path(path) as temporary:
        save_file({name: tensors[name].detach().float().cpu().contiguous() for name in TENSORS}, str(temporary), metadata=metadata)
    return path


def load_learned_prompts(path: Path) -> LearnedPrompts:
    """Read the file; a missing, unreadable or incomplete file is a StoreError naming it."""
    if not path.is_file():
        raise StoreError(f"{path}: learned prompts not found; run the learn_prompts stage with learn_prompts.enabled: true")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        attributes = {key: loads_json(value, f"metadata {key!r}", max_chars=MAX_METADATA_CHARS) for key, value in metadata.items()}
    except (SafetensorError, OSError, ValueError) as error:  # ParseError is a ValueError
        raise StoreError(f"{path}: cannot read learned prompts ({error})") from error
    missing = [name for name in TENSORS if name not in tensors]
    if missing:
        raise StoreError(f"{path}: learned prompts lack tensors {missing}")
    for name in TENSORS:  # checked here, before the second pass computes anything with them
        tensor = tensors[name]
        if not tensor.is_floating_point():
            raise StoreError(f"{path}: tensor {name!r} is {tensor.dtype}, not floating point; rerun the learn_prompts stage")
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise StoreError(f"{path}: tensor {name!r} holds {bad} NaN or infinite values; rerun the learn_prompts stage")
    background, classes = tensors["background_text"], tensors["class_text"]
    if background.ndim != 2 or background.shape != classes.shape or tensors["context"].shape[0] != background.shape[0]:
        raise StoreError(f"{path}: inconsistent tensor shapes {[tuple(tensors[n].shape) for n in TENSORS]}")
    return LearnedPrompts(tensors["context"], background, classes, attributes)
