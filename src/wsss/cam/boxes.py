"""Class-aware box mask of CAA: union of the bounding boxes of a CAM's high-score contours.

Reproduces the reference's `scoremap2bbox(multi_contour_eval=True)` (docs/method.md, "CAA"):
the map is cast to uint8 (`cam * 255`, truncated), thresholded strictly above
`int(threshold * max)`, every contour of `cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)`
gives a box, and each box's right/bottom edge is clamped to `size - 1` and used as an
exclusive slice end. That last quirk means the last token row and column are never inside a
box. No contour gives an empty mask.
"""

from __future__ import annotations

import cv2
import numpy as np


def contour_boxes(cam: np.ndarray, threshold: float) -> list[tuple[int, int, int, int]]:
    """Boxes `(x0, y0, x1, y1)` (x1, y1 exclusive, clamped to size - 1) of a CAM's contours.

    Shape: `cam` is `(h, w)` with values in [0, 1].
    """
    if cam.ndim != 2:
        raise ValueError(f"expected a 2-D map, got shape {cam.shape}")
    height, width = cam.shape
    scores = (np.asarray(cam, dtype=np.float32) * 255).astype(np.uint8)
    cutoff = int(threshold * scores.max())
    # THRESH_BINARY keeps pixels strictly greater than the cutoff.
    binary = np.where(scores > cutoff, 255, 0).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append((x, y, min(x + w, width - 1), min(y + h, height - 1)))
    return boxes


def box_mask(cam: np.ndarray, threshold: float) -> np.ndarray:
    """Binary `(h, w)` mask: 1 inside the union of `contour_boxes(cam, threshold)`."""
    mask = np.zeros(cam.shape, dtype=bool)
    for x0, y0, x1, y1 in contour_boxes(cam, threshold):
        mask[y0:y1, x0:x1] = True
    return mask
