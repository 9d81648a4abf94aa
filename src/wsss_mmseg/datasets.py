"""Segmentation dataset: images + pseudo masks (+ optional confidence maps), any class list."""

from __future__ import annotations

import os.path as osp
from collections.abc import Sequence
from typing import Any, ClassVar

import mmengine
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

__all__ = ["PseudoMaskDataset", "read_split_ids"]


def read_split_ids(lines: Sequence[str]) -> list[str]:
    """Image ids of a split file: the first whitespace-separated token of each non-empty line.

    CLIP-ES's COCO split files carry class indices after the id (``"id 0 14"``), VOC ones only
    the id; both work.

    Args:
        lines: The file's lines.

    Returns:
        The ids, in file order.
    """
    return [line.split()[0] for line in lines if line.strip()]


@DATASETS.register_module()
class PseudoMaskDataset(BaseSegDataset):
    """Images with pseudo-mask PNGs (255 = ignored) and optional per-pixel confidence maps.

    The class list is not fixed: pass ``metainfo=dict(classes=[...], palette=[...])`` (VOC's
    21, COCO's 81, the embedded sample's list...). Because ``METAINFO`` names no classes,
    mmseg builds no label map, so mask values are used as they are.

    Layout (paths relative to ``data_root`` unless absolute)::

        data_prefix["img_path"]/<id><img_suffix>
        data_prefix["seg_map_path"]/<id><seg_map_suffix>
        data_prefix["confidence_path"]/<id><confidence_suffix>   (optional)
        ann_file: one id per line (extra tokens after the id are ignored)

    Args:
        ann_file: Split file; when empty, every image under ``img_path`` is used.
        img_suffix: Image file suffix.
        seg_map_suffix: Pseudo-mask suffix.
        confidence_suffix: Confidence map suffix (``.npy`` float or ``.png`` uint8).
        data_prefix: ``img_path``, ``seg_map_path`` and optionally ``confidence_path``
            (absent, None or "" = no confidence maps).
        **kwargs: Other ``BaseSegDataset`` arguments (``metainfo``, ``data_root``,
            ``pipeline``, ``test_mode``...).

    Raises:
        ValueError: If ``metainfo`` names no classes.
        FileNotFoundError: If the split file is missing.
    """

    METAINFO: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        ann_file: str = "",
        img_suffix: str = ".jpg",
        seg_map_suffix: str = ".png",
        confidence_suffix: str = ".npy",
        data_prefix: dict[str, str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        metainfo = kwargs.get("metainfo") or {}
        if not metainfo.get("classes"):
            raise ValueError("PseudoMaskDataset needs metainfo=dict(classes=[...]) (background first)")
        prefix = dict(data_prefix or dict(img_path="", seg_map_path=""))
        # mmengine joins every prefix with data_root and rejects non-strings: drop an unset one.
        if not prefix.get("confidence_path"):
            prefix.pop("confidence_path", None)
        self.confidence_suffix = confidence_suffix
        super().__init__(ann_file=ann_file, img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, data_prefix=prefix, **kwargs)

    def _image_ids(self, img_dir: str) -> list[str]:
        if self.ann_file and not osp.isdir(self.ann_file):
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f"split file {self.ann_file} does not exist")
            lines = mmengine.list_from_file(self.ann_file, backend_args=self.backend_args)
            return read_split_ids(lines)
        names = mmengine.fileio.list_dir_or_file(dir_path=img_dir, list_dir=False, suffix=self.img_suffix, recursive=True)
        return sorted(name[: -len(self.img_suffix)] for name in names)

    def load_data_list(self) -> list[dict[str, Any]]:
        """One data info per id: image, pseudo mask and (if configured) confidence paths."""
        img_dir = self.data_prefix.get("img_path", "")
        mask_dir = self.data_prefix.get("seg_map_path")
        confidence_dir = self.data_prefix.get("confidence_path")
        data_list = []
        for image_id in self._image_ids(img_dir):
            info: dict[str, Any] = dict(img_path=osp.join(img_dir, image_id + self.img_suffix))
            if mask_dir is not None:
                info["seg_map_path"] = osp.join(mask_dir, image_id + self.seg_map_suffix)
            if confidence_dir:
                name = image_id + self.confidence_suffix
                info["confidence_path"] = osp.join(confidence_dir, name)
            info["label_map"] = self.label_map
            info["reduce_zero_label"] = self.reduce_zero_label
            info["seg_fields"] = []
            data_list.append(info)
        return data_list
