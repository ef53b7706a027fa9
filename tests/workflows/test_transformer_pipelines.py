"""DiT and PixArt-α as graphs against diffusers' DiTPipeline and PixArtAlphaPipeline, on small random
components built by diffusers (and a tiny T5 built by transformers) saved in the pipeline layout."""
from __future__ import annotations

import json
from pathlib import Path

import diffusers
import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

from dgraph.cli import main
from dgraph.errors import DgraphError
from dgraph.graph import Graph
from dgraph.node import derive_seed
from dgraph.pipelines import export_text

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
ID2LABEL = {"0": "tench, Tinca tinca", "1": "goldfish, Carassius auratus", "2": "great white shark, white shark",
            "3": "tiger shark, Galeocerdo cuvieri", "207": "golden retriever", "292": "tiger, Panthera tigris"}
WORDS = ["a", "small", "cactus", "with", "happy", "face", "the", "sea", "at", "night", "red", "fox"]


def _tiny_vae(seed: int):
    torch.manual_seed(seed)
    blocks = 4  # factor 8, as the real pipelines' autoencoders
    return diffusers.AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8,) * blocks, layers_per_block=1,
                                   latent_channels=4, norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * blocks,
                                   up_block_types=("UpDecoderBlock2D",) * blocks, scaling_factor=0.6)


def _perturbed(model, seed: int):
    """Zero-initialised layers (adaLN-Zero's modulation, the output projections) made non-zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


@pytest.fixture(scope="module")
def dit(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dit")
    torch.manual_seed(0)
    transformer = _perturbed(diffusers.DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2, sample_size=4,
        patch_size=2, num_embeds_ada_norm=1000), 1)
    scheduler = diffusers.DDIMScheduler(clip_sample=False)
    diffusers.DiTPipeline(transformer=transformer, vae=_tiny_vae(2), scheduler=scheduler).save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "id2label": ID2LABEL}, indent=2))
    return folder


def _t5_tokenizer():
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("▁" + w, -1.0 - i / 10) for i, w in enumerate(WORDS)]
    pieces += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz,"] + [("▁", -3.0)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return transformers.T5TokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", pad_token="<pad>",
                                        unk_token="<unk>", extra_ids=0), len(pieces)


def _pixart_folder(folder: Path, multi_aspect: bool) -> Path:
    tokenizer, vocab = _t5_tokenizer()
    torch.manual_seed(3)
    text_encoder = transformers.T5EncoderModel(transformers.T5Config(
        vocab_size=vocab, d_model=10, d_kv=4, d_ff=16, num_layers=2, num_heads=2, pad_token_id=0, eos_token_id=1))
    extra = dict(sample_size=128, use_additional_conditions=True, interpolation_scale=2) if multi_aspect else \
        dict(sample_size=4)
    transformer = _perturbed(diffusers.PixArtTransformer2DModel(
        num_attention_heads=2, attention_head_dim=6, in_channels=4, out_channels=8, num_layers=2,
        cross_attention_dim=12, patch_size=2, caption_channels=10, **extra), 4)
    pipe = diffusers.PixArtAlphaPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=_tiny_vae(5),
                                         transformer=transformer, scheduler=diffusers.DPMSolverMultistepScheduler())
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pixart(tmp_path_factory) -> Path:
    return _pixart_folder(tmp_path_factory.mktemp("pixart"), multi_aspect=False)


@pytest.fixture(scope="module")
def pixart_ms(tmp_path_factory) -> Path:
    return _pixart_folder(tmp_path_factory.mktemp("pixart-ms"), multi_aspect=True)


def _to_np(image):
    return (image.tensor / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("guidance_scale", [1.0, 4.0])
def test_dit_equals_diffusers(dit, guidance_scale):
    names = ["tiger shark", "golden retriever", "tench"]
    ours = Graph.from_pretrained(dit).execute(outputs=["image"], class_labels=names, seed=5, steps=4,
                                              guidance_scale=guidance_scale).image
    pipe = diffusers.DiTPipeline.from_pretrained(dit)
    generator = torch.Generator().manual_seed(derive_seed(5, "noise"))
    theirs = pipe(class_labels=pipe.get_label_ids(names), guidance_scale=guidance_scale, generator=generator,
                  num_inference_steps=4, output_type="np").images
    assert ours.tensor.shape == (3, 3, 32, 32)
    assert abs(_to_np(ours) - theirs).max() < 1e-4


def test_an_unknown_class_name_lists_close_matches(dit):
    with pytest.raises(DgraphError) as caught:
        Graph.from_pretrained(dit).execute(outputs=["image"], class_labels=["tiger sharc"], steps=1)
    assert str(caught.value) == (f"node 'labels' (labels.from_names): {dit}: no class is named 'tiger sharc'; "
                                 "close matches: 'tiger shark', 'white shark', 'tiger', 'great white shark'")


@pytest.mark.parametrize("guidance_scale", [1.0, 4.5])
def test_pixart_equals_diffusers(pixart, guidance_scale):
    prompts = ["A small cactus with a happy face", "the sea at night "]
    ours = Graph.from_pretrained(pixart).execute(outputs=["image"], prompt=prompts, seed=7, steps=5, height=32,
                                                 width=32, guidance_scale=guidance_scale, images_per_prompt=2).image
    pipe = diffusers.PixArtAlphaPipeline.from_pretrained(pixart)
    generator = torch.Generator().manual_seed(derive_seed(7, "noise"))
    theirs = pipe(prompts, num_inference_steps=5, guidance_scale=guidance_scale, height=32, width=32,
                  num_images_per_prompt=2, generator=generator, output_type="np", clean_caption=False,
                  use_resolution_binning=False).images
    assert ours.tensor.shape == (4, 3, 32, 32)
    assert abs(_to_np(ours) - theirs).max() < 1e-4


def test_pixart_with_size_conditions_equals_diffusers(pixart_ms):
    """The 1024-pixel multi-aspect layout (sample size 128): resolution and aspect ratio are embedded; a
    smaller, non-square request recomputes the position embedding."""
    ours = Graph.from_pretrained(pixart_ms).execute(outputs=["image"], prompt="a red fox", seed=1, steps=3,
                                                    height=48, width=64).image
    pipe = diffusers.PixArtAlphaPipeline.from_pretrained(pixart_ms)
    generator = torch.Generator().manual_seed(derive_seed(1, "noise"))
    theirs = pipe("a red fox", num_inference_steps=3, height=48, width=64, generator=generator, output_type="np",
                  clean_caption=False, use_resolution_binning=False).images
    assert ours.tensor.shape == (1, 3, 48, 64)
    assert abs(_to_np(ours) - theirs).max() < 1e-4


@pytest.mark.parametrize("name, class_name, base, components", [
    ("dit.yaml", "DiTPipeline", "hf://facebook/DiT-XL-2-256",
     {"transformer": "transformer", "vae": "vae", "scheduler": "scheduler"}),
    ("pixart.yaml", "PixArtAlphaPipeline", "hf://PixArt-alpha/PixArt-XL-2-1024-MS",
     {"tokenizer": "tokenizer", "text_encoder": "text_encoder", "transformer": "transformer", "vae": "vae",
      "scheduler": "scheduler"}),
])
def test_shipped_workflows_are_what_export_writes(name, class_name, base, components):
    assert (WORKFLOWS / name).read_text() == export_text(class_name, base, components)


def test_shipped_dit_file_runs_on_local_components(dit):
    graph = Graph.load(WORKFLOWS / "dit.yaml")
    for node in ("transformer", "vae"):
        graph.set(f"{node}.source", str(dit / node))
    graph.set("scheduler.config", str(dit / "scheduler"))
    graph.set("labels.labels", str(dit))
    expected = Graph.from_pretrained(dit).execute(outputs=["image"], class_labels="goldfish", seed=2, steps=2)
    ours = graph.execute(outputs=["image"], class_labels="goldfish", seed=2, steps=2).image
    assert torch.equal(ours.tensor, expected.image.tensor)


def test_dit_from_the_hub_cache_and_the_cli(dit, hub_cache, tmp_path):
    hub_cache.add_folder("facebook/DiT-XL-2-256", dit)
    code = main(["run", "hf://facebook/DiT-XL-2-256", "--class-labels", "tiger shark", "golden retriever",
                 "--steps", "2", "-o", str(tmp_path / "out"), "-q"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dit_000.png", "dit_001.png"]
    out = tmp_path / "dit.yaml"
    assert main(["export", "hf://facebook/DiT-XL-2-256", "-o", str(out)]) == 0
    assert Graph.load(out).to_dict()["nodes"]["labels"]["inputs"]["labels"] == "hf://facebook/DiT-XL-2-256"


def test_pixart_export_and_run_a_pipeline_folder(pixart, tmp_path):
    out = tmp_path / "pixart.yaml"
    assert main(["export", str(pixart), "-o", str(out)]) == 0
    assert Graph.load(out).to_dict() == Graph.from_pretrained(pixart).to_dict()
    code = main(["run", str(out), "--prompt", "a fox", "--steps", "2", "--height", "32", "--width", "32",
                 "-o", str(tmp_path / "imgs"), "-q"])
    assert code == 0
    assert (tmp_path / "imgs" / "pixart_000.png").is_file()
