"""SemPLeS prompt learning: the loss by hand, and a few steps on a random-init tiny open_clip."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from wsss.errors import ConfigError
from wsss.imaging import CLIP_MEAN, CLIP_STD
from wsss.prompts.decode import nearest_words, report_markdown
from wsss.prompts.learning import (
    BackgroundPrompts,
    LearnPromptsSettings,
    cosine_learning_rate,
    encode_context_prompts,
    freeze,
    learned_background_embeddings,
    mask_at_clip_size,
    masked_background_features,
    prompt_learning_loss,
    prompt_tokens,
    refinement_penalty,
    scaled_learning_rate,
    train_background_prompts,
)


def tiny_clip(seed: int = 0) -> open_clip.CLIP:
    torch.manual_seed(seed)
    vision = open_clip.CLIPVisionCfg(layers=2, width=64, head_width=32, patch_size=16, image_size=64)
    text = open_clip.CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=2, layers=2)
    return open_clip.CLIP(embed_dim=32, vision_cfg=vision, text_cfg=text)


def state_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def test_loss_matches_hand_computed_values() -> None:
    background = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    prompt = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    names = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    loss = prompt_learning_loss(background, prompt, names, lambda_prompt=0.02)
    # sims(bg, prompt) = [1/sqrt2, 1 -> clamped 0.9999]; sims(name, prompt) = [1/sqrt2, 0 -> clamped 1e-4]
    match = -(math.log(1 / math.sqrt(2)) + math.log(0.9999)) / 2
    push = (math.log(1 / math.sqrt(2)) + math.log(1e-4)) / 2
    assert loss.match.item() == pytest.approx(match, rel=1e-6)
    assert loss.push.item() == pytest.approx(push, rel=1e-6)
    assert loss.total.item() == pytest.approx(match + 0.02 * push, rel=1e-6)


def test_refinement_penalty_by_hand() -> None:
    foreground = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    prompt = torch.tensor([[4.0, 3.0], [-1.0, 0.0]])
    penalty = refinement_penalty(foreground, prompt)
    assert penalty.tolist() == pytest.approx([-math.log(1 - 24 / 25), -math.log(1 - 1e-4)], rel=1e-6, abs=1e-7)


def test_learning_rate_follows_the_semples_scripts() -> None:
    assert scaled_learning_rate(LearnPromptsSettings()) == pytest.approx(0.1 * 128 / 512)
    assert cosine_learning_rate(0.02, 0, 60) == pytest.approx(0.02)
    assert cosine_learning_rate(0.02, 30, 60) == pytest.approx(0.01)
    assert cosine_learning_rate(0.02, 45, 60) == pytest.approx(0.01 * (1 - math.sqrt(0.5)))


def test_mask_is_resized_and_min_maxed_with_semples_epsilon() -> None:
    mask = torch.tensor([[0.0, 2.0], [2.0, 4.0]])
    resized = mask_at_clip_size(mask, 3)
    assert resized.shape == (3, 3)
    assert resized[0, 0].item() == 0.0 and resized[2, 2].item() == pytest.approx(4 / (4 + 1e-4))
    assert resized[1, 1].item() == pytest.approx(2 / (4 + 1e-4))


def test_context_prompt_encoding_equals_encode_text_when_context_is_the_words() -> None:
    model = freeze(tiny_clip())
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    tokens = prompt_tokens(tokenizer, "a photo of", 2)
    assert tokens.context_positions.tolist() == [4, 5]
    words = tokenizer(["a photo of water river."])
    context = model.token_embedding(words[0, 4:6])[None]
    ours = encode_context_prompts(model, tokens, context)
    assert torch.allclose(ours, model.encode_text(words), atol=1e-5)


def test_too_many_context_tokens_are_refused() -> None:
    with pytest.raises(ConfigError, match="does not fit"):
        prompt_tokens(open_clip.get_tokenizer("ViT-B-16"), "a photo of", 80)
    with pytest.raises(ConfigError, match="mask_source"):
        LearnPromptsSettings(mask_source="boxes")


def test_a_few_steps_on_a_photo_reduce_the_loss_and_leave_clip_unchanged() -> None:
    from skimage import data

    model = freeze(tiny_clip())
    before = state_hash(model)
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    photo = torch.from_numpy(np.asarray(data.astronaut(), dtype=np.float32) / 255).permute(2, 0, 1)
    pixels = F.interpolate(photo[None], (64, 64), mode="bilinear", align_corners=False)
    rows, cols = torch.meshgrid(torch.arange(512), torch.arange(512), indexing="ij")
    person = ((rows > 60) & (cols > 100) & (cols < 420)).float()  # hand mask of the astronaut
    masks = torch.stack([mask_at_clip_size(person, 64), mask_at_clip_size(1 - person, 64)])
    background = masked_background_features(model, pixels.expand(2, -1, -1, -1), masks, CLIP_MEAN, CLIP_STD)
    class_ids = torch.tensor([0, 1])
    with torch.no_grad():
        names = F.normalize(model.encode_text(tokenizer(["a photo of person.", "a photo of sky."])), dim=-1)
    settings = LearnPromptsSettings(enabled=True, context_tokens=4, epochs=8, batch_size=2, lr=10.0)
    tokens = prompt_tokens(tokenizer, settings.prefix, settings.context_tokens)
    prompts = BackgroundPrompts(2, settings.context_tokens, model.token_embedding.weight.shape[1], settings.init_scale, 0)
    start = prompts.context.detach().clone()
    record = train_background_prompts(model, tokens, prompts, background, class_ids, names, settings)
    assert len(record.losses) == 8 and len(record.step_seconds) == 8, record.losses
    assert record.losses[-1] < record.losses[0] - 1e-3
    assert not torch.equal(prompts.context.detach(), start)
    assert state_hash(model) == before
    embeddings = learned_background_embeddings(model, tokens, prompts)
    assert embeddings.shape == (2, 32) and torch.allclose(embeddings.norm(dim=-1), torch.ones(2))
    decoded = nearest_words(prompts.context.detach(), model.token_embedding.weight, tokenizer, ["person", "sky"], top_k=3)
    assert [d.class_name for d in decoded] == ["person", "sky"] and len(decoded[0].words) == 4
    assert all(len(w) == 3 and w[0] for w in decoded[0].words)
    assert "| person |" in report_markdown(decoded, settings.prefix, {"steps": 8})


def test_training_refuses_an_unfrozen_clip() -> None:
    model = tiny_clip()
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    settings = LearnPromptsSettings(context_tokens=2, max_steps=1)
    prompts = BackgroundPrompts(1, 2, 64, 0.02, 0)
    with pytest.raises(ConfigError, match="frozen"):
        train_background_prompts(
            model,
            prompt_tokens(tokenizer, "a photo of", 2),
            prompts,
            torch.ones(1, 32),
            torch.zeros(1, dtype=torch.long),
            torch.ones(1, 32),
            settings,
        )


def test_a_context_made_of_word_embeddings_decodes_to_those_words() -> None:
    model = tiny_clip()
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    ids = tokenizer(["water river"])[0, 1:3]
    context = model.token_embedding.weight[ids].detach()[None]
    decoded = nearest_words(context, model.token_embedding.weight.detach(), tokenizer, ["boat"], top_k=2)
    assert [words[0] for words in decoded[0].words] == ["water", "river"]
    assert decoded[0].similarities[0][0] == pytest.approx(1.0, abs=1e-5)
