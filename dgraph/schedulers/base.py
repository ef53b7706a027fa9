"""What every scheduler shares: the config file, the training schedule, and the per-run object.

A scheduler object holds only its config and the tables that follow from it (betas, alphas,
alpha_bar); it does not change after construction. Everything a sampling run changes — the step
index, the multistep history, the half-finished Heun step — lives in a `SamplingRun` that
`scheduler.start(num_inference_steps)` returns. Two runs on one scheduler never see each other,
so one scheduler can serve two branches of a graph at the same time.

The diffusers-style calls on the scheduler itself (`set_timesteps`, `step`, `scale_model_input`,
`add_noise`, `set_begin_index`, `timesteps`, `sigmas`, `init_noise_sigma`) work too: `set_timesteps`
starts a default run, the others use it. Before `set_timesteps` the families that diffusers lets step
without it (DDPM and the sigma samplers) have a default run over every training step, as diffusers does.

"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Mapping

import torch

from ..configuration import ConfigMixin
from ..errors import ConfigError
from ..hub import Source
from .betas import make_betas
from .partial import Window, partial_window


class SchedulerOutput:
    """The result of one step: the sample for the next model call and the current estimate of x0.

    `pred_original_sample` may be given as a zero-argument function, for samplers whose update does
    not need x0: it is then computed only if someone reads it.
    """

    __slots__ = ("prev_sample", "_pred_original_sample")

    def __init__(self, prev_sample: torch.Tensor,
                 pred_original_sample: torch.Tensor | Callable[[], torch.Tensor] | None = None):
        self.prev_sample = prev_sample
        self._pred_original_sample = pred_original_sample

    @property
    def pred_original_sample(self) -> torch.Tensor | None:
        if callable(self._pred_original_sample):
            self._pred_original_sample = self._pred_original_sample()
        return self._pred_original_sample

    def __getitem__(self, index: int) -> torch.Tensor | None:
        # Lets `step(...)[0]` work as it does with diffusers' outputs.
        return (self.prev_sample, self.pred_original_sample)[index]

    def __repr__(self) -> str:
        return f"SchedulerOutput(prev_sample={tuple(self.prev_sample.shape)})"


def gaussian_noise(like: torch.Tensor, generator: torch.Generator | None,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal noise shaped like `like`, drawn on the generator's device, then moved to `like`'s.

    The engine passes a seeded CPU generator, so the same seed gives the same noise on every device.
    Without a generator the draw comes from torch's global CPU generator (not reproducible).
    """
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(like.shape, generator=generator, device=device, dtype=dtype or like.dtype)
    return noise.to(like.device)


def predicted_x0(prediction_type: str, model_output: torch.Tensor, sample: torch.Tensor,
                 alpha: float, sigma: float) -> torch.Tensor:
    """x0 from a model output, with x_t = alpha·x0 + sigma·noise (alpha² + sigma² = 1)."""
    if prediction_type == "epsilon":
        return (sample - sigma * model_output) / alpha
    if prediction_type == "sample":
        return model_output
    if prediction_type == "v_prediction":
        return alpha * sample - sigma * model_output
    raise ConfigError(f"prediction_type {prediction_type!r} is not one of epsilon, sample, v_prediction")


def check_choice(owner: str, key: str, value: Any, choices: tuple) -> None:
    """Refuse a config value outside `choices` with a message naming the key and the choices."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{owner}: {key}={value!r} is not supported; use one of {listed}")


def refuse_unsupported(owner: str, **options: tuple[Any, Any]) -> None:
    """Config keys diffusers writes that dgraph reads but does not implement beyond their default.

    Each option is given as (value, default); a file that sets one to anything else is refused, so a
    config never silently means something different here than in diffusers.
    """
    for key, (value, default) in options.items():
        if value != default:
            raise ConfigError(f"{owner}: {key}={value!r} is not supported by dgraph; "
                              f"remove it from the config or set it to {default!r}")


def _indices(timesteps: torch.Tensor, owner: str) -> torch.Tensor:
    """Training-step indices from timesteps given as ints or as integral floats (a run's float timesteps)."""
    timesteps = torch.as_tensor(timesteps)
    if timesteps.is_floating_point():
        if not torch.equal(timesteps, timesteps.round()):
            raise ConfigError(f"{owner}: add_noise needs whole training timesteps, got {timesteps.tolist()}; "
                              f"round them, or call set_timesteps and pass timesteps of that run")
        timesteps = timesteps.long()
    return timesteps


def alpha_bar_noise(alphas_cumprod: torch.Tensor, original_samples: torch.Tensor, noise: torch.Tensor,
                    timesteps: torch.Tensor, owner: str = "scheduler") -> torch.Tensor:
    """The variance-preserving forward process sqrt(alpha_bar_t)·x0 + sqrt(1 - alpha_bar_t)·noise, one t per item."""
    alpha_bar = alphas_cumprod.to(original_samples.device, original_samples.dtype)
    alpha_bar = alpha_bar[_indices(timesteps, owner).to(original_samples.device)].flatten()
    shape = (-1,) + (1,) * (original_samples.ndim - 1)
    return alpha_bar.sqrt().reshape(shape) * original_samples + (1 - alpha_bar).sqrt().reshape(shape) * noise


def fit_image_to_noise(image: torch.Tensor, noise: torch.Tensor, owner: str) -> torch.Tensor:
    """Clean latents on the noise's device and dtype, repeated over its batch (one image, several samples)
    as diffusers' img2img and inpainting pipelines repeat them."""
    if noise.shape[1:] != image.shape[1:] or noise.shape[0] % image.shape[0]:
        raise ConfigError(f"{owner}: the noise {tuple(noise.shape)} does not fit the image latents "
                          f"{tuple(image.shape)}; give noise of the image's shape (its batch may be a "
                          f"multiple of the image's)")
    if noise.shape[0] != image.shape[0]:
        image = torch.cat([image] * (noise.shape[0] // image.shape[0]))
    return image.to(noise.device, noise.dtype)


@dataclass(frozen=True)
class RunOption:
    """An option a family's `start` (and `step`, per step) takes at run time, as the family declares it.

    `default` is the value that leaves the sampler as it is without the option (so that a workflow may
    pass it to any family); `description` is what a user reads in the node catalogue.
    """

    default: Any
    description: str


class SamplingRun:
    """The mutable state of one sampling loop over a shared, immutable scheduler.

    Subclasses implement `_step(index, model_output, sample, generator)`. The step index starts at
    the first timestep; if the first `step` is called with a later timestep (img2img), the run starts
    from there, as diffusers does.
    """

    def __init__(self, scheduler: "Scheduler", timesteps: torch.Tensor, sigmas: torch.Tensor | None = None,
                 init_noise_sigma: float = 1.0):
        self.scheduler = scheduler
        self.timesteps = timesteps
        self.sigmas = sigmas
        self.init_noise_sigma = init_noise_sigma
        self.step_index: int | None = None
        self.begin_index: int | None = None
        # The part of the schedule a loop takes, when `partial` chose one.
        self.window: Window | None = None

    @property
    def config(self):
        return self.scheduler.config

    @property
    def order(self) -> int:
        return self.scheduler.order

    @property
    def reads_learned_variance(self) -> bool:
        """Whether `step` uses a model's learned-variance channels (only DDPM's learned variance types do)."""
        return False

    @property
    def num_inference_steps(self) -> int:
        return len(self)

    def __len__(self) -> int:
        return len(self.timesteps)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.timesteps)

    def index_for_timestep(self, timestep: float | torch.Tensor) -> int:
        """Where `timestep` sits in this run (the second match when it repeats, as in Heun's schedule)."""
        matches = (self.timesteps == torch.as_tensor(timestep).to(self.timesteps.device)).nonzero()
        if len(matches) == 0:
            raise ConfigError(f"{type(self.scheduler).__name__}: timestep {float(timestep)} is not in this run's "
                              f"timesteps; pass one of run.timesteps")
        return int(matches[1 if len(matches) > 1 else 0])

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start this run at `begin_index` (img2img: the run enters part-way down the schedule).

        `step` then starts there whatever timestep it is given, and `add_noise` noises to that step.
        """
        self.begin_index = int(begin_index)

    def requested_steps(self) -> int:
        """The number of steps this run was started with (Heun's doubled timesteps count once)."""
        return (len(self.timesteps) + 1) // 2 if self.order == 2 else len(self.timesteps)

    def partial(self, strength: float | None = None, denoising_start: float | None = None,
                denoising_end: float | None = None) -> "SamplingRun":
        """Make this run take only part of its schedule, as diffusers' img2img and SDXL pipelines do; returns self.

        strength: image-to-image, in (0, 1]: take the last int(steps × strength) steps, starting from
            clean latents noised to the first of them (`initial_sample(noise, image)`).
        denoising_start: in (0, 1): the SDXL refiner's hand-over: take the steps below training timestep
            round(T - denoising_start·T); the input is latents already noisy there (used as they are).
        denoising_end: in (0, 1): stop before the first timestep below round(T - denoising_end·T) and
            return the still-noisy latents (the SDXL base's hand-over).

        The whole schedule stays in `timesteps`; `loop_timesteps` are the steps to take. Call it once,
        before the first step.
        """
        owner = type(self.scheduler).__name__
        if self.step_index is not None or self.window is not None or self.begin_index is not None:
            raise ConfigError(f"{owner}: partial() must come once, on a fresh run, before its first step; "
                              f"start a new run with scheduler.start(...)")
        window = partial_window(self.timesteps, self.order, self.requested_steps(),
                                int(self.config.get("num_train_timesteps", self.scheduler.num_train_timesteps)),
                                owner, strength, denoising_start, denoising_end)
        if window.enters:
            self.set_begin_index(window.begin)
        self.window = window
        return self

    @property
    def loop_timesteps(self) -> torch.Tensor:
        """The timesteps a sampling loop steps through: all of them, or the window `partial` chose."""
        if self.window is None:
            return self.timesteps
        return self.timesteps[self.window.begin:self.window.end]

    def noise_image(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Clean latents noised to the first timestep this run takes (diffusers' img2img prepare_latents)."""
        first = self.loop_timesteps[:1]
        return self.add_noise(image, noise, first.repeat(image.shape[0]))

    def initial_sample(self, noise: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """The sample a loop starts from.

        With `image` (clean latents): the image noised with `noise` to the first step taken (img2img).
        After `partial(denoising_start=...)`: `noise` is the handed-over noisy latents, used as they are.
        Otherwise: the standard normal `noise` scaled to the run's initial sigma; a run with strength 1
        (nothing skipped) may start so too, as diffusers' inpainting does at full strength where its
        img2img noises the image to the first timestep.
        """
        owner = type(self.scheduler).__name__
        continues_noisy = self.window is not None and self.window.continues_noisy
        if image is not None:
            if continues_noisy:
                raise ConfigError(f"{owner}: a run with denoising_start continues latents that are already noisy; "
                                  f"pass those as the noise/latents and no clean image, or use strength to "
                                  f"start from a clean image")
            return self.noise_image(fit_image_to_noise(image, noise, owner), noise)
        if continues_noisy:
            return noise
        if self.window is not None and self.window.begin > 0:
            raise ConfigError(f"{owner}: a run with strength starts from a clean image noised part-way, but was "
                              f"given no image; pass the clean latents as image, or leave strength out")
        return noise * self.init_noise_sigma

    def _current_index(self, timestep: float | torch.Tensor | None) -> int:
        if self.step_index is None:
            first = self.timesteps[0]
            if self.begin_index is not None:
                self.step_index = self.begin_index
            elif timestep is None or float(timestep) == float(first):
                self.step_index = 0
            else:
                self.step_index = self.index_for_timestep(timestep)
        if self.step_index >= len(self.timesteps):
            raise ConfigError(f"{type(self.scheduler).__name__}: this run has already taken all its "
                              f"{len(self.timesteps)} steps; start a new run")
        return self.step_index

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor | None = None) -> torch.Tensor:
        """The model input for this step (unchanged for the alpha-based samplers)."""
        return sample

    def noise_indices(self, timesteps: torch.Tensor) -> list[int]:
        """The step of this run that `add_noise` noises each item to, by diffusers' rule.

        Without a begin index each timestep is looked up in the run; with one, every item goes to the
        current step once the run has started (inpainting) and to the begin index before (img2img).
        """
        timesteps = torch.as_tensor(timesteps).reshape(-1)
        if self.begin_index is None:
            return [self.index_for_timestep(t) for t in timesteps]
        return [self.step_index if self.step_index is not None else self.begin_index] * len(timesteps)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Noise clean samples to `timesteps` (one per item) the way this family's model inputs are noised.

        The alpha-based samplers use the training table; the sigma and solver runs override this.
        """
        return alpha_bar_noise(self.scheduler.alphas_cumprod, original_samples, noise, timesteps,
                               type(self.scheduler).__name__)

    def step(self, model_output: torch.Tensor, timestep: float | torch.Tensor | None, sample: torch.Tensor,
             generator: torch.Generator | None = None, **options) -> SchedulerOutput:
        """Advance one step: from x_t and the model output at `timestep`, compute x_{t-1} and x0.

        `generator` is used only by the stochastic samplers; `options` are per-step overrides that a
        family documents (DDIM's `eta`).
        """
        index = self._current_index(timestep)
        output = self._step(index, model_output, sample, generator, **options)
        self.step_index = index + 1
        return output

    def _step(self, index: int, model_output: torch.Tensor, sample: torch.Tensor,
              generator: torch.Generator | None, **options) -> SchedulerOutput:
        raise NotImplementedError


class Scheduler(ConfigMixin):
    """Base of all schedulers: config I/O in `scheduler_config.json` and the training noise schedule."""

    config_name: ClassVar[str] = "scheduler_config.json"
    order: ClassVar[int] = 1
    # What `start(n, **options)` takes beyond the schedule, declared by each family.
    run_options: ClassVar[Mapping[str, RunOption]] = {}

    def _init_schedule(self, num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str,
                       trained_betas, rescale_betas_zero_snr: bool = False) -> None:
        if trained_betas is None and (not isinstance(num_train_timesteps, int) or num_train_timesteps < 1):
            raise ConfigError(f"{type(self).__name__}: num_train_timesteps must be a positive integer, "
                              f"got {num_train_timesteps!r}")
        betas = make_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas,
                           rescale_betas_zero_snr, owner=type(self).__name__)
        if trained_betas is None and len(betas) != num_train_timesteps:
            raise ConfigError(f"{type(self).__name__}: schedule length {len(betas)} != num_train_timesteps")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self._default_run: SamplingRun | None = None
        # True while the default run is the training-schedule one (diffusers' state before set_timesteps).
        self._before_set_timesteps = False

    def __setattr__(self, key: str, value: Any) -> None:
        if self.__dict__.get("_frozen") and key not in ("_default_run", "_before_set_timesteps"):
            raise AttributeError(f"{type(self).__name__} is immutable after construction; build a new one with "
                                 f"{type(self).__name__}.from_config(scheduler.config, {key}=...)")
        object.__setattr__(self, key, value)

    def _freeze(self) -> None:
        self._frozen = True

    @property
    def num_train_timesteps(self) -> int:
        return len(self.betas)

    def __len__(self) -> int:
        return self.num_train_timesteps

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.config)!r})"

    # ---- loading ----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained: str | os.PathLike | Source, subfolder: str | None = None,
                        revision: str | None = None, **overrides):
        """Build from `scheduler_config.json` in a folder, Hub repo (`owner/name`, `hf://...`) or package."""
        return cls.from_config(cls.load_config(pretrained, subfolder, revision), **overrides)

    # ---- coefficients of the training process, for hand-written loops -----------------------------
    def _table(self, table: torch.Tensor, timestep) -> torch.Tensor:
        index = torch.as_tensor(timestep, device=torch.device("cpu")).long()
        if (index < 0).any() or (index >= len(table)).any():
            raise ConfigError(f"{type(self).__name__}: timestep {timestep} is outside [0, {len(table) - 1}]")
        return table[index]

    def beta_t(self, timestep) -> torch.Tensor:
        """beta_t, the variance of the noise added at training step t."""
        return self._table(self.betas, timestep)

    def alpha_t(self, timestep) -> torch.Tensor:
        """alpha_t = 1 - beta_t."""
        return self._table(self.alphas, timestep)

    def alpha_bar_t(self, timestep) -> torch.Tensor:
        """alpha_bar_t = prod_{s<=t} alpha_s: x_t = sqrt(alpha_bar_t)·x0 + sqrt(1 - alpha_bar_t)·noise."""
        return self._table(self.alphas_cumprod, timestep)

    def posterior_variance(self, timestep, prev_timestep=None) -> torch.Tensor:
        """Variance of q(x_prev | x_t, x0): (1 - alpha_bar_prev) / (1 - alpha_bar_t) · (1 - alpha_bar_t / alpha_bar_prev).

        `prev_timestep` defaults to t - 1; a negative one means the clean sample (alpha_bar = 1).
        """
        t = int(timestep)
        prev = t - 1 if prev_timestep is None else int(prev_timestep)
        alpha_bar = self.alpha_bar_t(t)
        alpha_bar_prev = self.alpha_bar_t(prev) if prev >= 0 else torch.tensor(1.0)
        return (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Noise clean samples to `timesteps`, one per batch item, as this family's sampling expects.

        For DDPM, DDIM and PNDM (and the multistep solvers before `set_timesteps`) this is the forward
        process sqrt(alpha_bar_t)·x0 + sqrt(1 - alpha_bar_t)·noise. The sigma samplers (Euler, Euler
        ancestral, Heun, LMS) work on x0 + sigma·noise and return that; after `set_timesteps` the
        sigma and solver families look the timesteps up in the default run (see `SamplingRun.add_noise`).
        """
        if not self._has_run():
            return alpha_bar_noise(self.alphas_cumprod, original_samples, noise, timesteps, type(self).__name__)
        return self._run().add_noise(original_samples, noise, timesteps)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The v-prediction target: sqrt(alpha_bar_t)·noise - sqrt(1 - alpha_bar_t)·x0."""
        alpha_bar = self.alphas_cumprod.to(sample.device, sample.dtype)[timesteps.to(sample.device)].flatten()
        shape = (-1,) + (1,) * (sample.ndim - 1)
        return alpha_bar.sqrt().reshape(shape) * noise - (1 - alpha_bar).sqrt().reshape(shape) * sample

    # ---- sampling runs -----------------------------------------------------------------------------
    def start(self, num_inference_steps: int, device: str | torch.device | None = None, **options) -> SamplingRun:
        """A new, independent sampling run of `num_inference_steps` steps."""
        raise NotImplementedError

    # ---- the diffusers-style API, over a default run -----------------------------------------------
    def set_timesteps(self, num_inference_steps: int | None = None, device: str | torch.device | None = None,
                      **options) -> None:
        """Start the default run that `step`, `timesteps`, `scale_model_input` and friends use."""
        self._default_run = self.start(num_inference_steps, device=device, **options)
        self._before_set_timesteps = False

    def _training_run(self) -> SamplingRun | None:
        """The run diffusers prepares at construction (every training step), for stepping before
        `set_timesteps`; None for the families that diffusers makes call `set_timesteps` first."""
        return None

    def _has_run(self) -> bool:
        """Whether there is a default run, making the training-schedule one if the family has it."""
        if self._default_run is None:
            run = self._training_run()
            if run is None:
                return False
            self._default_run = run
            self._before_set_timesteps = True
        return True

    def _run(self) -> SamplingRun:
        if not self._has_run():
            raise ConfigError(f"{type(self).__name__}: call set_timesteps(num_inference_steps) before stepping, "
                              f"or use run = scheduler.start(num_inference_steps)")
        return self._default_run

    @property
    def timesteps(self) -> torch.Tensor:
        if not self._has_run():
            return torch.arange(self.num_train_timesteps - 1, -1, -1)
        return self._run().timesteps

    @property
    def sigmas(self) -> torch.Tensor | None:
        return self._run().sigmas

    @property
    def num_inference_steps(self) -> int | None:
        if self._default_run is None or self._before_set_timesteps:
            return None
        return len(self._default_run)

    @property
    def step_index(self) -> int | None:
        return None if self._default_run is None else self._default_run.step_index

    @property
    def begin_index(self) -> int | None:
        return None if self._default_run is None else self._default_run.begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Where the default run starts (img2img); see `SamplingRun.set_begin_index`."""
        self._run().set_begin_index(begin_index)

    @property
    def init_noise_sigma(self) -> float:
        return self._run().init_noise_sigma if self._has_run() else 1.0

    @property
    def compatibles(self) -> list[type["Scheduler"]]:
        """The scheduler classes that can be built from this one's config (every family reads every other's)."""
        from . import SCHEDULERS  # the registry imports this module

        return list(SCHEDULERS.values())

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor | None = None) -> torch.Tensor:
        return self._run().scale_model_input(sample, timestep)

    def step(self, model_output: torch.Tensor, timestep: float | torch.Tensor, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True, **kwargs):
        output = self._run().step(model_output, timestep, sample, generator=generator, **kwargs)
        return output if return_dict else (output.prev_sample, output.pred_original_sample)
