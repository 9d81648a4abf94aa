"""The refine stage's per-image callback (`wsss.cam.refine_stored.RefineStored`) and its device setting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wsss.cam import CaaSettings, refine_image
from wsss.cam.refine_stored import REFINED_ATTRS, RefineStored
from wsss.errors import ConfigError
from wsss.io import CamStore, ShardWriter, shard_path
from wsss.settings import build_section

GRID = (6, 8)


def peaked_attention(rng: np.random.Generator, tokens: int) -> np.ndarray:
    """Row-stochastic attention with a few strong entries per row, stored as float16 like the stage."""
    logits = rng.normal(size=(tokens, tokens)) * 4
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float16)


@pytest.fixture
def cam_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    directory = tmp_path / "cams"
    with ShardWriter(shard_path(directory, 0), {"stage": "cams"}) as writer:
        for index, tags in enumerate(((3,), (8, 15))):
            gradcam = rng.random((len(tags), *GRID)).astype(np.float16)
            attrs = {
                "class_ids": list(tags),
                "tags": [f"t{t}" for t in tags],
                "original_size": [45 + index, 61],
                "grid": list(GRID),
                "source_path": f"img{index}.jpg",
                "source_sha256": "0" * 64,
            }
            writer.add(
                f"img{index}",
                {"gradcam": gradcam, "attention": peaked_attention(rng, GRID[0] * GRID[1])},
                attrs,
                {"gradcam": np.float16, "attention": np.float16},
            )
    return directory


def test_refines_what_is_stored_at_the_original_size_with_the_stage_attributes(cam_dir: Path) -> None:
    settings = CaaSettings()
    store = CamStore(cam_dir)
    for image_id, size in (("img0", (45, 61)), ("img1", (46, 61))):
        output = RefineStored(cam_dir, settings)(image_id)
        stored = store.read(image_id, ["gradcam", "attention"])
        expected = refine_image(torch.from_numpy(stored.arrays["gradcam"]), torch.from_numpy(stored.arrays["attention"]), size, settings)
        assert output.arrays["refined"].shape == (len(stored.attrs["class_ids"]), *size)
        np.testing.assert_array_equal(output.arrays["refined"], expected.numpy())
        assert set(output.attrs) == set(REFINED_ATTRS)
        assert output.attrs["source_path"] == stored.attrs["source_path"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where no CUDA device exists")
def test_cuda_without_a_device_is_an_error_naming_the_key(cam_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"caa\.device is 'cuda' but torch sees no CUDA device"):
        RefineStored(cam_dir, CaaSettings(device="cuda"))("img0")


@pytest.mark.parametrize("value", ["gpu", "cuda0", "mps", "", "CPU"])
def test_an_unknown_device_is_refused_when_params_are_read(value: str) -> None:
    with pytest.raises(ConfigError, match=r"caa\.device"):
        build_section(CaaSettings, {"device": value}, "caa")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_caa_on_cuda_equals_caa_on_the_cpu(cam_dir: Path) -> None:
    """Box masks come from the same host maps; the affinity products differ only by float32 rounding."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for image_id in ("img0", "img1"):
            on_cpu = RefineStored(cam_dir, CaaSettings())(image_id)
            on_gpu = RefineStored(cam_dir, CaaSettings(device="cuda"))(image_id)
            assert on_gpu.attrs == on_cpu.attrs
            np.testing.assert_allclose(on_gpu.arrays["refined"], on_cpu.arrays["refined"], atol=1e-5)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.mark.parametrize(
    ("cuda_devices", "reason"),
    [
        (0, r"is 'cuda:7' but torch sees no CUDA device here \(set {key}: cpu\)"),
        (1, r"is 'cuda:7' but torch sees 1 CUDA device\(s\) here, cuda:0 to cuda:0 \(set {key}: cuda:0, or cpu\)"),
    ],
)
def test_a_device_this_machine_lacks_is_refused_naming_the_key_before_clip_loads(
    monkeypatch: pytest.MonkeyPatch, cam_dir: Path, cuda_devices: int, reason: str
) -> None:
    """`clip.device: cuda:7` used to end in a torch traceback (exit 1); one rule for clip.device and caa.device."""
    from tasks.clip_model import load_stage_clip
    from wsss.clip.settings import ClipSettings
    from wsss.params import Params

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_devices > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_devices)
    monkeypatch.setattr("tasks.clip_model.load_clip", lambda *args, **kwargs: pytest.fail("CLIP was loaded"))
    with pytest.raises(ConfigError, match=r"^clip\.device " + reason.format(key=r"clip\.device") + "$"):
        load_stage_clip(Params().replace(clip=ClipSettings(device="cuda:7", random_init=True)))
    with pytest.raises(ConfigError, match=r"^caa\.device " + reason.format(key=r"caa\.device") + "$"):
        RefineStored(cam_dir, CaaSettings(device="cuda:7"))("img0")
