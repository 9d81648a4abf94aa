"""The `train` params section and what the core knows about a training run (no mmseg here).

The mmseg config file (`train.config`) is the one source of a training recipe. The `train.*`
recipe keys override it only when set: null keeps the file's value, so selecting the reference
recipe file trains with its own schedule, batch, crop and lr. `wsss_mmseg.recipe` reads back the
effective values, which `model.json` and `wsss lineage` record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from wsss.datasets import Manifest
from wsss.errors import ConfigError
from wsss.settings import check_fields, setting

# The recipe keys of the section, in the order `build_train_config` takes them.
RECIPE_KEYS = ("max_iters", "batch_size", "crop_size", "lr", "seed")


@dataclass(frozen=True)
class TrainSettings:
    """DeepLabV2 training on the pseudo masks (MMSegmentation; see `wsss_mmseg`)."""

    SECTION: ClassVar[str] = "train"

    config: str = setting(
        "src/wsss_mmseg/configs/deeplabv2_tiny_cpu.py",
        "mmseg config, the source of the recipe (reference: src/wsss_mmseg/configs/deeplabv2_r101_voc_pseudo.py)",
    )
    max_iters: int | None = setting(None, "iterations (also the PolyLR horizon); null = the config's", ge=1, le=10_000_000)
    batch_size: int | None = setting(None, "images per iteration; null = the config's", ge=1, le=4096)
    crop_size: int | None = setting(None, "training crop side; null = the config's", ge=8, le=8192)
    lr: float | None = setting(None, "base learning rate; null = the config's", gt=0.0, le=10.0)
    seed: int | None = setting(None, "global seed; null = the config's", ge=0, le=2**32 - 1)
    init_checkpoint: str | None = setting(None, "local backbone weights (ImageNet/COCO init cannot be downloaded here)")
    use_confidence: bool = setting(True, "feed the confidence maps to the CGL loss (else only the 255-encoding)")
    checkpoint_interval: int | None = setting(None, "iterations between checkpoints (the resume points); null = the config's", ge=1, le=10_000_000)
    val_max_images: int = setting(
        100,
        "images with ground truth scored by the validation during training (the mIoU curve): an evenly spaced "
        "subset in image-id order when more have ground truth; 0 = no validation",
        ge=0,
        le=10_000_000,
        identity=False,
    )
    val_interval: int | None = setting(
        None,
        "iterations between validations during training (the last iteration is always validated); null = the checkpoint interval",
        ge=1,
        le=10_000_000,
        identity=False,
    )
    msc_training: bool = setting(False, "deeplab-pytorch's multi-scale training (losses at 1, 0.75, 0.5 and their max)")
    test_scales: tuple[float, ...] = setting((1.0,), "scales fused (max) at evaluation", gt=0.0, le=8.0)
    test_crf: bool = setting(True, "also score the model after dense CRF (with pseudo.crf_params)")
    device: str = setting("cpu", "cpu or cuda", check=lambda value: None if value.split(":")[0] in ("cpu", "cuda") else "must be cpu or cuda[:N]")

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.test_scales:
            raise ConfigError("train.test_scales must list at least one scale")

    def recipe_overrides(self) -> dict[str, Any]:
        """The recipe keys that are set (they replace the config file's values)."""
        return {key: getattr(self, key) for key in RECIPE_KEYS if getattr(self, key) is not None}


def validation_subset(ids: Sequence[str], limit: int) -> list[str]:
    """At most `limit` of `ids` (sorted), evenly spaced over the sorted list, so a dataset ordered by
    class or source is sampled across its whole range; the same ids every run (no seed involved)."""
    ordered = sorted(ids)
    if limit <= 0:
        return []
    if len(ordered) <= limit:
        return ordered
    return [ordered[(index * len(ordered)) // limit] for index in range(limit)]


def common_image_dir(manifest: Manifest) -> tuple[str, str]:
    """The single folder and suffix of the manifest's images (mmseg datasets need one)."""
    folders = {str(Path(r.image_path).parent) for r in manifest.records}
    suffixes = {Path(r.image_path).suffix for r in manifest.records}
    if len(folders) != 1 or len(suffixes) != 1:
        raise ConfigError(f"training needs all images in one folder with one suffix; found {sorted(folders)} {sorted(suffixes)}")
    return folders.pop(), suffixes.pop()
