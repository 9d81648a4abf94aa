"""Which CLIP weights a `ClipSource` names, found without building the model, and the one-sentence
errors when they are missing (torch-free: `wsss run` checks the weights before it starts anything;
`wsss.clip.loading` loads them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wsss.clip.settings import ClipSource
from wsss.errors import CheckpointError

HOW_TO_PROVIDE_WEIGHTS = (
    "CLIP weights cannot be downloaded here. Copy OpenAI's ViT-B-16.pt (TorchScript archive or "
    "state dict) or an open_clip checkpoint to this machine and set `clip.checkpoint` to its path "
    "(optionally `clip.sha256` to pin its content), or request random weights explicitly with "
    "`clip.random_init: true` (only useful for tests and smoke runs)."
)


def check_weights(source: ClipSource) -> str:
    """The weights `load_clip(source)` would use (as `LoadedClip.weights` names them), found
    without building the model: the checkpoint file exists, or the pretrained tag's file is in
    the local cache (downloadable when `allow_download`). A start-up check of runs that need CLIP.

    Raises:
        CheckpointError: as `load_clip` would, saying how to provide weights.
    """
    if source.checkpoint is not None:
        return checkpoint_weights(existing_checkpoint(source))
    if source.random_init:
        return random_weights(source)
    if not source.pretrained:
        raise CheckpointError(f"no CLIP weights configured for {source.model_name!r}. {HOW_TO_PROVIDE_WEIGHTS}")
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    try:
        with hub_offline(not source.allow_download), quiet_open_clip_download_error():
            config = get_pretrained_cfg(source.model_name, source.pretrained)
            if not config:
                raise ValueError(f"open_clip knows no tag {source.pretrained!r} for this model")
            download_pretrained(config)
    except Exception as error:  # open_clip and the hub raise several types for "not available"
        raise CheckpointError(pretrained_problem(source, error)) from error
    return tag_weights(source)


def random_weights(source: ClipSource) -> str:
    return f"random-init(seed={source.seed})"


def tag_weights(source: ClipSource) -> str:
    return f"open_clip:{source.pretrained}"


def checkpoint_weights(path: Path) -> str:
    return f"file:{path.name}"


def existing_checkpoint(source: ClipSource) -> Path:
    path = Path(source.checkpoint)  # type: ignore[arg-type]
    if not path.is_file():
        raise CheckpointError(f"{path}: CLIP checkpoint not found. {HOW_TO_PROVIDE_WEIGHTS}")
    return path


def pretrained_problem(source: ClipSource, error: Exception) -> str:
    """One sentence: what could not be loaded, why, and how to provide weights (the library's
    chained errors stay on the exception's cause, for log files)."""
    why = (
        "not in the local cache, and downloads are off (clip.allow_download: false or HF_HUB_OFFLINE)"
        if not source.allow_download or hub_is_offline()
        else f"{type(error).__name__}: {error}"
    )
    return f"could not load pretrained weights {source.pretrained!r} for {source.model_name!r}: {why}. {HOW_TO_PROVIDE_WEIGHTS}"


def hub_is_offline() -> bool:
    import huggingface_hub.constants as hub_constants

    return bool(hub_constants.HF_HUB_OFFLINE)


@contextmanager
def quiet_open_clip_download_error() -> Iterator[None]:
    """open_clip logs a failed download on the root logger (`ERROR:root:Failed to download weights
    ...`) before raising it; the CheckpointError raised from that error says the same and what to
    do, so that one log line is dropped (other records pass)."""

    def keep(record: logging.LogRecord) -> bool:
        return not (record.name == "root" and "open_clip" in record.pathname and record.getMessage().startswith("Failed to download weights"))

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


@contextmanager
def hub_offline(offline: bool) -> Iterator[None]:
    """Force huggingface_hub's offline mode for one call (it reads the env only at import)."""
    import huggingface_hub.constants as hub_constants

    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = previous or offline
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = previous
