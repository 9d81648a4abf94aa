"""Training on several processes (`torchrun ... --launcher pytorch`): the one place that sets it up.

mmengine's Runner starts the process group in `Runner.setup_env` -> `mmengine.dist.init_dist` only
when none exists yet, and `init_dist` calls `torch.cuda.set_device(LOCAL_RANK)` first, which dies
on a machine without CUDA. So, for the same command on either kind of host:

* **CUDA present**: nothing changes in mmengine's path: the config's `env_cfg.dist_cfg` backend
  (NCCL in the recipe), one GPU per process, BatchNorm becomes SyncBN (statistics pooled
  across GPUs);
* **no CUDA** (torchrun on CPU hosts): `start_process_group` creates the gloo group from
  torchrun's environment (`RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`) before the Runner is
  built, so `init_dist` is skipped; BatchNorm stays plain BN (torch's SyncBN needs a GPU), so each
  rank's running statistics come from its own batches (the checkpoint, written by rank 0, holds
  rank 0's), and DDP wraps the CPU model without `device_ids`.

Either way gradients are averaged across ranks, so every rank holds the same parameters:
`ReplicaCheckHook` checks that at the end of every run (SHA-256 of each rank's parameters,
gathered and logged by rank 0) and fails the run when they differ.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

NORMALISED_PARTS = ("backbone", "decode_head")


def configure_launcher(cfg: Any, launcher: str) -> Any:
    """Set `cfg.launcher` and what a multi-process run on this host needs (see the module doc)."""
    cfg.launcher = launcher
    if launcher == "none":
        return cfg
    if torch.cuda.is_available():
        for part in NORMALISED_PARTS:
            if "norm_cfg" in cfg.model[part]:
                cfg.model[part].norm_cfg = dict(type="SyncBN", requires_grad=True)
        return cfg
    if launcher != "pytorch":
        raise ValueError(
            f"--launcher {launcher} needs CUDA on this host; without it, start the processes with torchrun and --launcher pytorch (gloo)"
        )
    dist_cfg = dict(cfg.get("env_cfg", {}).get("dist_cfg", {}))
    dist_cfg["backend"] = "gloo"
    cfg.env_cfg = dict(cfg.get("env_cfg", {}), dist_cfg=dist_cfg)
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(
            type="MMDistributedDataParallel",
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get("find_unused_parameters", False),
        )
    return cfg


def start_process_group(cfg: Any) -> None:
    """Before `Runner.from_cfg`: the gloo process group of a run on a host without CUDA (no-op
    otherwise: single process, CUDA hosts (mmengine starts theirs), or a group that exists)."""
    if cfg.get("launcher", "none") == "none" or torch.cuda.is_available() or torch_dist.is_initialized():
        return
    dist_cfg = dict(cfg.get("env_cfg", {}).get("dist_cfg", {}))
    timeout = dist_cfg.get("timeout")
    options: dict[str, Any] = {"timeout": datetime.timedelta(seconds=timeout)} if timeout is not None else {}
    torch_dist.init_process_group(backend="gloo", rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]), **options)


def parameters_digest(named_parameters: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over the parameters' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(named_parameters, key=lambda item: item[0]):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


class ReplicaCheckHook(Hook):
    """After training: every rank's parameter digest, gathered, logged by rank 0; a mismatch fails the run."""

    priority = "VERY_LOW"

    def after_train(self, runner: Any) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        digests = all_gather_object(parameters_digest(model.named_parameters()))
        rank, world_size = get_dist_info()
        message = f"replica check after iteration {runner.iter}: parameters sha256 per rank {digests}"
        runner.logger.info(message)
        if len(set(digests)) != 1:
            raise RuntimeError(f"the {world_size} ranks hold different parameters (rank {rank}): {message}")
