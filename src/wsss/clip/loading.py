"""Build an open_clip CLIP model from a pretrained tag, a local checkpoint file or random weights.

The CLIP-ES reference loads OpenAI's `ViT-B-16.pt` (a TorchScript archive whose weights are
stored in fp16) and runs it with QuickGELU. This module accepts that file as it is, plain
OpenAI-format state dicts, open_clip state dicts and open_clip training checkpoints, and never
runs code from a file: state dicts go through `torch.load(weights_only=True)`; TorchScript
archives are never given to `torch.jit.load` (which runs their `__setstate__` code), their
tensors are read weights-only by `wsss.clip.torchscript_archive`. The architecture read from
OpenAI-format weights must be the one `model_name` names (a ViT-B/32 file is not "ViT-B-16").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import open_clip
import torch
from torch import nn

from wsss.clip.architecture import architecture_of_config, architecture_of_openai_state_dict
from wsss.clip.settings import ClipSource
from wsss.clip.torchscript_archive import is_torchscript_archive, read_torchscript_weights
from wsss.clip.vision import layer_norm_fp32
from wsss.clip.weights import (
    HOW_TO_PROVIDE_WEIGHTS,
    checkpoint_weights,
    existing_checkpoint,
    hub_offline,
    pretrained_problem,
    quiet_open_clip_download_error,
    random_weights,
    tag_weights,
)
from wsss.datasets.records import file_sha256
from wsss.errors import CheckpointError

if TYPE_CHECKING:
    from wsss.open_clip_types import ClipModel

Precision = Literal["fp32", "fp16", "bf16"]
ModuleT = TypeVar("ModuleT", bound=nn.Module)

_PRECISION_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

OPENAI_PUBLISHED_SHA256 = {
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f": "openai/ViT-B-16.pt",
    "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af": "openai/ViT-B-32.pt",
}
"""SHA-256 digests OpenAI publishes in its download URLs (clip/clip.py); a match is recorded."""


@dataclass
class LoadedClip:
    """A CLIP model ready for inference, with the identity of its weights for lineage."""

    model: ClipModel
    tokenizer: Any
    model_name: str
    weights: str
    checkpoint_sha256: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    def identity(self) -> dict[str, str | None]:
        """What produced the maps: recorded in every artifact's attributes."""
        return {"model_name": self.model_name, "weights": self.weights, "checkpoint_sha256": self.checkpoint_sha256, **self.details}


def load_clip(source: ClipSource, device: str | torch.device = "cpu", precision: Precision = "fp32") -> LoadedClip:
    """Build the CLIP model described by `source`, in eval mode, frozen, on `device`.

    Raises:
        CheckpointError: the file is missing, fails its SHA-256 check, is not a CLIP
            checkpoint, or the pretrained tag cannot be fetched (the message says how to
            provide weights offline).
    """
    if precision not in _PRECISION_DTYPES:
        raise CheckpointError(f"unknown precision {precision!r}; expected one of {sorted(_PRECISION_DTYPES)}")
    if source.checkpoint is not None:
        loaded = _load_checkpoint_file(source)
    elif source.random_init:
        torch.manual_seed(source.seed)
        model = open_clip.create_model(source.model_name, pretrained=None)
        loaded = LoadedClip(model, None, source.model_name, random_weights(source))
    elif source.pretrained:
        loaded = _load_pretrained_tag(source)
    else:
        raise CheckpointError(f"no CLIP weights configured for {source.model_name!r}. {HOW_TO_PROVIDE_WEIGHTS}")

    loaded.tokenizer = open_clip.get_tokenizer(source.model_name)
    model = loaded.model.eval().requires_grad_(False)
    loaded.model = cast_for_inference(model.to(device), _PRECISION_DTYPES[precision])
    loaded.details["precision"] = precision
    return loaded


class LayerNormFp32(nn.LayerNorm):
    """The reference's LayerNorm subclass: normalise in fp32, return the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm_fp32(self, x)


def cast_for_inference(model: ModuleT, dtype: torch.dtype) -> ModuleT:
    """Cast matmul weights to `dtype`, keeping LayerNorms, embeddings and logit scale in fp32.

    This is what OpenAI's `convert_weights` does for the reference's fp16 GPU runs; the
    adapter computes every LayerNorm in fp32 as the reference's LayerNorm subclass does.
    """
    model.float()
    if dtype == torch.float32:
        return model
    for module in model.modules():
        if type(module) is not LayerNormFp32 and isinstance(module, nn.LayerNorm):
            # CUDA's layer_norm refuses fp16 activations with fp32 weights (CPU accepts them).
            module.__class__ = LayerNormFp32
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            module.weight.data = module.weight.data.to(dtype)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(dtype)
        if isinstance(module, nn.MultiheadAttention):
            for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias"):
                tensor = getattr(module, name, None)
                if tensor is not None:
                    tensor.data = tensor.data.to(dtype)
        for name in ("text_projection", "proj"):
            tensor = getattr(module, name, None)
            if isinstance(tensor, torch.Tensor):
                tensor.data = tensor.data.to(dtype)
    return model


def _load_pretrained_tag(source: ClipSource) -> LoadedClip:
    try:
        with hub_offline(not source.allow_download), quiet_open_clip_download_error():
            model = open_clip.create_model(source.model_name, pretrained=source.pretrained)
    except Exception as error:  # open_clip raises several types for "not downloadable"
        raise CheckpointError(pretrained_problem(source, error)) from error
    return LoadedClip(model, None, source.model_name, tag_weights(source))


def _load_checkpoint_file(source: ClipSource) -> LoadedClip:
    path = existing_checkpoint(source)
    digest = file_sha256(path)
    if source.sha256 is not None and digest.lower() != source.sha256.lower():
        raise CheckpointError(f"{path}: SHA-256 is {digest}, expected {source.sha256} (wrong or corrupted file)")

    state_dict, container = _read_state_dict(path)
    fmt = source.checkpoint_format
    if fmt == "auto":
        fmt = "open_clip" if container == "open_clip_train" else "openai"
    if fmt == "openai":
        model = _build_from_openai_state_dict(path, state_dict, source.model_name)
    elif fmt == "open_clip":
        model = open_clip.create_model(source.model_name, pretrained=None)
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"{path}: does not match open_clip model {source.model_name!r}: {error}") from error
    else:
        raise CheckpointError(f"unknown checkpoint_format {source.checkpoint_format!r}")
    return LoadedClip(
        model,
        None,
        source.model_name,
        checkpoint_weights(path),
        checkpoint_sha256=digest,
        details={
            "checkpoint_format": fmt,
            "checkpoint_container": container,
            **({"published_as": OPENAI_PUBLISHED_SHA256[digest]} if digest in OPENAI_PUBLISHED_SHA256 else {}),
        },
    )


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Return (state dict, container kind) where kind is torchscript, state_dict or open_clip_train."""
    if is_torchscript_archive(path):
        return read_torchscript_weights(path), "torchscript"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path}: not a weights-only PyTorch checkpoint ({type(error).__name__}: {error}); only tensors are loaded from user files"
        ) from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(payload).__name__}")
    container = "state_dict"
    if "state_dict" in payload and isinstance(payload["state_dict"], dict):
        payload, container = payload["state_dict"], "open_clip_train"
    state_dict = {k.removeprefix("module."): v for k, v in payload.items()}
    if not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path}: state dict holds non-tensor values")
    return state_dict, container


def _check_architecture(path: Path, state_dict: dict[str, torch.Tensor], model_name: str) -> None:
    """The weights must be the architecture `model_name` names (it is what lineage records)."""
    try:
        found = architecture_of_openai_state_dict(state_dict)
    except (KeyError, IndexError) as error:
        raise CheckpointError(f"{path}: not an OpenAI CLIP ViT state dict (no {error})") from None
    expected = architecture_of_config(model_name)
    if expected is None:
        raise CheckpointError(
            f"{path}: clip.model_name {model_name!r} is not an open_clip ViT architecture, so these weights "
            f"({found.describe()}) cannot be checked against it; name the file's architecture, e.g. ViT-B-16"
        )
    if found != expected:
        raise CheckpointError(
            f"{path}: the weights are a {found.describe()}, but clip.model_name {model_name!r} is a "
            f"{expected.describe()} (differs in {', '.join(found.differences(expected))}); "
            "use the file of that architecture or set clip.model_name to the file's"
        )


def _build_from_openai_state_dict(path: Path, state_dict: dict[str, torch.Tensor], model_name: str) -> ClipModel:
    if "visual.proj" not in state_dict:
        raise CheckpointError(
            f"{path}: not an OpenAI CLIP ViT state dict (no 'visual.proj'); set clip.checkpoint_format: open_clip for open_clip checkpoints"
        )
    _check_architecture(path, state_dict, model_name)
    try:
        model = open_clip.model.build_model_from_openai_state_dict(dict(state_dict), quick_gelu=True, cast_dtype=None)
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"{path}: OpenAI-format weights could not be loaded: {error}") from error
    # OpenAI files store fp16 weights; the reference calls model.float() on CPU, so do we.
    return model.float()
