"""Overlays for visual checks: CAM heat maps and label maps in the VOC palette."""

from __future__ import annotations

import cv2
import numpy as np


def voc_palette(num_colors: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map, `(num_colors, 3)` uint8 (label 255 -> near white)."""
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for label in range(num_colors):
        value, red, green, blue = label, 0, 0, 0
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[label] = (red, green, blue)
    return palette


def cam_overlay(rgb: np.ndarray, cam: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Blend a `(H, W)` map in [0, 1] as a jet heat map over an `(H, W, 3)` uint8 image."""
    heat = cv2.applyColorMap(np.clip(cam * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    return (rgb.astype(np.float32) * (1 - weight) + heat.astype(np.float32) * weight).astype(np.uint8)


def label_overlay(rgb: np.ndarray, labels: np.ndarray, weight: float = 0.6) -> np.ndarray:
    """Blend a `(H, W)` uint8 label map (VOC palette) over an `(H, W, 3)` uint8 image."""
    colors = voc_palette()[labels]
    blended = rgb.astype(np.float32) * (1 - weight) + colors.astype(np.float32) * weight
    keep = labels == 0
    blended[keep] = rgb[keep]
    return blended.astype(np.uint8)


def tile_horizontally(panels: list[np.ndarray]) -> np.ndarray:
    """Panels of equal height side by side."""
    return np.concatenate(panels, axis=1)


def overlay_strip(rgb: np.ndarray, maps: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """image | one heat map per tag | the label map (when given), side by side: `(H, W * n, 3)` uint8."""
    panels = [rgb, *(cam_overlay(rgb, cam) for cam in maps)]
    if labels is not None:
        panels.append(label_overlay(rgb, labels))
    return tile_horizontally(panels)
