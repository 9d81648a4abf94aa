"""Loading CLIP for a stage (saying which weights), and the CAM extractor of a pass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from prefect import get_run_logger

from tasks.runtime import in_flow
from wsss.cam import ClipEsCamExtractor
from wsss.cam.extractor import LearnedBackground
from wsss.clip import LoadedClip, load_clip
from wsss.devices import torch_device
from wsss.params import Params
from wsss.stage_inputs import check_classes


def load_stage_clip(params: Params) -> LoadedClip:
    """Load the configured weights; a device this machine lacks stops the stage naming `clip.device`
    before anything is loaded, a missing checkpoint naming `clip.checkpoint`."""
    loaded = load_clip(params.clip.source(), torch_device(params.clip.device, "clip.device"), params.clip.precision)
    if in_flow():
        if params.clip.random_init:
            get_run_logger().warning("CLIP weights: RANDOM INITIALISATION (clip.random_init: true); maps are not meaningful")
        else:
            get_run_logger().info("CLIP weights: %s", loaded.identity())
    return loaded


def cam_extractor(
    params: Params, clip: LoadedClip, class_names: Sequence[str], templates: tuple[str, ...], learned: LearnedBackground | None = None
) -> ClipEsCamExtractor:
    """The extractor of a pass for a dataset's classes (`learned`: SemPLeS background prompts of the second pass)."""
    check_classes(params, class_names)
    settings = replace(params.cam, templates=templates)
    if learned is None:
        return ClipEsCamExtractor(clip, params.vocabulary, settings, params.caa)
    return ClipEsCamExtractor(
        clip,
        params.vocabulary,
        settings,
        params.caa,
        learned_background=learned.embeddings,
        background_mode=learned.mode,
        rescore_weight=learned.rescore_weight,
    )
