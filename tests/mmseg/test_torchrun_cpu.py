"""`torchrun --nproc_per_node=2 -m wsss_mmseg.train_cli ... --launcher pytorch` on a host without CUDA.

The command of docs/training.md (multi-GPU), run here on 2 CPU processes: gloo, plain BN, DDP
without device ids (`wsss_mmseg.distributed`). Both ranks must hold the same parameters after
training (every rank's SHA-256, gathered and logged by rank 0, and the checkpoint rank 0 wrote),
and a resumed run must continue the iteration count from the checkpoint, the ranks equal again.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmseg")

from tests.mmseg.test_mmseg_training import CLASSES, TINY_CONFIG, synthetic_data, train_cli_argv  # noqa: F401  (fixture)
from wsss_mmseg.distributed import configure_launcher, parameters_digest
from wsss_mmseg.train_cli import build_config, parse_args

DIGESTS = re.compile(r"replica check after iteration (\d+): parameters sha256 per rank \[([^\]]*)\]")
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _argv(root: Path, work_dir: Path) -> list[str]:
    return train_cli_argv(root, work_dir, "--seed", "0", "--batch-size", "1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(arguments: list[str], timeout: float = 300) -> str:
    """The documented command with 2 processes; its whole process group is killed on a timeout."""
    command = [
        str(Path(sys.executable).with_name("torchrun")),
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "wsss_mmseg.train_cli",
        *arguments,
        "--launcher",
        "pytorch",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as error:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"torchrun did not finish in {timeout} s:\n{output[-4000:]}") from error
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, output[-6000:]
    return output


def _rank_digests(output: str) -> tuple[int, list[str]]:
    ((iteration, digests),) = {(int(i), d) for i, d in DIGESTS.findall(output)}  # rank 0's line (console and log)
    return iteration, [d.strip(" '") for d in digests.split(",")]


def _checkpoint_parameters_digest(path: Path) -> str:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return parameters_digest((k, v) for k, v in state.items() if not k.endswith(BN_BUFFERS))


@pytest.mark.slow
def test_two_cpu_processes_train_identical_replicas_and_resume(synthetic_data: Path, tmp_path: Path) -> None:
    # 2 of 4 scheduled iterations (the schedule's end stays 4, as for an interrupted run), then resume.
    first = _torchrun(
        [*_argv(synthetic_data, tmp_path), "--max-iters", "4", "--cfg-options", "train_cfg.max_iters=2", "default_hooks.checkpoint.interval=2"]
    )
    assert "Distributed training: True" in first
    iteration, digests = _rank_digests(first)
    assert iteration == 2 and len(digests) == 2 and digests[0] == digests[1]
    assert _checkpoint_parameters_digest(tmp_path / "iter_2.pth") == digests[0]
    assert re.search(r"Iter\(train\) \[2/2\]", first)

    second = _torchrun([*_argv(synthetic_data, tmp_path), "--max-iters", "4", "--resume"])
    assert "resumed epoch: 0, iter: 2" in second
    assert re.search(r"Iter\(train\) \[3/4\]", second) and re.search(r"Iter\(train\) \[4/4\]", second)
    assert not re.search(r"Iter\(train\) \[1/4\]", second)
    iteration, resumed = _rank_digests(second)
    assert iteration == 4 and resumed[0] == resumed[1] != digests[0]  # trained on, still one set of weights
    checkpoint = torch.load(tmp_path / "iter_4.pth", map_location="cpu", weights_only=True)
    assert checkpoint["meta"]["iter"] == 4
    assert _checkpoint_parameters_digest(tmp_path / "iter_4.pth") == resumed[0]


def test_the_launcher_keeps_nccl_and_syncbn_where_cuda_is(synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = TINY_CONFIG.with_name("deeplabv2_r101_voc_pseudo.py")
    argv = [str(recipe), *_argv(synthetic_data, tmp_path)[1:], "--launcher", "pytorch"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = build_config(parse_args(argv))
    assert cfg.launcher == "pytorch" and cfg.env_cfg.dist_cfg.backend == "nccl"
    assert cfg.model.backbone.norm_cfg.type == "SyncBN"  # the recipe's only norm layers
    assert cfg.get("model_wrapper_cfg") is None  # mmengine's DDP on the process's GPU


def test_the_launcher_on_a_host_without_cuda_uses_gloo_and_plain_bn(synthetic_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = TINY_CONFIG.with_name("deeplabv2_r101_voc_pseudo.py")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = build_config(parse_args([str(recipe), *_argv(synthetic_data, tmp_path)[1:], "--launcher", "pytorch"]))
    assert cfg.env_cfg.dist_cfg.backend == "gloo"
    assert cfg.model.backbone.norm_cfg.type == "BN"
    assert cfg.model_wrapper_cfg.device_ids is None
    single = build_config(parse_args([str(recipe), *_argv(synthetic_data, tmp_path)[1:]]))
    assert single.launcher == "none" and single.env_cfg.dist_cfg.backend == "nccl" and single.get("model_wrapper_cfg") is None
    with pytest.raises(ValueError, match="torchrun and --launcher pytorch"):
        configure_launcher(build_config(parse_args([str(recipe), *_argv(synthetic_data, tmp_path)[1:]])), "slurm")
