"""The `clip` params section: which CLIP weights, on which device, in which precision (and the
loader's `ClipSource`; torch-free, so that loading the params never loads torch)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from wsss.settings import check_fields, setting

CheckpointFormat = Literal["auto", "openai", "open_clip"]

_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _sha256_problem(value: str) -> str | None:
    return None if _HEX_SHA256.fullmatch(value) else "must be 64 hexadecimal digits (a SHA-256)"


def _device_problem(value: str) -> str | None:
    return None if re.fullmatch(r"cpu|cuda(:\d+)?|mps", value) else "must be cpu, cuda, cuda:N or mps"


@dataclass(frozen=True)
class ClipSource:
    """Where the CLIP weights come from. Exactly one of the three ways is used.

    Attributes:
        model_name: open_clip architecture name, e.g. "ViT-B-16". For OpenAI-format files the
            architecture is read from the weights and this name is only recorded.
        pretrained: open_clip pretrained tag ("openai", "laion2b_s34b_b88k", ...).
        checkpoint: local weights file; takes precedence over `pretrained`.
        checkpoint_format: "openai" (TorchScript archive or plain OpenAI state dict, QuickGELU),
            "open_clip" (state dict of `open_clip.create_model(model_name)`), or "auto".
        sha256: expected hex SHA-256 of `checkpoint`; a mismatch is an error.
        random_init: build `model_name` with random weights (seeded); must be asked for.
        seed: seed of the random initialisation.
        allow_download: let open_clip fetch a pretrained tag from its hub; when False only the
            local cache is used and a missing file fails at once instead of after retries.
    """

    model_name: str = "ViT-B-16"
    pretrained: str | None = "openai"
    checkpoint: Path | None = None
    checkpoint_format: CheckpointFormat = "auto"
    sha256: str | None = None
    random_init: bool = False
    seed: int = 0
    allow_download: bool = True


@dataclass(frozen=True)
class ClipSettings:
    """Where the CLIP weights come from (exactly one way is used) and how the model runs."""

    SECTION: ClassVar[str] = "clip"

    model_name: str = setting("ViT-B-16", "open_clip architecture (only recorded for OpenAI-format files)")
    pretrained: str | None = setting("openai", "open_clip pretrained tag, used when no checkpoint is given")
    checkpoint: str | None = setting(None, "local weights file (OpenAI ViT-B-16.pt or open_clip); takes precedence")
    checkpoint_format: Literal["auto", "openai", "open_clip"] = setting("auto", "format of `checkpoint`")
    sha256: str | None = setting(None, "expected SHA-256 of `checkpoint`; a mismatch is an error", check=_sha256_problem)
    random_init: bool = setting(False, "random weights (seeded) for tests and smoke runs; must be asked for")
    seed: int = setting(0, "seed of the random initialisation", ge=0, le=2**32 - 1)
    allow_download: bool = setting(True, "let open_clip fetch `pretrained` from its hub (else the local cache only)", identity=False)
    device: str = setting("cpu", "torch device of CLIP", check=_device_problem)
    precision: Literal["fp32", "fp16", "bf16"] = setting("fp32", "inference precision")

    def __post_init__(self) -> None:
        check_fields(self)

    def source(self) -> ClipSource:
        """The weights part, as the loader takes it."""
        return ClipSource(
            model_name=self.model_name,
            pretrained=self.pretrained,
            checkpoint=Path(self.checkpoint) if self.checkpoint is not None else None,
            checkpoint_format=self.checkpoint_format,
            sha256=self.sha256,
            random_init=self.random_init,
            seed=self.seed,
            allow_download=self.allow_download,
        )
