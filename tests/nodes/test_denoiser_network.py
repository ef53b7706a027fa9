"""The denoiser-network port: networks declare their conditioning; the model denoiser passes what is wired
and refuses the rest (at validation where the loader names the class, else when it is built)."""
from __future__ import annotations

import pytest
import torch

from dgraph.engine.problems import WorkflowError
from dgraph.errors import DgraphError
from dgraph.graph import Graph
from dgraph.models import DiTTransformer2DModel, PixArtTransformer2DModel, UNet2DConditionModel, UNet2DModel
from dgraph.sampling import ClassifierFreeGuidance, ModelDenoiser, network_conditioning, sample
from dgraph.schedulers import DDIMScheduler, DDPMScheduler

DIT = dict(num_attention_heads=2, attention_head_dim=4, in_channels=4, out_channels=8, num_layers=1, sample_size=4,
           patch_size=2, num_embeds_ada_norm=5)
PIXART = dict(num_attention_heads=2, attention_head_dim=6, in_channels=4, out_channels=8, num_layers=1,
              cross_attention_dim=12, sample_size=4, patch_size=2, caption_channels=10, use_additional_conditions=True)

WORKFLOW = """\
dgraph: 1
nodes:
  transformer:
    type: load.transformer
    inputs:
      source: somewhere
      class_name: DiTTransformer2DModel
  prompt:
    type: text.encode_prompt
    inputs:
      tokenizer: '@tok.tokenizer'
      text_encoder: '@enc.text_encoder'
      prompt: a fox
  tok:
    type: load.tokenizer
    inputs: {source: somewhere}
  enc:
    type: load.text_encoder
    inputs: {source: somewhere}
  size:
    type: condition.image_size
    inputs: {height: 64, width: 64}
  denoiser:
    type: denoiser.model
    inputs:
      network: '@transformer.transformer'
      context: '@prompt.cond'
      added: '@size.added_conditions'
outputs:
  d: '@denoiser.denoiser'
"""


def test_conditioning_the_declared_network_does_not_take_is_a_validation_error(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(WORKFLOW)
    with pytest.raises(WorkflowError) as caught:
        Graph.load(path)
    problems = caught.value.problems
    assert [(p.code, p.line, p.column) for p in problems] == [("input-not-taken", 27, 7), ("input-not-taken", 28, 7)]
    assert problems[0].message == "node 'denoiser', input 'context': the linked network takes no context"
    assert problems[0].hint == "it takes: class_labels; remove `context:`"
    assert str(problems[1]).startswith(f"{path}:28:7: error[input-not-taken]: node 'denoiser', input 'added'")


def test_a_pixart_class_takes_text_and_size_conditions_at_validation(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(WORKFLOW.replace("DiTTransformer2DModel", "PixArtTransformer2DModel"))
    Graph.load(path)  # no problem


def test_networks_declare_their_conditioning():
    assert network_conditioning(DiTTransformer2DModel(**DIT)) == {"class_labels": "class_labels"}
    assert network_conditioning(PixArtTransformer2DModel(**PIXART)) == {
        "context": "encoder_hidden_states", "context_mask": "encoder_attention_mask", "added": "added_cond_kwargs"}
    # The class names every kind it can take (SDXL's text_time UNets take "added"); an instance its own.
    assert network_conditioning(UNet2DConditionModel.__new__(UNet2DConditionModel)) == {
        "context": "encoder_hidden_states", "class_labels": "class_labels", "added": "added_cond_kwargs"}
    small = dict(block_out_channels=(8, 8), norm_num_groups=4, layers_per_block=1, attention_head_dim=2,
                 cross_attention_dim=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    assert network_conditioning(UNet2DConditionModel(**small)) == {
        "context": "encoder_hidden_states", "class_labels": "class_labels"}
    sdxl = UNet2DConditionModel(**small, addition_embed_type="text_time", addition_time_embed_dim=2,
                                projection_class_embeddings_input_dim=16)
    assert network_conditioning(sdxl)["added"] == "added_cond_kwargs"
    assert network_conditioning(torch.nn.Linear(1, 1))["context"] == "encoder_hidden_states"  # UNet-style default


def test_the_model_denoiser_refuses_what_the_network_does_not_take():
    with pytest.raises(DgraphError, match=r"^DiTTransformer2DModel takes no context; it takes: class_labels$"):
        ModelDenoiser(DiTTransformer2DModel(**DIT), context=torch.zeros(1, 3, 8))
    unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4, layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    with pytest.raises(DgraphError, match="UNet2DModel takes no context"):
        ModelDenoiser(unet, context=torch.zeros(1, 3, 8))


class Recorder(torch.nn.Module):
    """Records every forward call's keywords; a declared network taking class labels."""

    conditioning = {"class_labels": "labels", "added": "extra"}

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.calls = []

    def forward(self, x, timestep, labels=None, extra=None):
        self.calls.append(dict(timestep=timestep, labels=labels, extra=extra))
        return torch.cat([x * labels.view(-1, 1, 1, 1), -x], dim=1) * self.weight


def test_guidance_is_one_forward_with_both_branches_and_conditioning_built_once():
    net = Recorder()
    extra = {"size": torch.tensor([[3.0, 4.0]])}
    cond = ModelDenoiser(net, class_labels=torch.tensor([1, 2]), added=extra)
    uncond = ModelDenoiser(net, class_labels=torch.tensor([9, 9]), added=extra)
    guided = ClassifierFreeGuidance(cond, uncond, scale=3.0)
    x = torch.ones(2, 1, 2, 2)
    out = guided(x, torch.tensor(5))
    out = guided(x, torch.tensor(4))
    assert len(net.calls) == 2
    assert net.calls[0]["labels"].tolist() == [9, 9, 1, 2]
    assert net.calls[0]["extra"]["size"].tolist() == [[3.0, 4.0]] * 4
    assert net.calls[0]["labels"] is net.calls[1]["labels"]  # built once per batch shape
    # eps guided (9 + 3 · (label − 9)); the learned variance kept from the conditional branch
    assert out[:, 0, 0, 0].tolist() == [9 + 3 * (1 - 9), 9 + 3 * (2 - 9)]
    assert out[:, 1].eq(-1).all()


@pytest.mark.parametrize("scheduler, reads", [(DDIMScheduler(), False),
                                               (DDPMScheduler(variance_type="learned_range"), True)])
def test_the_loop_drops_a_learned_variance_only_for_samplers_that_do_not_read_it(scheduler, reads):
    seen = []

    def denoiser(x, t):
        out = torch.cat([0.1 * x, torch.full_like(x, 0.3)], dim=1)
        return out

    class Spy:
        def __init__(self, run):
            self.run = run

        def __getattr__(self, name):
            return getattr(self.run, name)

        def step(self, model_output, t, x, **kw):
            seen.append(model_output.shape[1])
            return self.run.step(model_output, t, x, **kw)

    sample(denoiser, Spy(scheduler.start(3)), torch.ones(1, 2, 2, 2), generator=torch.Generator().manual_seed(0))
    assert seen == [4 if reads else 2] * 3


def test_the_network_is_given_once_under_either_name():
    data = {"dgraph": 1, "nodes": {
        "unet": {"type": "load.unet", "inputs": {"source": "somewhere"}},
        "both": {"type": "denoiser.model", "inputs": {"network": "@unet.unet", "unet": "@unet.unet"}},
        "neither": {"type": "denoiser.model"},
        "old": {"type": "denoiser.model", "inputs": {"unet": "@unet.unet"}}},
        "outputs": {"a": "@both.denoiser", "b": "@neither.denoiser", "c": "@old.denoiser"}}
    with pytest.raises(WorkflowError) as caught:
        Graph.load(data)
    assert sorted((p.code, p.message) for p in caught.value.problems) == [
        ("input-not-taken", "node 'both', input 'unet': give the network once: `unet` is the older name of `network`"),
        ("missing-input", "node 'neither', input 'network': no network is given")]
