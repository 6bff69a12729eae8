"""Inversion stability of a noise, and noise selection and optimisation by it (Qi et al., arXiv 2407.14041).

The paper's Definition 1 scores a noise ε by how well it survives a denoise–invert round trip,
``s(ε) = cos(ε, F(ε))`` with ``F(ε) = I(D(ε, c), c)``: ``D`` a deterministic T-step DDIM denoise and ``I`` a T-step
inversion on the same grid, one cosine over the flattened latent, in fp32. Algorithm 1 keeps the most stable of K
seeds (:class:`StabilitySelection`), Algorithm 2 minimises ``1 − s`` by SGD with momentum
(:class:`StabilityOptimization`). The paper publishes no code; what it leaves open is chosen here, said in the
docstrings and made configurable (docs/stability.md lists every choice):

* the guidance of each direction (not stated): the denoise uses the images' own guidance unless set, the inversion
  the denoise's (``w_i = w_d``, strict stability; ``w_i < w_d`` injects prompt semantics, NPNet's mechanism);
* the per-timestep variant ``s_traj`` (a reviewer's reading): the mean cosine of the denoise and inversion
  trajectories at each of the T noisy levels, ``x_T`` included;
* the partial round trip ``s_k`` (a public proposal, unvalidated): denoise the first k steps, invert them back;
* the inverter: textbook DDIM inversion or a fixed-point (ReNoise-style) inverter;
* the optimisation's gradient modes beyond ``full``, its step size semantics and an optional norm projection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Literal

import torch

from goldennoise.backbones.cost import evaluations_per_step
from goldennoise.checks import check_int
from goldennoise.noise.base import NoiseContext, NoiseMethod, SamplerSettings
from goldennoise.noise.selection import candidate_seed
from goldennoise.sampling import (
    Denoiser,
    InverterName,
    Schedule,
    inverter_calls_per_step,
    make_inverter,
    noise_for_seeds,
    sample,
)

GradientMode = Literal["full", "truncated", "partial-roundtrip", "stopgrad-unet"]
PickRule = Literal["most", "least", "random"]
StepSize = Literal["paper", "relative"]

PAPER_LATENT_SIZE = 4 * 128 * 128
"""d of the paper's setting (SDXL at 1024², latents 4×128×128), where its lr = 100 was chosen."""


def flat_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine of each sample's flattened latents, in fp32: (B, ...) × (B, ...) → (B,) (the paper's Definition 1)."""
    return torch.nn.functional.cosine_similarity(a.flatten(1).float(), b.flatten(1).float(), dim=1)


def trajectory_cosine(denoised: list[torch.Tensor], inverted: list[torch.Tensor]) -> torch.Tensor:
    """``s_traj``: mean over the n noisy levels of cos(x_t of the denoise, x_t of the inversion), shape (B,).

    Args:
        denoised: ``[x_T, ..., x_end]`` of the denoise (n + 1 tensors).
        inverted: ``[x_end, ..., x̃_T]`` of the inversion from ``x_end`` (n + 1 tensors, the same levels reversed).
    """
    back = inverted[::-1]  # [x̃_T, ..., x_end]: level by level with ``denoised``
    return torch.stack([flat_cosine(d, u) for d, u in zip(denoised[:-1], back[:-1], strict=True)]).mean(0)


def frozen(denoiser: Denoiser) -> Denoiser:
    """``denoiser`` with its output detached and computed without a graph (the ``stopgrad-unet`` call).

    DDIM is affine in the latent given ε, so a chain of frozen calls still carries a gradient along the latent.
    """
    def call(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return denoiser(x, t)
    return call


def partly_frozen(denoiser: Denoiser, live: Callable[[torch.Tensor], bool]) -> Denoiser:
    """``denoiser`` differentiated at the timesteps where ``live(t)`` holds and :func:`frozen` elsewhere."""
    still = frozen(denoiser)

    def call(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return denoiser(x, t) if live(t) else still(x, t)
    return call


def grad_ready(ctx: NoiseContext) -> NoiseContext:
    """``ctx`` with its embeddings cloned, so tensors made under ``torch.inference_mode`` can enter autograd."""
    return replace(ctx, cond=ctx.cond.copy(), uncond=ctx.uncond.copy())


class StabilityScore(NoiseMethod):
    """The inversion stability ``s(ε) = cos(ε, F(ε))`` of a noise, and its variants; as a method, the identity.

    Used as a noise method it returns its input and records, per sample, ``stability/s`` (``s_T``, the paper's
    score), ``stability/s_traj`` and, with ``partial_steps``, ``stability/s_partial`` (:meth:`sample_stats`): an
    evaluation then holds each Gaussian noise's stability beside its image's scores.

    Args:
        steps: T, the DDIM grid of the round trip; ``None`` uses the evaluation's sampler steps.
        denoise_guidance: w_d of the denoise (the paper does not say); ``None`` uses the images' guidance.
        inversion_guidance: w_i of the inversion (not stated either); ``None`` uses w_d (strict stability).
        inverter: ``ddim`` (textbook inversion, the paper's Eq. 2) or ``fixed-point`` (ReNoise-style refinement).
        inversion_iterations: fixed-point refinements per inversion step (``fixed-point`` only).
        partial_steps: also score the partial round trip ``s_k`` with k = this many steps (``None``: not scored).
    """

    def __init__(self, steps: int | None = None, denoise_guidance: float | None = None,
                 inversion_guidance: float | None = None, inverter: InverterName = "ddim",
                 inversion_iterations: int = 3, partial_steps: int | None = None) -> None:
        super().__init__()
        if steps is not None:
            check_int("steps", steps, minimum=1)
        if partial_steps is not None:
            check_int("partial_steps", partial_steps, minimum=1)
            if steps is not None and partial_steps > steps:
                raise ValueError(f"partial_steps={partial_steps} exceeds the round trip's steps={steps}.")
        make_inverter(inverter, inversion_iterations)  # checks the name and the iterations
        self.steps, self.denoise_guidance, self.inversion_guidance = steps, denoise_guidance, inversion_guidance
        self.inverter, self.inversion_iterations, self.partial_steps = inverter, inversion_iterations, partial_steps
        self._stats: dict[str, torch.Tensor] = {}

    # --- settings resolved against an evaluation's sampler -----------------------------------------------------

    def round_trip_steps(self, sampler: SamplerSettings) -> int:
        """T of the round trip."""
        return self.steps or sampler.steps

    def guidances(self, sampler: SamplerSettings) -> tuple[float, float]:
        """``(w_d, w_i)``: the denoise and inversion guidance."""
        w_d = sampler.guidance_scale if self.denoise_guidance is None else self.denoise_guidance
        return w_d, w_d if self.inversion_guidance is None else self.inversion_guidance

    def evaluations_per_round_trip(self, sampler: SamplerSettings, steps: int | None = None) -> int:
        """Denoiser evaluations of one round trip per image: ``n·e(w_d) + n·c·e(w_i)``.

        ``c`` is the inverter's calls per step and n = ``steps`` (default T): the paper's ``2T`` for the textbook
        inverter without guidance.
        """
        n = steps or self.round_trip_steps(sampler)
        w_d, w_i = self.guidances(sampler)
        calls = inverter_calls_per_step(self.inverter, self.inversion_iterations)
        return n * evaluations_per_step(w_d) + n * calls * evaluations_per_step(w_i)

    def evaluations_per_image(self, sampler: SamplerSettings) -> int:
        """Denoiser evaluations of :meth:`scores` per image (the partial round trip included)."""
        partial = self.evaluations_per_round_trip(sampler, self.partial_steps) if self.partial_steps else 0
        return self.evaluations_per_round_trip(sampler) + partial

    # --- the round trip -------------------------------------------------------------------------------------------

    def schedule(self, ctx: NoiseContext) -> Schedule:
        """The grid of the round trip: DDIM on DDPM backbones, flow Euler on flow-matching ones."""
        return ctx.backbone.schedule(self.round_trip_steps(ctx.sampler), ctx.latent_shape()[1:])

    def denoisers(self, ctx: NoiseContext) -> tuple[Denoiser, Denoiser]:
        """The denoise and inversion denoisers, bound to the same conditioning (SDXL pooled embeddings included)."""
        w_d, w_i = self.guidances(ctx.sampler)
        backbone = ctx.backbone
        return backbone.denoiser(ctx.cond, ctx.uncond, w_d), backbone.denoiser(ctx.cond, ctx.uncond, w_i)

    def round_trip(self, noise: torch.Tensor, ctx: NoiseContext, num_steps: int | None = None,
                   denoisers: tuple[Denoiser, Denoiser] | None = None, checkpoint: bool = False,
                   ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """``F(ε)`` and both trajectories; with ``num_steps = k`` the partial round trip ``F_k``.

        Args:
            noise: ε, shape (B, C, h, w), fp32.
            ctx: the context of the B samples.
            num_steps: k steps down and back up; ``None`` the full T.
            denoisers: ``(denoise, invert)`` to use instead of :meth:`denoisers` (e.g. partly frozen ones).
            checkpoint: recompute each denoiser call in the backward pass.

        Returns:
            ``(F(ε), [x_T, ..., x_end], [x_end, ..., x̃_T])``.
        """
        denoise, invert = denoisers or self.denoisers(ctx)
        schedule = self.schedule(ctx)
        inverter = make_inverter(self.inverter, self.inversion_iterations)
        end, down = sample(denoise, noise, schedule, return_trajectory=True, checkpoint=checkpoint,
                           num_steps=num_steps)
        back, up = inverter(invert, end, schedule, return_trajectory=True, checkpoint=checkpoint,
                            num_steps=num_steps)
        return back, down, up

    def scores(self, noise: torch.Tensor, ctx: NoiseContext) -> dict[str, torch.Tensor]:
        """``{"stability/s", "stability/s_traj"[, "stability/s_partial"]}``, each of shape (B,), without gradients.

        Raises:
            ValueError: ``partial_steps`` exceeds the round trip's steps.
        """
        self._check_partial(ctx.sampler)
        x = noise.to(ctx.backbone.device, torch.float32)  # (B, C, h, w)
        with torch.no_grad():
            back, down, up = self.round_trip(x, ctx)
            out = {"stability/s": flat_cosine(x, back), "stability/s_traj": trajectory_cosine(down, up)}
            if self.partial_steps:
                out["stability/s_partial"] = flat_cosine(x, self.round_trip(x, ctx, self.partial_steps)[0])
        return out

    def _check_partial(self, sampler: SamplerSettings) -> None:
        steps = self.round_trip_steps(sampler)
        if self.partial_steps and self.partial_steps > steps:
            raise ValueError(f"partial_steps={self.partial_steps} exceeds the round trip's {steps} steps.")

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        self._stats = self.scores(noise, ctx)
        return noise

    def sample_stats(self) -> dict[str, torch.Tensor]:
        return self._stats


def _rows_that_fit(memory_limit_mib: float | None, row_bytes: float) -> int | None:
    """Candidates per chunk under the memory limit (``None``: no limit)."""
    if memory_limit_mib is None:
        return None
    rows = int(memory_limit_mib * 2**20 // row_bytes)
    if rows < 1:
        raise ValueError(f"memory_limit_mib={memory_limit_mib:g} is too small for one candidate, which needs about "
                         f"{row_bytes / 2**20:.2f} MiB; raise the limit (or lower activation_factor if the estimate "
                         "is too high for your model).")
    return rows


class StabilitySelection(NoiseMethod):
    """The most stable of ``k`` candidate noises per sample (the paper's Algorithm 1), or the least, or a random one.

    The three picks make the paper's "stable vs unstable" comparison and its control three methods of one evaluation.

    Candidate 0 is the input noise and candidate ``j ≥ 1`` the Gaussian noise of
    :func:`~goldennoise.noise.selection.candidate_seed` ``(seed, j)``, as in
    :class:`~goldennoise.noise.BestOfN`, so a sample's candidates do not depend on its batch. All B·k candidates are
    scored batched, in chunks that fit ``memory_limit_mib``. The chosen noise is sampled again by the evaluation
    (the paper reuses the cached ``D(ε*)``): ``2·T·k`` evaluations per image plus the sampling, without guidance.

    Records per sample: ``stability/s`` of the pick, ``stability/s_max``, ``stability/s_min``,
    ``stability/s_input`` (candidate 0) and ``stability/pick`` (the chosen candidate's index); with
    ``record_candidates``, also every candidate's scores (``stability/candidate<j>/<score>``) and the index each rule
    would pick (``stability/pick_<rule>``), so that, with the candidates' images read by
    :class:`~goldennoise.noise.BestOfN` (same candidates) in the same evaluation, the three picks are one scoring.

    Args:
        k: candidates per sample; :meth:`fit_budget` overrides it from an evaluation's budget.
        pick: ``most`` (the paper's method), ``least`` (the paper's "unstable" arm) or ``random`` (the control:
            scored like the others, then one candidate drawn uniformly).
        score: the stability score's settings (steps, guidance of each direction, inverter); default
            :class:`StabilityScore` ().
        memory_limit_mib: memory for one chunk of candidates; ``None`` scores all B·k at once.
        activation_factor: [goldennoise estimate] one denoiser row's forward working memory in units of one fp32
            latent, used with ``memory_limit_mib``; a rough guide for UNets; calibrate on your model.
        random_seed: seed of the ``random`` pick (each sample draws from its own seed and this one).
        record_candidates: also record every candidate's scores and every rule's pick (see above).
    """

    def __init__(self, k: int = 8, pick: PickRule = "most", score: StabilityScore | None = None,
                 memory_limit_mib: float | None = None, activation_factor: float = 2048.0,
                 random_seed: int = 0, record_candidates: bool = False) -> None:
        super().__init__()
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"StabilitySelection needs k >= 1 candidates, got {k!r}.")
        if pick not in ("most", "least", "random"):
            raise ValueError(f"Unknown pick {pick!r}; choose 'most', 'least' or 'random'.")
        if memory_limit_mib is not None and memory_limit_mib <= 0:
            raise ValueError(f"memory_limit_mib must be positive, got {memory_limit_mib}.")
        self.k, self.pick, self.memory_limit_mib = k, pick, memory_limit_mib
        self.activation_factor, self.random_seed = activation_factor, random_seed
        self.record_candidates = record_candidates
        self.score = score or StabilityScore()
        self._stats: dict[str, torch.Tensor] = {}

    def fit_budget(self, evaluations_per_image: float, sampler: SamplerSettings) -> None:
        """As many candidates as the budget pays round trips for after the final sampling (at least one)."""
        spare = evaluations_per_image - sampler.evaluations_per_image()
        self.k = max(1, int(spare // self.score.evaluations_per_round_trip(sampler)))

    def candidate_bytes(self, ctx: NoiseContext) -> float:
        """Estimated memory of one candidate: its 2(T + 1) fp32 trajectory latents and one denoiser call's rows."""
        latent = 4 * torch.Size(ctx.latent_shape()).numel()
        w_d, w_i = self.score.guidances(ctx.sampler)
        rows = max(evaluations_per_step(w_d), evaluations_per_step(w_i))
        return latent * (2 * (self.score.round_trip_steps(ctx.sampler) + 1) + rows * self.activation_factor)

    def candidates(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        """The k candidates of every sample, (B, k, C, h, w); candidate 0 is ``noise``."""
        others = [noise_for_seeds([candidate_seed(s, j) for s in ctx.seeds], noise.shape[1:], dtype=noise.dtype,
                                  device=noise.device) for j in range(1, self.k)]
        return torch.stack([noise, *others], dim=1)

    def _random_picks(self, seeds: list[int]) -> torch.Tensor:
        picks = [int(torch.randint(self.k, (1,), generator=torch.Generator().manual_seed(
            candidate_seed(seed, -1 - self.random_seed)))) for seed in seeds]
        return torch.tensor(picks)

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        chunk = _rows_that_fit(self.memory_limit_mib, self.candidate_bytes(ctx))  # before any sampling
        self.score._check_partial(ctx.sampler)
        pool = self.candidates(noise, ctx)  # (B, k, C, h, w)
        flat = pool.flatten(0, 1)  # (B·k, C, h, w), sample-major
        owner = torch.arange(len(ctx)).repeat_interleave(self.k)  # (B·k,)
        size = chunk or len(flat)
        parts = [self.score.scores(flat[i:i + size], ctx.rows(owner[i:i + size])) for i in range(0, len(flat), size)]
        scores = {key: torch.cat([p[key] for p in parts]).view(len(ctx), self.k).cpu() for key in parts[0]}  # (B, k)
        s = scores["stability/s"]
        picks = {"most": s.argmax(1), "least": s.argmin(1), "random": self._random_picks(ctx.seeds)}  # ties: first
        index = picks[self.pick]
        rows = torch.arange(len(ctx))
        self._stats = {"stability/s": s[rows, index], "stability/s_max": s.max(1).values,
                       "stability/s_min": s.min(1).values, "stability/s_input": s[:, 0],
                       "stability/pick": index.float()}
        if self.record_candidates:
            self._stats |= {f"stability/pick_{rule}": picked.float() for rule, picked in picks.items()}
            self._stats |= {f"stability/candidate{j}/{key.removeprefix('stability/')}": value[:, j]
                            for key, value in scores.items() for j in range(self.k)}
        return pool[rows, index.to(pool.device)]

    def sample_stats(self) -> dict[str, torch.Tensor]:
        return self._stats


def noise_statistics(noise: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample ``norm``, ``mean`` and ``std`` of flattened noise (B, ...) → (B,) each (Gaussian: √d, 0, 1)."""
    flat = noise.detach().flatten(1).float()
    return {"noise/norm": flat.norm(dim=1), "noise/mean": flat.mean(1), "noise/std": flat.std(1)}


class StabilityOptimization(NoiseMethod):
    """Maximise the inversion stability of the noise by SGD with momentum on ``1 − s`` (the paper's Algorithm 2).

    Runs with gradients whatever the caller's grad mode (``torch.no_grad``, ``torch.inference_mode``): the noise
    and embeddings are cloned into normal tensors and the loop runs under ``torch.enable_grad``.

    **Gradient modes** (only ``full`` is the paper's; the others are goldennoise's, see docs/stability.md):

    * ``full``: through all 2T denoiser calls, each checkpointed (only the latents are kept; every call is
      recomputed in the backward pass, counted as a second evaluation).
    * ``truncated``: the denoiser is differentiated only in the last ``gradient_k`` inversion calls (the k highest
      timesteps); every other call is frozen (output detached, as ``stopgrad-unet``), so the gradient still reaches
      ε along DDIM's affine path. [goldennoise choice: detaching the *latent* before the last k calls, the literal
      reading, would leave no path from ε into F at all.]
    * ``partial-roundtrip``: optimise the partial round trip ``s_k`` (k = ``gradient_k`` steps down and back),
      full gradient through its 2k calls; the full ``s`` is measured before and after.
    * ``stopgrad-unet``: every denoiser output detached; the gradient follows DDIM's affine maps only.

    **Step size.** ``step_size="paper"`` is plain SGD with ``lr`` (the paper: 100 at SDXL 1024², d = 65,536). The
    cosine's gradient has norm ≤ 1/‖ε‖ ≈ 1/√d, so that lr moves ε by at most lr/d ≈ 0.15 % of its norm per step there,
    and 4× more (relative) at 512², 256× more on a d = 256 latent. ``step_size="relative"`` rescales each
    sample's gradient to ``‖ε‖·g/‖g‖`` and uses ``lr_rel``: every step (before momentum) moves ε by ``lr_rel`` of its
    norm at any resolution; ``lr_rel = 1.5e-3`` matches the paper's bound at its resolution.

    Records per sample: ``stability/s_initial`` and ``stability/s_final`` (full ``s``), ``stability/objective_gain``
    (the optimised score's change), ``noise/norm``, ``noise/mean``, ``noise/std`` of the output and
    ``noise/norm_input``; :attr:`history` holds the optimised score of every step, (steps + 1, B).

    Args:
        steps: optimisation steps (the paper: 100).
        lr: SGD learning rate for ``step_size="paper"`` (the paper: 100).
        momentum: SGD momentum (the paper: 0.5).
        step_size: ``paper`` (plain lr) or ``relative`` (``lr_rel`` of the norm per step).
        lr_rel: the relative step of ``step_size="relative"``.
        gradient_mode: ``full``, ``truncated``, ``partial-roundtrip`` or ``stopgrad-unet`` (see above).
        gradient_k: k of ``truncated`` (differentiated inversion calls) and ``partial-roundtrip`` (steps).
        project: after every step, rescale each noise back to the Gaussian norm shell ‖ε‖ = √d (not in the paper).
        keep: ``final`` (the last iterate; the paper's output as far as it says) or ``best`` (the iterate with the
            highest optimised score).
        score: the stability score's settings (steps, guidance of each direction, inverter).
    """

    def __init__(self, steps: int = 100, lr: float = 100.0, momentum: float = 0.5, step_size: StepSize = "paper",
                 lr_rel: float = 1.5e-3, gradient_mode: GradientMode = "full", gradient_k: int = 2,
                 project: bool = False, keep: Literal["final", "best"] = "final",
                 score: StabilityScore | None = None) -> None:
        super().__init__()
        check_int("steps", steps, minimum=0)
        check_int("gradient_k", gradient_k, minimum=1)
        if step_size not in ("paper", "relative"):
            raise ValueError(f"Unknown step_size {step_size!r}; choose 'paper' or 'relative'.")
        if gradient_mode not in ("full", "truncated", "partial-roundtrip", "stopgrad-unet"):
            raise ValueError(f"Unknown gradient_mode {gradient_mode!r}; choose 'full', 'truncated', "
                             "'partial-roundtrip' or 'stopgrad-unet'.")
        if keep not in ("final", "best"):
            raise ValueError(f"keep must be 'final' or 'best', got {keep!r}.")
        if lr <= 0 or lr_rel <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"Need lr > 0, lr_rel > 0 and 0 <= momentum < 1; got {lr}, {lr_rel}, {momentum}.")
        self.steps, self.lr, self.momentum, self.step_size, self.lr_rel = steps, lr, momentum, step_size, lr_rel
        self.gradient_mode, self.gradient_k, self.project, self.keep = gradient_mode, gradient_k, project, keep
        self.score = score or StabilityScore()
        self._stats: dict[str, torch.Tensor] = {}
        self.history = torch.empty(0)

    def objective(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        """The optimised score of each sample (B,), differentiable as ``gradient_mode`` says."""
        score = self.score
        denoise, invert = score.denoisers(ctx)
        if self.gradient_mode == "partial-roundtrip":
            return flat_cosine(noise, score.round_trip(noise, ctx, self.gradient_k, checkpoint=True)[0])
        if self.gradient_mode == "stopgrad-unet":
            return flat_cosine(noise, score.round_trip(noise, ctx, denoisers=(frozen(denoise), frozen(invert)))[0])
        if self.gradient_mode == "truncated":
            top = score.schedule(ctx).timesteps[:self.gradient_k]  # the k highest levels: the last inversion calls
            live = partly_frozen(invert, lambda t: bool((top == t).any()))
            return flat_cosine(noise, score.round_trip(noise, ctx, denoisers=(frozen(denoise), live),
                                                       checkpoint=True)[0])
        return flat_cosine(noise, score.round_trip(noise, ctx, checkpoint=True)[0])

    def _check_k(self, sampler: SamplerSettings) -> None:
        steps = self.score.round_trip_steps(sampler)
        if self.gradient_mode in ("truncated", "partial-roundtrip") and self.gradient_k > steps:
            raise ValueError(f"gradient_k={self.gradient_k} exceeds the round trip's {steps} steps.")

    def _rescale(self, eps: torch.Tensor) -> None:
        """Relative step size: each sample's gradient becomes ‖ε‖·g/‖g‖."""
        g = eps.grad.flatten(1)
        scale = eps.detach().flatten(1).norm(dim=1) / g.norm(dim=1).clamp_min(1e-30)  # (B,)
        eps.grad.mul_(scale.view(-1, *([1] * (eps.dim() - 1))))

    def forward(self, noise: torch.Tensor, ctx: NoiseContext) -> torch.Tensor:
        self._check_k(ctx.sampler)
        self.score._check_partial(ctx.sampler)
        with torch.inference_mode(False), torch.enable_grad():
            ctx = grad_ready(ctx)
            start = noise.detach().to(ctx.backbone.device, torch.float32).clone()  # (B, C, h, w)
            eps, best, history = self._optimise(start, ctx)
            out = best if self.keep == "best" else eps
            reached = history.max(0).values if self.keep == "best" else history[-1]  # the optimised score of out
            if self.gradient_mode == "partial-roundtrip":  # the optimised score is s_k: measure s itself
                s_initial, s_final = (self.score.scores(x, ctx)["stability/s"] for x in (start, out))
            else:  # every other mode's forward value is s itself
                s_initial, s_final = history[0], reached
        self.history = history
        self._stats = {"stability/s_initial": s_initial, "stability/s_final": s_final,
                       "stability/objective_gain": reached - history[0],
                       **noise_statistics(out), "noise/norm_input": start.flatten(1).norm(dim=1)}
        return out.to(noise.device, noise.dtype)

    def _optimise(self, start: torch.Tensor, ctx: NoiseContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(last iterate, best iterate, optimised score per step (steps + 1, B))``."""
        eps = start.clone().requires_grad_(True)
        lr = self.lr if self.step_size == "paper" else self.lr_rel
        optimiser = torch.optim.SGD([eps], lr=lr, momentum=self.momentum)
        shell = torch.Size(start.shape[1:]).numel() ** 0.5
        history, best, best_value = [], start.clone(), torch.full((len(start),), -2.0, device=start.device)
        for step in range(self.steps + 1):
            if step == self.steps:  # the last iterate is scored, not stepped
                with torch.no_grad():
                    value = self.objective(eps, ctx)
            else:
                optimiser.zero_grad()
                value = self.objective(eps, ctx)
                (1 - value).sum().backward()
            value = value.detach()
            history.append(value)
            better = value > best_value
            best = torch.where(better.view(-1, 1, 1, 1), eps.detach(), best)
            best_value = torch.where(better, value, best_value)
            if step < self.steps:
                if self.step_size == "relative":
                    self._rescale(eps)
                optimiser.step()
                if self.project:
                    with torch.no_grad():
                        eps.mul_(shell / eps.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        return eps.detach(), best, torch.stack(history)

    def sample_stats(self) -> dict[str, torch.Tensor]:
        return self._stats
