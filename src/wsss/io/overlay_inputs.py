"""Gather what one overlay shows from the pipeline's stores (`wsss.viz.OverlayInputs`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from wsss.io.cam_store import CamStore
from wsss.viz import OverlayInputs

RANDOM_INIT_PREFIX = "random-init"


def weights_are_random(clip_identity: Mapping[str, Any] | None) -> bool:
    """True when a recorded CLIP identity (`LoadedClip.identity()`) says the weights were random."""
    if not clip_identity:
        return False
    return str(clip_identity.get("weights", "")).startswith(RANDOM_INIT_PREFIX)


def stored_overlay_inputs(
    image_id: str,
    rgb: np.ndarray,
    refined: CamStore,
    class_names: Sequence[str],
    *,
    cams: CamStore | None = None,
    pseudo_labels: np.ndarray | None = None,
    ground_truth: np.ndarray | None = None,
) -> OverlayInputs:
    """Refined maps and tags from `refined`; tag probabilities and the weights' identity from `cams`.

    Args:
        image_id: The image.
        rgb: Its pixels, `(H, W, 3)` uint8.
        refined: The refined store (maps `(K, H, W)` and the `tags` attribute).
        class_names: Foreground class names of the vocabulary (label i + 1).
        cams: The CAM store, for `tag_probabilities` and the `clip` root attribute; None leaves
            the probabilities out and the weights unmarked.
        pseudo_labels: The pseudo mask `(H, W)` (`PseudoMaskStore.labels`), or None: no mask panel.
        ground_truth: Ground-truth labels, or None.
    """
    stored = refined.read(image_id, ["refined"])
    probabilities, random_weights, weights = None, False, ""
    if cams is not None and image_id in cams:
        cam_image = cams.read(image_id, [])
        probabilities = cam_image.attrs.get("tag_probabilities")
        clip = cams.root_attrs(cam_image.shard).get("clip")
        random_weights = weights_are_random(clip)
        weights = str(clip.get("weights", "")) if isinstance(clip, Mapping) else ""
    title = image_id + (f"  |  CLIP weights: {weights}" if weights else "")
    return OverlayInputs(
        rgb=rgb,
        maps=stored.arrays["refined"],
        tags=list(stored.attrs.get("tags", [])),
        class_names=class_names,
        probabilities=probabilities,
        pseudo_labels=pseudo_labels,
        ground_truth=ground_truth,
        random_weights=random_weights,
        title=title,
    )
