"""Loading CLIP weights: OpenAI formats, open_clip formats, integrity checks, offline errors.

Also the adapter contract with open_clip: at the native 224 grid the block-by-block runner must
reproduce open_clip's own image forward (guards against open_clip internals moving).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from tests.conftest import openai_format_state_dict
from wsss.clip import ClipSource, ClipVisionTower, file_sha256, load_clip
from wsss.errors import CheckpointError

TINY = "wsss-test-tiny-ViT"
"""open_clip config name of `tiny_clip` (registered by the `tiny_config` fixture): OpenAI-format
weights must match the architecture `clip.model_name` names."""
TINY_CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"layers": 2, "width": 64, "head_width": 64, "patch_size": 16, "image_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
}


@pytest.fixture(scope="module", autouse=True)
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("open_clip_configs") / f"{TINY}.json"
    path.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(path)
    return TINY


def tiny_clip() -> torch.nn.Module:
    """A 2-block ViT-B/16-shaped CLIP small enough to trace (widths multiples of 64 as OpenAI's)."""
    torch.manual_seed(0)
    model = open_clip.model.CLIP(
        embed_dim=TINY_CONFIG["embed_dim"],
        vision_cfg=CLIPVisionCfg(**TINY_CONFIG["vision_cfg"]),
        text_cfg=CLIPTextCfg(**TINY_CONFIG["text_cfg"]),
        quick_gelu=True,
    )
    return model.eval()


def assert_same_weights(loaded: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = loaded.state_dict()
    for name, tensor in expected.items():
        assert torch.equal(state[name].float(), tensor.float()), name


def test_openai_state_dict_file(tmp_path: Path) -> None:
    weights = openai_format_state_dict(tiny_clip())
    path = tmp_path / "tiny.pt"
    torch.save(weights, path)
    loaded = load_clip(ClipSource(model_name=TINY, checkpoint=path, sha256=file_sha256(path)))
    assert_same_weights(loaded.model, weights)
    assert loaded.model.visual.transformer.resblocks[0].mlp.gelu.__class__.__name__ == "QuickGELU"
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.identity()["checkpoint_sha256"] == file_sha256(path)
    assert loaded.identity()["checkpoint_format"] == "openai"


def test_openai_torchscript_archive(tmp_path: Path) -> None:
    model = tiny_clip()
    with torch.no_grad():  # OpenAI's archives hold fp16 values, which their loader keeps
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    tokens = open_clip.get_tokenizer("ViT-B-16")(["a photo"])
    traced = torch.jit.trace(model, (torch.randn(1, 3, 32, 32), tokens), check_trace=False, strict=False)
    path = tmp_path / "tiny_jit.pt"
    traced.save(str(path))
    loaded = load_clip(ClipSource(model_name=TINY, checkpoint=path))
    assert loaded.identity()["checkpoint_container"] == "torchscript"
    assert_same_weights(loaded.model, model.state_dict())


def test_scripted_archive_is_read_without_torch_jit_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`torch.jit.script` archives (typed lists via torch.jit._pickle) load too; TorchScript never runs."""
    model = tiny_clip()
    with torch.no_grad():  # fp16 values, as in OpenAI's archives (open_clip's builder rounds through fp16)
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    path = tmp_path / "tiny_script.pt"
    torch.jit.script(model).save(str(path))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.jit.load ran on a user file")

    monkeypatch.setattr(torch.jit, "load", refuse)
    loaded = load_clip(ClipSource(model_name=TINY, checkpoint=path))
    assert loaded.identity()["checkpoint_container"] == "torchscript"
    assert_same_weights(loaded.model, model.state_dict())


@pytest.mark.slow
def test_full_vit_b16_torchscript_archive_loads_the_same_weights_as_torch_jit(tmp_path: Path) -> None:
    """OpenAI's ViT-B-16.pt is a TorchScript archive of a QuickGELU ViT-B/16 with fp16 values: a
    faithful stand-in is open_clip's ViT-B-16-quickgelu scripted and saved the same way."""
    torch.manual_seed(11)
    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None).eval()
    scripted = torch.jit.script(model)
    scripted.half()
    path = tmp_path / "ViT-B-16.pt"
    scripted.save(str(path))
    expected = {name: tensor.float() for name, tensor in model.half().state_dict().items()}

    loaded = load_clip(ClipSource(model_name="ViT-B-16", checkpoint=path))
    assert loaded.identity()["checkpoint_container"] == "torchscript"
    state = loaded.model.state_dict()
    assert set(state) == set(expected)
    assert all(torch.equal(state[name], expected[name]) for name in expected)
    # The same tensors torch.jit.load's state_dict() gives (run here on our own file only).
    reference = torch.jit.load(str(path), map_location="cpu").state_dict()
    assert all(torch.equal(state[name], reference[name].float()) for name in expected)


def test_vit_b32_weights_are_refused_as_vit_b16(tmp_path: Path) -> None:
    """OpenAI-format files name no architecture; a ViT-B/32 must not be recorded as "ViT-B-16"."""
    from wsss.clip.architecture import architecture_of_config, architecture_of_openai_state_dict

    torch.manual_seed(5)
    path = tmp_path / "ViT-B-32.pt"
    weights = openai_format_state_dict(open_clip.create_model("ViT-B-32-quickgelu", pretrained=None))
    assert architecture_of_openai_state_dict(weights) == architecture_of_config("ViT-B-32")  # read right
    torch.save(weights, path)
    with pytest.raises(
        CheckpointError,
        match=r"ViT-B-32\.pt: the weights are a ViT patch 32.*'ViT-B-16' is a ViT patch 16"
        r".*differs in patch_size",
    ):
        load_clip(ClipSource(model_name="ViT-B-16", checkpoint=path))


def test_tiny_weights_are_refused_under_a_real_name_and_an_unknown_name(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(openai_format_state_dict(tiny_clip()), path)
    with pytest.raises(CheckpointError, match=r"tiny\.pt: the weights are a ViT patch 16, width 64, 2 layers, 32 px"):
        load_clip(ClipSource(model_name="ViT-B-16", checkpoint=path))
    with pytest.raises(CheckpointError, match=r"tiny\.pt: clip\.model_name 'ViT-X' is not an open_clip ViT"):
        load_clip(ClipSource(model_name="ViT-X", checkpoint=path))


def test_open_clip_training_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = open_clip.create_model("ViT-B-16", pretrained=None)
    path = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    loaded = load_clip(ClipSource(model_name="ViT-B-16", checkpoint=path))
    assert loaded.identity()["checkpoint_format"] == "open_clip"
    assert_same_weights(loaded.model, model.state_dict())


def test_sha256_mismatch_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(openai_format_state_dict(tiny_clip()), path)
    with pytest.raises(CheckpointError, match=r"tiny\.pt.*SHA-256"):
        load_clip(ClipSource(checkpoint=path, sha256="0" * 64))


def test_missing_file_says_how_to_provide_weights(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt.*clip\.checkpoint"):
        load_clip(ClipSource(checkpoint=tmp_path / "nope.pt"))


class NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    """Weights are loaded weights-only: a file that needs arbitrary unpickling is rejected."""
    path = tmp_path / "evil.pt"
    torch.save({"visual.proj": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_clip(ClipSource(checkpoint=path))


def test_non_clip_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not an OpenAI CLIP ViT"):
        load_clip(ClipSource(checkpoint=path))


def test_pretrained_tag_offline_fails_fast_with_instructions(caplog: pytest.LogCaptureFixture) -> None:
    """One sentence saying what is missing and what to do: no `ERROR:root:Failed to download
    weights` line from open_clip before it, no chain of library messages in it."""
    with caplog.at_level(logging.DEBUG), pytest.raises(CheckpointError, match=r"'openai'.*clip\.checkpoint") as raised:
        load_clip(ClipSource(model_name="ViT-B-16", pretrained="openai", allow_download=False))
    assert not [r for r in caplog.records if "Failed to download" in r.getMessage()], caplog.text
    message = str(raised.value)
    assert "not in the local cache" in message and "Last error" not in message and "\n" not in message
    assert raised.value.__cause__ is not None  # the library's errors stay on the cause, for log files


def test_check_weights_finds_what_load_clip_would_use_without_building_it(tmp_path: Path) -> None:
    from wsss.clip import check_weights

    assert check_weights(ClipSource(random_init=True, seed=3)) == "random-init(seed=3)"
    path = tmp_path / "ViT-B-16.pt"
    path.write_bytes(b"not read by the check")
    assert check_weights(ClipSource(checkpoint=path, random_init=True)) == "file:ViT-B-16.pt"  # the file wins, as in load_clip
    with pytest.raises(CheckpointError, match=r"missing\.pt: CLIP checkpoint not found"):
        check_weights(ClipSource(checkpoint=tmp_path / "missing.pt"))
    with pytest.raises(CheckpointError, match=r"'openai'.*not in the local cache.*clip\.random_init: true"):
        check_weights(ClipSource(pretrained="openai", allow_download=False))
    with pytest.raises(CheckpointError, match="no CLIP weights"):
        check_weights(ClipSource(pretrained=None))


def test_no_weights_configured_is_an_error() -> None:
    with pytest.raises(CheckpointError, match="no CLIP weights"):
        load_clip(ClipSource(pretrained=None))


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_low_precision_keeps_layer_norms_in_fp32(tmp_path: Path, precision: str) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(openai_format_state_dict(tiny_clip()), path)
    model = load_clip(ClipSource(model_name=TINY, checkpoint=path), precision=precision).model
    expected = torch.float16 if precision == "fp16" else torch.bfloat16
    assert model.visual.conv1.weight.dtype == expected
    assert model.visual.proj.dtype == expected
    assert model.visual.ln_post.weight.dtype == torch.float32
    assert model.visual.positional_embedding.dtype == torch.float32


def test_tower_reproduces_open_clip_forward_at_native_resolution() -> None:
    """Contract with open_clip: same tokens, same CLS feature as `model.encode_image` at 224."""
    torch.manual_seed(7)
    model = open_clip.create_model("ViT-B-16", pretrained=None).eval()
    tower = ClipVisionTower(model.visual, round_pos_embed_to_fp16=False)
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model.encode_image(pixels)
        ours = tower.pool_cls(tower.forward_features(pixels))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_positional_embedding_is_resized_bilinearly_and_rounded_to_fp16() -> None:
    model = tiny_clip()
    exact = ClipVisionTower(model.visual, round_pos_embed_to_fp16=False)
    quirk = ClipVisionTower(model.visual, round_pos_embed_to_fp16=True)
    table = model.visual.positional_embedding.detach()
    # Same grid: bilinear resize with align_corners=False is the identity.
    torch.testing.assert_close(exact.positional_embedding(2, 2), table)
    assert torch.equal(quirk.positional_embedding(2, 2), table.half().float())
    resized = exact.positional_embedding(3, 5)
    assert resized.shape == (1 + 15, table.shape[1])
    assert torch.equal(resized[0], table[0])  # the CLS row is kept as it is
    grid = table[1:].T.reshape(1, -1, 2, 2)
    expected = torch.nn.functional.interpolate(grid, size=(3, 5), mode="bilinear", align_corners=False)
    torch.testing.assert_close(resized[1:], expected.reshape(table.shape[1], -1).T)


def test_fp16_cast_normalises_every_layer_norm_in_fp32() -> None:
    """CUDA's layer_norm refuses fp16 activations with fp32 weights: the GPU check's first fp16 run
    failed in the text tower. After the cast every LayerNorm computes in fp32 and returns fp16."""
    import open_clip

    from wsss.clip.loading import LayerNormFp32, cast_for_inference

    torch.manual_seed(0)
    model = cast_for_inference(open_clip.create_model("ViT-B-16-quickgelu", pretrained=None).eval(), torch.float16)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(type(m) is LayerNormFp32 for m in norms)
    x = torch.randn(2, 3, 512).half()
    expected = torch.nn.functional.layer_norm(x.float(), (512,), model.ln_final.weight.float(), model.ln_final.bias.float())
    out = model.ln_final(x)
    assert out.dtype == torch.float16 and torch.equal(out, expected.half())
