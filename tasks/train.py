"""train: DeepLabV2 (MMSegmentation) on the pseudo masks with the confidence-guided loss.

Training runs in a scratch work dir keyed by its inputs, so an interrupted run resumes from its
last checkpoint (mmengine `resume`) even though DVC empties the stage output first; the final
checkpoint and logs are then copied into the output.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from tasks.common import PSEUDO_DIR, SCRATCH, write_json
from wsss.config import TrainSettings
from wsss.datasets import Manifest
from wsss.errors import ConfigError
from wsss.plots import training_curve_rows
from wsss.provenance import sha256_of
from wsss.review.corrections import CorrectionStore, ImageSpec
from wsss.review.sources import ReviewLayout
from wsss.review.training_labels import stage_training_labels
from wsss.viz import voc_palette


def common_image_dir(manifest: Manifest) -> tuple[str, str]:
    """The single folder and suffix of the manifest's images (mmseg datasets need one)."""
    folders = {str(Path(r.image_path).parent) for r in manifest.records}
    suffixes = {Path(r.image_path).suffix for r in manifest.records}
    if len(folders) != 1 or len(suffixes) != 1:
        raise ConfigError(f"training needs all images in one folder with one suffix; found {sorted(folders)} {sorted(suffixes)}")
    return folders.pop(), suffixes.pop()


MAX_VALIDATION_IMAGES = 500


def validation_data(manifest: Manifest, dataset_root: Path, image_folder: str, work_dir: Path, interval: int) -> Any:
    """The val loop's images (training curves): up to 500 with ground truth in one folder, else None."""
    from wsss_mmseg.training import ValidationData

    scored = [r for r in manifest.records if r.ground_truth_path][:MAX_VALIDATION_IMAGES]
    folders = {str(Path(r.ground_truth_path).parent) for r in scored}
    suffixes = {Path(r.ground_truth_path).suffix for r in scored}
    if not scored or len(folders) != 1 or len(suffixes) != 1:
        return None
    split = work_dir / "val.txt"
    split.write_text("".join(f"{r.image_id}\n" for r in scored))
    return ValidationData(image_dir=str(dataset_root / image_folder), gt_dir=str(dataset_root / folders.pop()),
                          split_file=str(split.resolve()), interval=interval, gt_suffix=suffixes.pop())


def write_curves(work_dir: Path, output: Path) -> None:
    """Loss, lr and validation mIoU by iteration (mmengine's scalars, every resumed part) as DVC plot files."""
    logs = [path.read_text() for path in sorted(work_dir.glob("*/vis_data/scalars.json"))]
    train_rows, val_rows = training_curve_rows(logs)
    write_json(output / "train.json", train_rows)
    if val_rows:
        write_json(output / "val.json", val_rows)


@task(cache_policy=NONE)
def train_deeplab(
    manifest: Manifest, dataset_root: Path, settings: TrainSettings, output: Path, lineage: dict[str, Any]
) -> dict[str, Any]:
    """Train and copy the last checkpoint to `output/model.pth`; returns what was trained on."""
    from wsss_mmseg.training import build_train_config, train_segmenter

    folder, suffix = common_image_dir(manifest)
    ids = [r.image_id for r in manifest.records if r.tags]
    # Human corrections replace pseudo masks (confidence 1); without any, the pseudo folders are used as they are.
    specs = {r.image_id: ImageSpec(r.image_id, r.width, r.height, r.sha256) for r in manifest.records}
    labels = stage_training_labels(ids, specs, PSEUDO_DIR / "masks", PSEUDO_DIR / "confidence",
                                   CorrectionStore(ReviewLayout().corrections), SCRATCH / "train-labels")
    key = {"settings": settings, **lineage, **({"corrections": labels.digest} if labels.used else {})}
    work_dir = SCRATCH / f"train-{sha256_of(key)[:16]}"
    work_dir.mkdir(parents=True, exist_ok=True)
    split = work_dir / "split.txt"
    split.write_text("".join(f"{image_id}\n" for image_id in ids))
    validation = validation_data(manifest, dataset_root, folder, work_dir, settings.checkpoint_interval)
    class_names: Sequence[str] = ["background", *manifest.class_names]
    checkpoint = train_segmenter(build_train_config(
        Path(settings.config).resolve(),
        work_dir.resolve(),
        data_root=Path(".").resolve(),
        image_dir=str(dataset_root / folder),
        mask_dir=str(labels.mask_dir),
        confidence_dir=str(labels.confidence_dir) if settings.use_confidence else None,
        split_file=str(split.resolve()),
        class_names=class_names,
        palette=[list(map(int, c)) for c in voc_palette()[: len(class_names)]],
        img_suffix=suffix,
        max_iters=settings.max_iters,
        batch_size=settings.batch_size,
        crop_size=settings.crop_size,
        lr=settings.lr,
        seed=settings.seed,
        init_checkpoint=settings.init_checkpoint,
        resume=True,
        checkpoint_interval=settings.checkpoint_interval,
        num_workers=0,
        validation=validation,
        cfg_options={"model.type": "MultiScaleEncoderDecoder"} if settings.msc_training else None,
    ))
    output.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(checkpoint, output / "model.pth")
    for log in sorted(work_dir.rglob("*.log"))[-1:]:
        shutil.copyfile(log, output / "train.log")
    write_curves(work_dir, output / "curves")
    shutil.rmtree(work_dir, ignore_errors=True)
    return {"checkpoint": str(output / "model.pth"), "trained_iterations": settings.max_iters,
            "num_images": len(ids), "class_names": list(class_names), "corrections": labels.summary()}
