"""Loading CLIP for a stage, with the error users see when weights are missing."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from wsss.cam import ClipEsCamExtractor
from wsss.cam.extractor import LearnedBackground
from wsss.clip import LoadedClip, load_clip
from wsss.config import CoreConfig
from wsss.datasets import Manifest
from wsss.errors import ConfigError


@task(cache_policy=NONE)
def load_clip_task(config: CoreConfig) -> LoadedClip:
    """Load the configured weights; a missing checkpoint stops the stage naming `clip.checkpoint`."""
    loaded = load_clip(config.clip, config.device, config.precision)
    logger = get_run_logger()
    if config.clip.random_init:
        logger.warning("CLIP weights: RANDOM INITIALISATION (clip.random_init: true); maps are not meaningful")
    else:
        logger.info("CLIP weights: %s", loaded.identity())
    return loaded


def extractor_for(
    config: CoreConfig, clip: LoadedClip, manifest: Manifest, templates: tuple[str, ...], learned: LearnedBackground | None = None
) -> ClipEsCamExtractor:
    """An extractor whose vocabulary must be the manifest's class list (`learned`: SemPLeS background prompts)."""
    if tuple(config.vocabulary.class_names) != tuple(manifest.class_names):
        raise ConfigError(
            f"classes in params ({len(config.vocabulary.class_names)}: {', '.join(config.vocabulary.class_names[:5])}, ...) "
            f"differ from the dataset manifest's ({len(manifest.class_names)}: {', '.join(manifest.class_names[:5])}, ...); "
            "set `classes` to the dataset's classes"
        )
    from dataclasses import replace

    options = {} if learned is None else {
        "learned_background": learned.embeddings, "background_mode": learned.mode, "rescore_weight": learned.rescore_weight
    }
    return ClipEsCamExtractor(clip, config.vocabulary, replace(config.cam, templates=templates), config.caa, **options)
