"""Train a DeepLabV2 segmenter on pseudo masks with mmengine, and evaluate it with wsss's mIoU.

``train_segmenter`` = checked-in config (``Config.fromfile``) + plain overrides + optional
``cfg_options`` (``merge_from_dict``) -> ``Runner.from_cfg(cfg).train()``.
``evaluate_segmenter`` runs whole-image inference (`wsss_mmseg.inference`: optionally multi-scale,
max-fused as in deeplab-pytorch's MSC, optionally dense CRF) and scores it with :class:`wsss.metrics.ConfusionAccumulator`, the
same protocol as the pseudo-mask evaluation (docs/method.md, "mIoU").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner, find_latest_checkpoint

import wsss_mmseg  # noqa: F401  (registers the custom modules before any build)
from wsss.datasets.ground_truth import read_label_map
from wsss.imaging import load_rgb
from wsss.metrics import ConfusionAccumulator, SegmentationScores
from wsss.pseudo.crf import CrfParams
from wsss_mmseg.checkpoints import require_plain_checkpoints
from wsss_mmseg.datasets import read_split_ids
from wsss_mmseg.distributed import ReplicaCheckHook, start_process_group
from wsss_mmseg.inference import labels_from_logits, load_segmenter, predict_logits
from wsss_mmseg.progress import IterationCallback, IterationProgressHook
from wsss_mmseg.runner import QuietRunner, without_helper_variables
from wsss_mmseg.transforms import use_stored_orientation
from wsss_mmseg.validation import ValidationData, set_validation

__all__ = [
    "ValidationData",
    "build_train_config",
    "enable_amp",
    "evaluate_segmenter",
    "load_segmenter",
    "predict_logits",
    "score_segmenter_on",
    "score_segmenter_variants",
    "train_segmenter",
]

PathLike = str | Path


def _set_crop_size(cfg: Config, crop_size: int | tuple[int, int]) -> None:
    size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    cfg.model.data_preprocessor.size = size
    for step in cfg.train_dataloader.dataset.pipeline:
        if step["type"] == "RandomCrop":
            step["crop_size"] = size


def _set_max_iters(cfg: Config, max_iters: int) -> None:
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = max_iters + 1
    for scheduler in cfg.param_scheduler:
        if scheduler.get("by_epoch") is False and "end" in scheduler:
            scheduler["end"] = max_iters


def build_train_config(
    config_path: PathLike,
    work_dir: PathLike,
    *,
    data_root: PathLike,
    image_dir: str,
    mask_dir: str,
    split_file: str,
    class_names: Sequence[str],
    confidence_dir: str | None = None,
    palette: Sequence[Sequence[int]] | None = None,
    img_suffix: str | None = None,
    max_iters: int | None = None,
    batch_size: int | None = None,
    crop_size: int | tuple[int, int] | None = None,
    lr: float | None = None,
    seed: int | None = None,
    init_checkpoint: PathLike | None = None,
    load_from: PathLike | None = None,
    resume: bool = False,
    checkpoint_interval: int | None = None,
    num_workers: int | None = None,
    validation: ValidationData | None = None,
    cfg_options: Mapping[str, Any] | None = None,
) -> Config:
    """The training config: the file's values with the given overrides applied.

    Args:
        config_path: mmengine config, e.g. ``CONFIG_DIR / "deeplabv2_r101_voc_pseudo.py"``.
        work_dir: Logs and checkpoints.
        data_root: Folder the relative data paths below are joined to.
        image_dir: Images ``<id><img_suffix>``.
        mask_dir: Pseudo-mask PNGs ``<id>.png`` (255 = ignored).
        split_file: Ids to train on, one per line.
        class_names: Classes, background first; sets the head's ``num_classes``.
        confidence_dir: Confidence maps ``<id>.npy``; None trains on hard labels only.
        palette: RGB per class; None lets mmseg draw a fixed-seed palette.
        img_suffix: Image suffix; None keeps the config's (``.jpg`` for VOC).
        max_iters: Iterations; also the PolyLR horizon.
        batch_size: Images per iteration.
        crop_size: Training crop (``RandomCrop`` and the preprocessor's pad size).
        lr: Base learning rate (head x10 / x20 on top).
        seed: Global seed (``randomness``).
        init_checkpoint: Local backbone weights (``Pretrained`` init); never downloaded.
        load_from: Whole-model weights to start from (e.g. a COCO-pretrained DeepLab).
        resume: Continue from the latest checkpoint in ``work_dir``.
        checkpoint_interval: Iterations between checkpoints (the last is always saved).
        num_workers: Dataloader worker processes.
        validation: Images with ground truth to score every ``validation.interval`` iterations
            (and at the end) with :class:`~wsss_mmseg.validation.WsssIoUMetric`; the ``miou``
            lands in mmengine's scalars next to loss and lr (training curves). None: no
            validation, as the config files say.
        cfg_options: Dotted keys merged last (``merge_from_dict``), e.g.
            ``{"model.decode_head.loss_decode.balanced": True}``.

    Arguments left as None keep the config file's value.

    Returns:
        The config, ready for ``Runner.from_cfg``: the Runner's keys only
        (:func:`without_helper_variables`), so its dump shows the effective values.

    Raises:
        FileNotFoundError: If ``init_checkpoint`` does not exist.
    """
    cfg = Config.fromfile(str(config_path))
    cfg.work_dir = str(work_dir)
    dataset = cfg.train_dataloader.dataset
    dataset.data_root = str(data_root)
    dataset.ann_file = split_file
    dataset.data_prefix = dict(img_path=image_dir, seg_map_path=mask_dir, confidence_path=confidence_dir)
    dataset.pipeline = use_stored_orientation(dataset.pipeline)  # one decoding rule (no EXIF rotation)
    dataset.metainfo = dict(classes=tuple(class_names), palette=[list(map(int, color)) for color in palette] if palette is not None else None)
    if dataset.metainfo["palette"] is None:
        del dataset.metainfo["palette"]  # mmseg then draws a fixed-seed palette
    if img_suffix is not None:
        dataset.img_suffix = img_suffix
    cfg.model.decode_head.num_classes = len(class_names)
    if max_iters is not None:
        _set_max_iters(cfg, max_iters)
    if batch_size is not None:
        cfg.train_dataloader.batch_size = batch_size
    if num_workers is not None:
        cfg.train_dataloader.num_workers = num_workers
        cfg.train_dataloader.persistent_workers = num_workers > 0
    if crop_size is not None:
        _set_crop_size(cfg, crop_size)
    if lr is not None:
        cfg.optim_wrapper.optimizer.lr = lr
    if seed is not None:
        cfg.randomness = dict(seed=seed, deterministic=False)
    if checkpoint_interval is not None:
        cfg.default_hooks.checkpoint.interval = checkpoint_interval
    if validation is not None:
        set_validation(cfg, validation, class_names, img_suffix)
    if init_checkpoint is not None:
        # Local file only: nothing may be downloaded on the training machines.
        path = Path(init_checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"backbone checkpoint {path} does not exist")
        cfg.model.backbone.init_cfg = dict(type="Pretrained", checkpoint=str(path))
    cfg.load_from = None if load_from is None else str(load_from)
    cfg.resume = bool(resume)
    # mmengine keeps one visualizer / logger / message hub per *name* per process and hands an
    # existing instance back: a second run in the same process would write its scalars into
    # the first run's folder. Unique names keep runs apart.
    run_name = f"{Path(str(config_path)).stem}_{uuid.uuid4().hex[:8]}"
    cfg.experiment_name = run_name
    if cfg.get("visualizer") is not None:
        cfg.visualizer.name = f"visualizer_{run_name}"
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    return without_helper_variables(cfg)


def enable_amp(cfg: Config) -> Config:
    """Mixed-precision training, as MMSegmentation's ``tools/train.py --amp``.

    Switches ``optim_wrapper`` to mmengine's ``AmpOptimWrapper`` with a dynamic loss scale
    (a config that already uses it is left as it is).

    Raises:
        ValueError: If the config's optimizer wrapper is neither ``OptimWrapper`` nor
            ``AmpOptimWrapper``.
    """
    kind = cfg.optim_wrapper.get("type", "OptimWrapper")
    if kind == "AmpOptimWrapper":
        return cfg
    if kind != "OptimWrapper":
        raise ValueError(f"--amp needs optim_wrapper.type OptimWrapper, the config has {kind!r}")
    cfg.optim_wrapper.type = "AmpOptimWrapper"
    cfg.optim_wrapper.loss_scale = "dynamic"
    return cfg


def train_segmenter(cfg: Config, on_iteration: IterationCallback | None = None, quiet_console: bool = False) -> Path:
    """Train with mmengine's Runner from a :func:`build_train_config` config; return the last checkpoint.

    With ``resume=True`` in :func:`build_train_config`, the latest checkpoint in ``work_dir`` (its
    ``last_checkpoint`` file) restores weights, optimiser, iteration and LR-scheduler state; it is
    meant to continue an interrupted run with the same schedule (the restored PolyLR keeps the
    ``end`` it was saved with). Without a checkpoint there, training starts from scratch.
    `on_iteration(done, max_iters)`: progress (`wsss_mmseg.progress`). With `quiet_console`
    (the train stage), mmengine's INFO lines (environment, config, hooks, iteration logs) go to
    ``<work_dir>/<timestamp>/<timestamp>.log`` only and the console shows its warnings and errors
    (:class:`~wsss_mmseg.runner.QuietRunner`); without it (``train_cli``, as mmseg's tools/train.py)
    mmengine's console is left as it is.

    Returns:
        Path of the checkpoint written last (``<work_dir>/iter_<n>.pth``).

    Raises:
        FileNotFoundError: If ``init_checkpoint`` does not exist or training wrote none.
    """
    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    start_process_group(cfg)  # several processes on a host without CUDA (wsss_mmseg.distributed)
    # Checkpoints are plain data; every load reads them weights-only (wsss_mmseg.checkpoints).
    runner = (QuietRunner if quiet_console else Runner).from_cfg(require_plain_checkpoints(cfg))
    if on_iteration is not None:
        runner.register_hook(IterationProgressHook(on_iteration))
    if runner.distributed:
        runner.register_hook(ReplicaCheckHook())
    runner.train()
    last = find_latest_checkpoint(str(work_dir))
    if last is None:
        raise FileNotFoundError(f"training in {work_dir} wrote no checkpoint")
    return Path(last)


def score_segmenter(
    config_path: PathLike,
    checkpoint: PathLike,
    *,
    image_dir: PathLike,
    gt_dir: PathLike,
    split_file: PathLike,
    class_names: Sequence[str],
    img_suffix: str = ".jpg",
    gt_suffix: str = ".png",
    scales: Sequence[float] = (1.0,),
    device: str = "cpu",
    crf: CrfParams | None = None,
) -> SegmentationScores:
    """mIoU of a trained segmenter on a split, with the project's confusion-matrix protocol.

    Args:
        config_path: The training config (model definition).
        checkpoint: Trained weights (mmengine checkpoint).
        image_dir: Folder of ``<id><img_suffix>`` images.
        gt_dir: Folder of ``<id><gt_suffix>`` label PNGs (palette or index; 255 = not counted),
            read and checked by `wsss.datasets.read_label_map`.
        split_file: Ids, one per line (extra tokens ignored).
        class_names: Class names, background first; their number sets ``C``.
        img_suffix: Image suffix.
        gt_suffix: Ground-truth suffix.
        scales: Input scales, first 1.0; ``(1.0, 0.75, 0.5)`` is deeplab-pytorch's MSC test.
        device: Torch device.
        crf: dense-CRF post-processing of the softmax (deeplab-pytorch's test protocol, on the
            plain RGB image); None = argmax of the logits.

    Returns:
        The accumulated `SegmentationScores`.
    """
    ids = read_split_ids(Path(split_file).read_text().splitlines())
    foreground = len(class_names) - 1
    samples = [
        (Path(image_dir) / f"{image_id}{img_suffix}", partial(read_label_map, Path(gt_dir) / f"{image_id}{gt_suffix}", foreground))
        for image_id in ids
    ]
    return score_segmenter_on(config_path, checkpoint, samples, class_names=class_names, scales=scales, device=device, crf=crf)


def score_segmenter_on(
    config_path: PathLike,
    checkpoint: PathLike,
    samples: Sequence[tuple[Path, Callable[[], np.ndarray]]],
    *,
    class_names: Sequence[str],
    scales: Sequence[float] = (1.0,),
    device: str = "cpu",
    crf: CrfParams | None = None,
    on_image: Callable[[Path], None] | None = None,
) -> SegmentationScores:
    """`score_segmenter` on explicit `(image file, ground-truth reader)` pairs.

    The reader returns the image's validated ``(H, W)`` label map; the pipeline passes the one
    GT reader of `wsss.datasets` so the model is scored on exactly the pixels the maps are;
    `on_image` is told each image once it is scored (progress).
    """
    return score_segmenter_variants(
        config_path, checkpoint, samples, class_names=class_names, scales=scales, device=device, crfs=(crf,), on_image=on_image
    )[0]


def score_segmenter_variants(
    config_path: PathLike,
    checkpoint: PathLike,
    samples: Sequence[tuple[Path, Callable[[], np.ndarray]]],
    *,
    class_names: Sequence[str],
    scales: Sequence[float] = (1.0,),
    device: str = "cpu",
    crfs: Sequence[CrfParams | None] = (None,),
    on_image: Callable[[Path], None] | None = None,
) -> list[SegmentationScores]:
    """`score_segmenter_on` for several post-processings at once: one forward per image, whose
    logits give every variant (`crfs[i]` None: arg-max; else dense CRF), one score per variant.

    The labels are those of `predict_image` with that `crf` (the same logits, the same
    `labels_from_logits`), so evaluating `crf=off` and `crf=on` together runs the model once.
    """
    model = load_segmenter(config_path, checkpoint, num_classes=len(class_names), device=device)
    accumulators = [ConfusionAccumulator(len(class_names)) for _ in crfs]
    for image_path, read_ground_truth in samples:
        image = np.asarray(load_rgb(image_path))  # as training decodes it: raw pixel grid, no EXIF rotation
        gt = read_ground_truth().astype(np.int64)
        logits = predict_logits(model, image, scales)  # the one prediction path (`wsss predict` too)
        for accumulator, crf in zip(accumulators, crfs, strict=True):
            accumulator.update(gt, labels_from_logits(image, logits, crf).labels)
        if on_image is not None:
            on_image(image_path)
    return [accumulator.scores() for accumulator in accumulators]


def evaluate_segmenter(config_path: PathLike, checkpoint: PathLike, **kwargs: Any) -> dict[str, Any]:
    """`score_segmenter` as a JSON-friendly dict (`SegmentationScores.to_dict`) plus scales and count."""
    scores = score_segmenter(config_path, checkpoint, **kwargs)
    result = scores.to_dict(kwargs["class_names"])
    result["scales"] = [float(scale) for scale in kwargs.get("scales", (1.0,))]
    result["num_images"] = len(read_split_ids(Path(kwargs["split_file"]).read_text().splitlines()))
    return result
