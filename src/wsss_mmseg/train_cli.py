"""Command-line training with mmengine's launcher, for multi-GPU (DDP) runs.

Single process:  python -m wsss_mmseg.train_cli CONFIG --work-dir W --data-root . --image-dir ... ...
Multi-GPU (DDP): torchrun --nproc_per_node=4 -m wsss_mmseg.train_cli CONFIG ... --launcher pytorch
As MMSegmentation's tools/train.py: --amp (mixed precision, mmengine's AmpOptimWrapper) and
--cfg-options key=value ... (dotted config keys merged last, e.g. default_hooks.logger.interval=10
optim_wrapper.optimizer.momentum=0.95 'model.backbone.dilations=(1,1,2,4)').
With a launcher the set-up is `wsss_mmseg.distributed`'s: on a CUDA host mmengine's Runner starts
the process group (the config's backend, NCCL in the recipe) and BatchNorm becomes SyncBN; on a host
without CUDA the same torchrun command trains on gloo with plain BN (CPU processes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmengine.config import Config, DictAction

from wsss_mmseg.distributed import configure_launcher
from wsss_mmseg.training import build_train_config, enable_amp, train_segmenter


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m wsss_mmseg.train_cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=Path("."))
    parser.add_argument("--image-dir", required=True)
    parser.add_argument("--mask-dir", required=True)
    parser.add_argument("--confidence-dir")
    parser.add_argument("--split-file", required=True)
    parser.add_argument("--classes", required=True, help="comma-separated class names, background first")
    parser.add_argument("--img-suffix")
    parser.add_argument("--max-iters", type=int)
    parser.add_argument("--batch-size", type=int, help="per GPU")
    parser.add_argument("--crop-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--init-checkpoint", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision (mmengine AmpOptimWrapper)")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        metavar="KEY=VALUE",
        help="override config keys (merged last): xxx=yyy, a list as key=a,b or key=[a,b], a tuple as key=(a,b)",
    )
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    """The training config from the command line: file, paths, overrides, --cfg-options, --amp, launcher."""
    cfg = build_train_config(
        args.config,
        args.work_dir,
        data_root=args.data_root,
        image_dir=args.image_dir,
        mask_dir=args.mask_dir,
        confidence_dir=args.confidence_dir,
        split_file=args.split_file,
        class_names=args.classes.split(","),
        img_suffix=args.img_suffix,
        max_iters=args.max_iters,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        lr=args.lr,
        seed=args.seed,
        init_checkpoint=args.init_checkpoint,
        resume=args.resume,
        cfg_options=args.cfg_options,
    )
    if args.amp:
        enable_amp(cfg)
    return configure_launcher(cfg, args.launcher)


def main(argv: list[str] | None = None) -> int:
    cfg = build_config(parse_args(argv))
    print(f"last checkpoint: {train_segmenter(cfg)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
