"""Tests of wsss.text.vocabulary, wsss.text.templates and wsss.imaging (sizes, pixels, decoding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wsss.errors import ConfigError, ImageError
from wsss.imaging import CLIP_MEAN, CLIP_STD, clip_input_size, clip_pixels, load_rgb
from wsss.text.templates import check_template, default_candidate_templates, imagenet_templates
from wsss.text.vocabulary import ClassVocabulary, coco_vocabulary, voc_vocabulary

# ---------------------------------------------------------------- vocabulary


def test_voc_vocabulary_sizes_and_synonyms() -> None:
    """20 classes, 25 background words, four fused synonym strings, the rest unchanged."""
    vocab = voc_vocabulary()
    assert vocab.num_classes == 20
    assert len(vocab.class_names) == len(vocab.prompt_names) == 20
    assert len(vocab.background_words) == 25
    prompts = dict(zip(vocab.class_names, vocab.prompt_names, strict=True))
    assert prompts["bird"] == "bird avian"
    assert prompts["chair"] == "chair seat"
    assert prompts["person"] == "person with clothes,people,human"
    assert prompts["tvmonitor"] == "tvmonitor screen"
    changed = {name for name, prompt in prompts.items() if name != prompt}
    assert changed == {"bird", "chair", "person", "tvmonitor"}
    assert vocab.class_names[0] == "aeroplane" and vocab.class_names[-1] == "tvmonitor"
    assert {"keyboard", "sign", "ground", "bridge"} <= set(vocab.background_words)


def test_coco_vocabulary_sizes_and_quirks() -> None:
    """80 classes, 23 background words without keyboard/sign, the reference's synonyms and typo."""
    vocab = coco_vocabulary()
    assert vocab.num_classes == 80
    assert len(vocab.background_words) == 23
    assert "keyboard" not in vocab.background_words
    assert "sign" not in vocab.background_words
    assert "keyboard" in vocab.class_names
    prompts = dict(zip(vocab.class_names, vocab.prompt_names, strict=True))
    assert prompts["snowboard"] == "sknowboard"
    assert prompts["tie"] == "necktie"
    assert prompts["baseball glove"] == "glove"
    assert prompts["spoon"] == "dessertspoon"
    assert prompts["remote"] == "remote control"
    assert prompts["hair drier"] == "hairdrier,blowdrier"
    assert prompts["person"] == "person with clothes,people,human"
    assert prompts["cat"] == "cat"


def test_class_id_and_unknown_name() -> None:
    """Ids are 0-based positions; an unknown name raises ConfigError naming it."""
    vocab = voc_vocabulary()
    assert vocab.class_id("aeroplane") == 0
    assert vocab.class_id("person") == 14
    with pytest.raises(ConfigError, match="unicorn"):
        vocab.class_id("unicorn")


def test_synonyms_for_unknown_class_raise() -> None:
    """Synonyms must refer to listed classes."""
    with pytest.raises(ConfigError, match="dragon"):
        ClassVocabulary.build(["cat", "dog"], {"dragon": "wyrm"})


def test_build_defaults_prompt_to_name() -> None:
    """Without synonyms the prompt name is the class name; background words default to none."""
    vocab = ClassVocabulary.build(["cat", "dog"], {"dog": "dog,puppy"})
    assert vocab.prompt_names == ("cat", "dog,puppy")
    assert vocab.background_words == ()


@pytest.mark.parametrize("names", [[], ["cat", "cat"]])
def test_invalid_class_lists_raise(names: list[str]) -> None:
    """An empty or duplicated class list is a ConfigError."""
    with pytest.raises(ConfigError):
        ClassVocabulary.build(names)


# ---------------------------------------------------------------- templates


def test_imagenet_templates() -> None:
    """80 ImageNet templates, each with exactly one placeholder."""
    templates = imagenet_templates()
    assert len(templates) == 80
    assert all(t.count("{}") == 1 for t in templates)
    assert len(set(templates)) == 80


def test_default_candidates_include_reference_template() -> None:
    """The candidates hold the ImageNet templates plus the reference's "a clean origami {}."."""
    candidates = default_candidate_templates()
    assert "a clean origami {}." in candidates
    assert set(imagenet_templates()) <= set(candidates)
    assert len(candidates) == len(set(candidates))


@pytest.mark.parametrize("template", ["no placeholder", "{} {}"])
def test_check_template_rejects(template: str) -> None:
    """A template needs exactly one "{}"."""
    with pytest.raises(ConfigError):
        check_template(template)


def test_check_template_accepts() -> None:
    """A valid template is returned unchanged."""
    assert check_template("a photo of a {}.") == "a photo of a {}."


# ---------------------------------------------------------------- input size


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((375, 500), None, (384, 512)),  # ceil(375/16)=24 -> 384; ceil(500/16)=32 -> 512
        ((512, 512), None, (512, 512)),  # already multiples of 16
        ((1, 1), None, (16, 16)),  # ceil(1/16)=1 -> 16
        ((375, 500), 1024, (384, 512)),  # within max_side: unchanged rule
        ((3000, 4000), 1024, (768, 1024)),  # scale 1024/4000 = .256: 768, 1024 (both multiples of 16)
    ],
)
def test_clip_input_size(size: tuple[int, int], max_side: int | None, expected: tuple[int, int]) -> None:
    """Each side rounds up to the patch size, after the optional downscale."""
    assert clip_input_size(*size, max_side=max_side) == expected


@pytest.mark.parametrize("size", [(0, 5), (5, 0)])
def test_clip_input_size_rejects_empty(size: tuple[int, int]) -> None:
    """A zero side is an ImageError."""
    with pytest.raises(ImageError):
        clip_input_size(*size)


# ---------------------------------------------------------------- pixels


def test_clip_pixels_solid_colour() -> None:
    """A solid colour stays solid after resizing; each channel is (v/255 - mean) / std."""
    colour = (10, 128, 250)
    image = Image.new("RGB", (2, 2), colour)
    pixels = clip_pixels(image, (16, 16))
    assert pixels.shape == (3, 16, 16)
    assert pixels.dtype == torch.float32
    for channel in range(3):
        value = (colour[channel] / 255 - CLIP_MEAN[channel]) / CLIP_STD[channel]
        np.testing.assert_allclose(pixels[channel].numpy(), np.full((16, 16), value), atol=1e-6, rtol=0)


def test_clip_pixels_equal_torchvision_steps_bit_for_bit() -> None:
    """ToTensor (HWC uint8 -> CHW float / 255) then Normalize, as the reference computes them."""
    skimage_data = pytest.importorskip("skimage.data")
    image = Image.fromarray(skimage_data.astronaut()).resize((500, 375), Image.BICUBIC)
    resized = image.resize((512, 384), Image.BICUBIC)
    expected = torch.from_numpy(np.array(resized, dtype=np.uint8)).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    expected = expected.sub_(torch.tensor(CLIP_MEAN).view(3, 1, 1)).div_(torch.tensor(CLIP_STD).view(3, 1, 1))
    assert torch.equal(clip_pixels(image, (384, 512)), expected)
    with pytest.raises(ImageError, match="RGB"):
        clip_pixels(image.convert("L"), (16, 16))


def test_clip_pixels_size_is_height_width() -> None:
    """`size` is (h, w): a (16, 32) request gives 16 rows and 32 columns."""
    image = Image.new("RGB", (5, 3), (0, 0, 0))
    assert clip_pixels(image, (16, 32)).shape == (3, 16, 32)


# ---------------------------------------------------------------- decoding


def test_load_rgb_empty_file(tmp_path: Path) -> None:
    """A zero-byte file is an ImageError naming the path."""
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert str(path) in str(info.value)


def test_load_rgb_truncated_png(tmp_path: Path) -> None:
    """A PNG cut in half is an ImageError naming the path (not a silently partial image)."""
    noise = np.random.default_rng(3).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    whole = tmp_path / "whole.png"
    Image.fromarray(noise).save(whole)
    data = whole.read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert str(path) in str(info.value)


def test_load_rgb_missing_file(tmp_path: Path) -> None:
    """A missing file is an ImageError naming the path."""
    path = tmp_path / "absent.png"
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert str(path) in str(info.value)


def test_load_rgb_grayscale(tmp_path: Path) -> None:
    """Mode L loads as RGB with the grey value on all three channels."""
    path = tmp_path / "grey.png"
    Image.new("L", (3, 2), 77).save(path)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (3, 2)
    np.testing.assert_array_equal(np.asarray(image), np.full((2, 3, 3), 77, dtype=np.uint8))


def test_load_rgb_rgba(tmp_path: Path) -> None:
    """RGBA loads as RGB with the alpha channel dropped."""
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (2, 2), (10, 20, 30, 40)).save(path)
    image = load_rgb(path)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), np.broadcast_to(np.array([10, 20, 30], np.uint8), (2, 2, 3)))


def test_load_rgb_16_bit(tmp_path: Path) -> None:
    """16-bit grey scales by 255/65535: 257*v -> v exactly (65535 = 255 * 257)."""
    values = np.array([[0, 257 * 77], [257 * 128, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # stored and decoded as 16-bit
    image = load_rgb(path)
    assert image.mode == "RGB"
    expected = np.array([[0, 77], [128, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(image), np.repeat(expected[..., None], 3, axis=2))


def test_load_rgb_16_bit_dark_image_is_not_stretched(tmp_path: Path) -> None:
    """A dark 16-bit image keeps its level: 257*100 everywhere -> 100, not stretched to 255."""
    path = tmp_path / "dark.png"
    Image.fromarray(np.full((2, 2), 257 * 100, dtype=np.uint16)).save(path)
    np.testing.assert_array_equal(np.asarray(load_rgb(path)), np.full((2, 2, 3), 100, dtype=np.uint8))
