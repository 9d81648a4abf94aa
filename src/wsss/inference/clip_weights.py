"""Which CLIP weights a command runs with, and whether its dense CRF can run: the rules of `wsss demo`
and `wsss segment` (one place, so the two commands cannot choose differently).

Order: `--random-init`; `--checkpoint` (or env `WSSS_CLIP_CHECKPOINT`, `--sha256` pinning it); the
params' `clip` section (`clip.random_init`, `clip.checkpoint`, the cached `clip.pretrained` tag);
and when none of those finds weights, seeded random weights, said loudly, so the command still runs
offline on a fresh clone.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from wsss.errors import CheckpointError

if TYPE_CHECKING:
    from wsss.clip import LoadedClip
    from wsss.params import Params


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `resolve_weights` reads (`--checkpoint`, `--sha256`, `--random-init`, `--device`, `--precision`)."""
    parser.add_argument("--checkpoint", help="CLIP weights file (OpenAI ViT-B-16.pt or open_clip); env WSSS_CLIP_CHECKPOINT")
    parser.add_argument("--sha256", help="expected SHA-256 of --checkpoint")
    parser.add_argument("--random-init", action="store_true", help="use random CLIP weights (smoke test)")
    parser.add_argument("--device", help="overrides clip.device")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], help="overrides clip.precision")


def resolve_weights(args: argparse.Namespace, params: Params) -> tuple[LoadedClip, str]:
    """Weights from --random-init, --checkpoint / WSSS_CLIP_CHECKPOINT, params, else random (loudly)."""
    from wsss.clip import load_clip
    from wsss.devices import torch_device

    source = params.clip.source()
    checkpoint = args.checkpoint or os.environ.get("WSSS_CLIP_CHECKPOINT")
    device = torch_device(args.device, "--device") if args.device else torch_device(params.clip.device, "clip.device")
    precision = args.precision or params.clip.precision
    if args.random_init:
        source = replace(source, checkpoint=None, random_init=True)
        return load_clip(source, device, precision), "random initialisation (requested with --random-init)"
    if checkpoint:
        source = replace(source, checkpoint=Path(checkpoint), sha256=args.sha256 or source.sha256)
    if source.random_init:
        return load_clip(source, device, precision), "random initialisation (requested by clip.random_init)"
    try:
        loaded = load_clip(source, device, precision)
        where = f"checkpoint {source.checkpoint}" if source.checkpoint else f"open_clip tag {source.pretrained!r}"
        return loaded, where
    except CheckpointError as error:
        if source.checkpoint is not None:
            raise
        print(f"NOTE: {error}", file=sys.stderr)
        source = replace(source, random_init=True)
        return (
            load_clip(source, device, precision),
            (
                "RANDOM INITIALISATION: no CLIP weights were found, so the maps below are not meaningful "
                "(pass --checkpoint PATH/TO/ViT-B-16.pt for real CAMs)"
            ),
        )


def crf_available(wanted: bool) -> bool:
    """`wanted`, unless pydensecrf is missing: then a NOTE and masks without the dense CRF."""
    if wanted:
        try:
            import pydensecrf  # noqa: F401
        except ImportError:
            print("NOTE: pydensecrf is not installed; pseudo masks are made without dense CRF", file=sys.stderr)
            return False
    return wanted
