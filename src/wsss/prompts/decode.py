"""Interpretable learned prompts: nearest vocabulary words to each learned context token.

SemPLeS shows its background prompts by decoding each context vector to the vocabulary token
whose embedding is closest (cosine over CLIP's token-embedding table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class NearestWords:
    """Per context token of one class: the top-k vocabulary words and their cosine similarity."""

    class_name: str
    words: list[list[str]]  # (N, k)
    similarities: list[list[float]]  # (N, k)


def token_text(tokenizer: Any, token_id: int) -> str:
    """Readable text of one BPE token (the tokenizer's own byte-level decoding when it has one)."""
    decode = getattr(tokenizer, "decode", None)
    if callable(decode):
        try:
            return str(decode([token_id])).strip() or str(token_id)
        except (KeyError, IndexError, TypeError, ValueError):
            pass
    decoder = getattr(tokenizer, "decoder", None)
    if isinstance(decoder, dict) and token_id in decoder:
        return str(decoder[token_id]).replace("</w>", "")
    return str(token_id)


def nearest_words(
    context: torch.Tensor, token_embedding: torch.Tensor, tokenizer: Any, class_names: Sequence[str], top_k: int = 5
) -> list[NearestWords]:
    """Nearest vocabulary tokens to every learned context vector.

    Args:
        context: `(C, N, D)` learned contexts.
        token_embedding: `(V, D)` CLIP's token-embedding table.
        class_names: C names, in context order.
        top_k: words per context token.
    """
    table = F.normalize(token_embedding.float(), dim=-1)
    vectors = F.normalize(context.float(), dim=-1)
    similarity = torch.einsum("cnd,vd->cnv", vectors, table.to(vectors.device))
    values, indices = similarity.topk(min(top_k, table.shape[0]), dim=-1)
    result = []
    for c, name in enumerate(class_names):
        words = [[token_text(tokenizer, int(i)) for i in row] for row in indices[c]]
        sims = [[round(float(v), 4) for v in row] for row in values[c]]
        result.append(NearestWords(name, words, sims))
    return result


def report_markdown(decoded: Sequence[NearestWords], prefix: str, summary: dict[str, Any]) -> str:
    """Markdown report: per class the nearest word of each context token, then the top-k lists."""
    lines = [
        "# Learned background prompts (SemPLeS)",
        "",
        f"Prompt: `{prefix} [p_k] .`; each context token is shown as its nearest vocabulary word (cosine over token embeddings).",
        "",
    ]
    lines += [f"* {key}: {value}" for key, value in summary.items()]
    lines += ["", "| class | nearest word per context token |", "|---|---|"]
    for entry in decoded:
        lines.append(f"| {entry.class_name} | {' '.join(words[0] for words in entry.words)} |")
    lines += ["", "## Top words per context token", ""]
    for entry in decoded:
        lines.append(f"### {entry.class_name}")
        for index, (words, sims) in enumerate(zip(entry.words, entry.similarities, strict=True)):
            lines.append(f"{index}. " + ", ".join(f"{w} ({s:.3f})" for w, s in zip(words, sims, strict=True)))
        lines.append("")
    return "\n".join(lines) + "\n"
