"""Scheduler, guidance and sampling-loop nodes against diffusers' own loops and formulas."""
from __future__ import annotations

import inspect

import diffusers
import pytest
import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg

from dgraph.engine.problems import WorkflowError
from dgraph.graph import Graph
from dgraph.node import derive_seed
from dgraph.sampling import ClassifierFreeGuidance, DynamicThresholding
from dgraph.schedulers import DDPMScheduler
from dgraph.engine.registry import Registry, default_registry
from dgraph.node import node
from dgraph.types import UNet
from dgraph.errors import DgraphError
from nodes.sampling import sample_loop
from nodes.schedulers import FAMILIES



def _model(x: torch.Tensor, t) -> torch.Tensor:
    """A deterministic stand-in for a UNet: a smooth nonlinear function of x and t."""
    t = torch.as_tensor(t, dtype=x.dtype)
    return torch.tanh(0.7 * x) * torch.cos(t / 300.0) + 0.05 * x.roll(1, dims=-1)


class ToyUNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.config = {"in_channels": 4, "sample_size": 8}

    def forward(self, x, t, **kwargs):
        return _model(x, t) * self.scale


@node("test.toy_unet", description="A toy UNet.", output="value")
def toy() -> UNet:
    return ToyUNet()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_node_builds_diffusers_timesteps(family, tmp_path):
    cls, _ = FAMILIES[family]
    reference = getattr(diffusers, cls.__name__)(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                                 timestep_spacing="trailing")
    reference.save_pretrained(tmp_path)
    graph = Graph({"dgraph": 1, "nodes": {"s": {"type": f"scheduler.{family}",
                                                "inputs": {"config": str(tmp_path), "timestep_spacing": "leading",
                                                           "steps_offset": 1}}},
                   "outputs": {"s": "@s.scheduler"}})
    scheduler = graph.execute().s
    assert type(scheduler).__name__ == cls.__name__
    expected = getattr(diffusers, cls.__name__).from_config(reference.config, timestep_spacing="leading", steps_offset=1)
    expected.set_timesteps(12)
    assert torch.allclose(scheduler.start(12).timesteps.float(), expected.timesteps.float())


def test_bad_scheduler_parameter_is_a_validation_error():
    data = {"dgraph": 1, "nodes": {"s": {"type": "scheduler.dpm_solver", "inputs": {"solver_order": 5}}}}
    with pytest.raises(WorkflowError) as caught:
        Graph.load(data)
    assert caught.value.codes == ["invalid-value"]


def _loop_graph(family: str, options: dict) -> dict:
    return {
        "dgraph": 1,
        "nodes": {
            "scheduler": {"type": f"scheduler.{family}"},
            "noise": {"type": "latent.noise", "inputs": {"channels": 4, "height": 8, "width": 8, "batch_size": 2}},
            "sample": {"type": "sample.loop", "inputs": {"denoiser": "@den.denoiser", "scheduler": "@scheduler.scheduler",
                                                         "latents": "@noise.latent", "steps": 8, **options}},
            "den": {"type": "denoiser.model", "inputs": {"unet": "@unet.value"}},
            "unet": {"type": "test.toy_unet"},
        },
        "outputs": {"x": "@sample.latent"},
    }


def _registry() -> Registry:
    registry = Registry()
    for spec in default_registry():
        registry.add(spec.fn, spec.pack)
    registry.add(toy)
    return registry


# Run options reach the scheduler from the workflow; a neutral value of another family's option is allowed.
RUN_OPTIONS = [("euler", {"eta": 0.0}), ("ddim", {"eta": 0.5}), ("ddim", {"eta": 1.0, "use_clipped_model_output": True}),
               ("dpm_solver", {}), ("heun", {"s_churn": 0.0}),
               ("euler", {"s_churn": 0.8, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003}), ("lms", {"order": 2})]


@pytest.mark.parametrize("family, options", RUN_OPTIONS)
def test_sampling_loop_node_equals_a_diffusers_loop(family, options):
    cls, _ = FAMILIES[family]
    ours = Graph.load(_loop_graph(family, options), registry=_registry()).execute(seed=11).x.tensor

    scheduler = getattr(diffusers, cls.__name__)()
    scheduler.set_timesteps(8)
    x = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(derive_seed(11, "noise")))
    x = x * scheduler.init_noise_sigma
    generator = torch.Generator().manual_seed(derive_seed(11, "sample"))
    extra = {name: value for name, value in options.items() if name in cls.run_options}
    if family in ("ddim", "euler"):
        extra["generator"] = generator
    for t in scheduler.timesteps:
        x = scheduler.step(_model(scheduler.scale_model_input(x, t), t), t, x, **extra).prev_sample
    assert torch.allclose(ours, x, rtol=1e-5, atol=1e-5)  # some toy trajectories grow to ~1e3


def test_a_run_option_of_another_family_is_refused_with_what_to_do():
    graph = Graph.load(_loop_graph("euler", {"eta": 0.5}), registry=_registry())
    with pytest.raises(DgraphError) as caught:
        graph.execute(seed=1)
    assert ("node 'sample' (sample.loop): eta=0.5 only applies to DDIMScheduler; EulerDiscreteScheduler takes s_churn, s_tmin, "
            "s_tmax, s_noise: remove eta or set it to 0.0") in str(caught.value)


def test_run_options_are_declared_by_the_families():
    # The loop node's parameters are the union of what the families declare (no signature inspection).
    declared = {name for cls, _ in FAMILIES.values() for name in cls.run_options}
    loop_parameters = set(inspect.signature(sample_loop).parameters)
    assert declared == {"eta", "use_clipped_model_output", "s_churn", "s_tmin", "s_tmax", "s_noise", "order", "respacing"}
    assert declared <= loop_parameters


def test_guidance_rescale_matches_the_published_formula():
    torch.manual_seed(0)
    cond, uncond = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    guide = ClassifierFreeGuidance(lambda x, t: cond, lambda x, t: uncond, scale=7.5, rescale=0.7)
    expected = rescale_noise_cfg(uncond + 7.5 * (cond - uncond), cond, guidance_rescale=0.7)
    assert torch.allclose(guide(torch.zeros(2, 4, 8, 8), torch.tensor(10)), expected, atol=1e-6)


def test_guidance_keeps_learned_variance_from_the_conditional_branch():
    cond = torch.cat([torch.ones(1, 3, 2, 2), torch.full((1, 3, 2, 2), 5.0)], dim=1)
    uncond = torch.cat([torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), -5.0)], dim=1)
    out = ClassifierFreeGuidance(lambda x, t: cond, lambda x, t: uncond, scale=3.0)(torch.zeros(1, 3, 2, 2), 0)
    assert torch.equal(out[:, :3], torch.full((1, 3, 2, 2), 3.0))
    assert torch.equal(out[:, 3:], torch.full((1, 3, 2, 2), 5.0))


def test_dynamic_thresholding_matches_diffusers_ddpm_thresholding():
    """Thresholding the denoiser's x0 then stepping plainly equals diffusers' DDPM step with thresholding=True."""
    torch.manual_seed(3)
    x = torch.randn(2, 3, 8, 8) * 3
    eps = torch.randn(2, 3, 8, 8) * 2
    t = 500
    ref = diffusers.DDPMScheduler(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=2.0,
                                  clip_sample=False)
    ref.set_timesteps(1000)
    expected = ref.step(eps, t, x).pred_original_sample
    ours = DDPMScheduler(clip_sample=False)
    wrapped = DynamicThresholding(lambda x_, t_: eps, ours.alphas_cumprod, ratio=0.9, max_value=2.0)
    eps2 = wrapped(x, torch.tensor(t))
    run = ours.start(1000)
    got = run.step(eps2, t, x, generator=torch.Generator().manual_seed(0)).pred_original_sample
    assert torch.allclose(got, expected, atol=1e-4)


def test_every_family_of_the_table_is_a_named_node_type():
    # Each node type of the FAMILIES table is a module attribute a reader can find (scheduler_<family>).
    import nodes.schedulers as module
    from dgraph.node import spec_of

    names = {spec_of(getattr(module, f"scheduler_{family}")).type_name for family in FAMILIES}
    assert names == {f"scheduler.{family}" for family in FAMILIES}
    # and scheduler.unclip, written out beside the table (its family takes none of the common keys)
    assert {spec.type_name for spec in default_registry() if spec.type_name.startswith("scheduler.")} == \
        names | {"scheduler.unclip"}


# ---- partial runs: image-to-image and the base/refiner hand-over ------------------------------------------
SD_SCHEDULE = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
               "timestep_spacing": "leading", "steps_offset": 1}


def _partial_graph(family: str, nodes: dict, outputs: dict) -> dict:
    return {"dgraph": 1,
            "nodes": {"scheduler": {"type": f"scheduler.{family}", "inputs": SD_SCHEDULE},
                      "clean": {"type": "latent.noise", "inputs": {"channels": 4, "height": 8, "width": 8}},
                      "den": {"type": "denoiser.model", "inputs": {"unet": "@unet.value"}},
                      "unet": {"type": "test.toy_unet"}, **nodes},
            "outputs": outputs}


def _loop_node(**inputs) -> dict:
    return {"type": "sample.loop", "inputs": {"denoiser": "@den.denoiser", "scheduler": "@scheduler.scheduler",
                                              "steps": 10, **inputs}}


def _diffusers(family: str):
    cls, _ = FAMILIES[family]
    scheduler = getattr(diffusers, cls.__name__).from_config(SD_SCHEDULE)
    scheduler.set_timesteps(10)
    return scheduler


def _diffusers_steps(scheduler, timesteps, x, generator):
    extra = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for t in timesteps:
        x = scheduler.step(_model(scheduler.scale_model_input(x, t), t), t, x, **extra).prev_sample
    return x


@pytest.mark.parametrize("family", ["euler_ancestral", "dpm_solver", "heun", "ddim"])
def test_img2img_node_equals_diffusers_img2img(family):
    # No noise linked: the node draws it from its own generator, then steps with the same generator,
    # as StableDiffusionImg2ImgPipeline's prepare_latents and loop do with one generator.
    graph = _partial_graph(family, {"sample": _loop_node(image="@clean.latent", strength=0.65)},
                           {"x": "@sample.latent", "clean": "@clean.latent"})
    result = Graph.load(graph, registry=_registry()).execute(seed=3)

    scheduler = _diffusers(family)
    t_start = 10 - int(10 * 0.65)
    timesteps = scheduler.timesteps[t_start * scheduler.order:]
    scheduler.set_begin_index(t_start * scheduler.order) if hasattr(scheduler, "set_begin_index") else None
    generator = torch.Generator().manual_seed(derive_seed(3, "sample"))
    noise = torch.randn((1, 4, 8, 8), generator=generator)
    x = scheduler.add_noise(result.clean.tensor, noise, timesteps[:1].repeat(1))
    expected = _diffusers_steps(scheduler, timesteps, x, generator)
    assert torch.allclose(result.x.tensor, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(result.x.tensor, result.clean.tensor)


def test_img2img_node_noises_with_linked_latents_repeating_the_image_over_their_batch():
    graph = _partial_graph("euler", {"noise": {"type": "latent.noise", "inputs": {"channels": 4, "height": 8,
                                                                                  "width": 8, "batch_size": 2}},
                                     "sample": _loop_node(image="@clean.latent", latents="@noise.latent",
                                                          strength=0.4)},
                           {"x": "@sample.latent", "clean": "@clean.latent", "noise": "@noise.latent"})
    result = Graph.load(graph, registry=_registry()).execute(seed=5)
    scheduler = _diffusers("euler")
    timesteps = scheduler.timesteps[6:]
    scheduler.set_begin_index(6)
    x = scheduler.add_noise(torch.cat([result.clean.tensor] * 2), result.noise.tensor, timesteps[:1].repeat(2))
    expected = _diffusers_steps(scheduler, timesteps, x, None)
    assert torch.allclose(result.x.tensor, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["euler", "heun", "unipc"])
def test_base_and_refiner_loops_hand_over_as_diffusers_sdxl(family):
    # Base: the whole schedule cut at denoising_end; refiner: from denoising_start on the base's noisy latents.
    graph = _partial_graph(family, {"noise": {"type": "latent.noise", "inputs": {"channels": 4, "height": 8,
                                                                                 "width": 8}},
                                    "base": _loop_node(latents="@noise.latent", denoising_end=0.7),
                                    "refiner": _loop_node(latents="@base.latent", denoising_start=0.7)},
                           {"base": "@base.latent", "refined": "@refiner.latent", "noise": "@noise.latent"})
    result = Graph.load(graph, registry=_registry()).execute(seed=9)

    scheduler = _diffusers(family)
    timesteps = scheduler.timesteps[:len([t for t in scheduler.timesteps if t >= 300])]
    base = _diffusers_steps(scheduler, timesteps, result.noise.tensor * scheduler.init_noise_sigma, None)
    assert torch.allclose(result.base.tensor, base, rtol=1e-5, atol=1e-5)
    refiner = _diffusers(family)
    taken = int((refiner.timesteps < 300).sum())
    taken += 1 if refiner.order == 2 and taken % 2 == 0 else 0
    refiner.set_begin_index(len(refiner.timesteps) - taken)
    refined = _diffusers_steps(refiner, refiner.timesteps[-taken:], base, None)
    assert torch.allclose(result.refined.tensor, refined, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("inputs, message", [
    ({"latents": "@clean.latent", "strength": 0.5},
     "node 'sample' (sample.loop): strength says how far to noise a clean image, but no image is linked; link `image:` to the "
     "clean latents, or leave strength out"),
    ({"image": "@clean.latent", "denoising_start": 0.5},
     "node 'sample' (sample.loop): with denoising_start the loop continues latents that are already noisy (link them to "
     "`latents:`), so it takes no clean `image:`; to start from a clean image use strength instead"),
    ({}, "sample.loop needs latents (the initial noise, from latent.noise) or an image's latents to start from: "
         "link `latents:` or `image:`"),
    ({"image": "@clean.latent", "strength": 0.05},
     "node 'sample' (sample.loop): EulerDiscreteScheduler: strength=0.05 with 10 steps leaves no step to take (int(10 × 0.05) = 0); "
     "raise strength to at least 0.1 or steps to at least 20"),
    ({"latents": "@clean.latent", "denoising_start": 0.8, "denoising_end": 0.6},
     "node 'sample' (sample.loop): EulerDiscreteScheduler: denoising_start=0.8 must be smaller than denoising_end=0.6"),
])
def test_partial_loop_inputs_that_do_not_fit_are_refused_with_what_to_do(inputs, message):
    graph = Graph.load(_partial_graph("euler", {"sample": _loop_node(**inputs)}, {"x": "@sample.latent"}),
                       registry=_registry())
    with pytest.raises(DgraphError) as caught:
        graph.execute(seed=1)
    assert message in str(caught.value)


@pytest.mark.parametrize("option, value", [("strength", 0.0), ("strength", 1.5), ("denoising_start", 1.0),
                                           ("denoising_end", 0.0)])
def test_partial_fractions_out_of_range_are_validation_errors(option, value):
    graph = _partial_graph("euler", {"sample": _loop_node(image="@clean.latent", **{option: value})},
                           {"x": "@sample.latent"})
    with pytest.raises(WorkflowError) as caught:
        Graph.load(graph, registry=_registry())
    assert caught.value.codes == ["invalid-value"]
