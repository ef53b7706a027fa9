"""The pieces unCLIP's graphs are made of: the last-step denoiser of the sampling loop, the decoder's conditioning
against diffusers' text projection, and CLIP reranking."""
from __future__ import annotations

import torch
from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel as ReferenceTextProj

from dgraph.models import UnCLIPTextProjModel
from dgraph.sampling import sample
from dgraph.schedulers import UnCLIPScheduler
from dgraph.types import Image, ImageEmbedding, TextEmbedding
from nodes.clip import clip_rerank
from nodes.unclip import unclip_decoder_conditioning


def test_the_final_denoiser_makes_only_the_last_step():
    calls = []

    def first(x, t):
        calls.append(("first", int(t)))
        return torch.zeros_like(x)

    def last(x, t):
        calls.append(("last", int(t)))
        return torch.zeros_like(x)

    run = UnCLIPScheduler().start(4)
    sample(first, run, torch.ones(1, 3, 2, 2), generator=torch.Generator().manual_seed(0), final_denoiser=last)
    assert calls == [("first", 999), ("first", 666), ("first", 333), ("last", 0)]


def test_decoder_conditioning_equals_the_text_projection_of_diffusers(tmp_path):
    torch.manual_seed(0)
    reference = ReferenceTextProj(clip_extra_context_tokens=2, clip_embeddings_dim=6, time_embed_dim=8,
                                  cross_attention_dim=5)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(torch.randn(parameter.shape) * 0.3)
    reference.save_pretrained(tmp_path)
    ours = UnCLIPTextProjModel.from_pretrained(tmp_path)
    g = torch.Generator().manual_seed(1)
    prompts, per_prompt = 2, 3
    image = torch.randn(prompts * per_prompt, 6, generator=g)
    text = [torch.randn(prompts, 6, generator=g), torch.randn(prompts, 4, 6, generator=g)]
    empty = [torch.randn(prompts, 6, generator=g), torch.randn(prompts, 4, 6, generator=g)]
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]]).bool()
    empty_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0]]).bool()
    cond, uncond = unclip_decoder_conditioning(
        ours, ImageEmbedding(image), TextEmbedding(text[1], mask, text[0]), TextEmbedding(empty[1], empty_mask,
                                                                                          empty[0]), per_prompt)
    # UnCLIPPipeline's batch: [uncond; cond], each prompt's rows repeated for its images.
    def rows(t):
        return t.repeat_interleave(per_prompt, dim=0)
    with torch.no_grad():
        context, time = reference(image_embeddings=image, prompt_embeds=torch.cat([rows(empty[0]), rows(text[0])]),
                                  text_encoder_hidden_states=torch.cat([rows(empty[1]), rows(text[1])]),
                                  do_classifier_free_guidance=True)
    n = prompts * per_prompt
    assert (cond.hidden_states - context[n:]).abs().max() < 1e-6 and (cond.pooled - time[n:]).abs().max() < 1e-6
    # The unconditional branch is the same for every image: one row per prompt.
    assert (uncond.hidden_states - context[:n:per_prompt]).abs().max() < 1e-6
    assert (uncond.pooled - time[:n:per_prompt]).abs().max() < 1e-6
    assert cond.attention_mask.tolist() == [[True, True] + m for m in rows(mask).tolist()]


def test_rerank_keeps_each_prompts_best_first():
    images = Image(torch.arange(6.0).reshape(6, 1, 1, 1).expand(6, 3, 2, 2))
    scores = torch.tensor([[0.1, 0.9], [0.5, 0.0], [0.3, 0.0], [0.0, 0.2], [0.9, 0.7], [0.0, 0.8]])
    kept = clip_rerank(images, scores, keep=2)
    assert kept.tensor[:, 0, 0, 0].tolist() == [1.0, 2.0, 5.0, 4.0]
    assert clip_rerank(images, scores).tensor[:, 0, 0, 0].tolist() == [1.0, 2.0, 0.0, 5.0, 4.0, 3.0]
