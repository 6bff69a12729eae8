"""Input checks: bad tensors and settings fail at the public entry points, early, naming the argument."""

import importlib
import math

import numpy as np
import pytest
import torch

from goldennoise.checks import check_finite, check_int, check_prompts, check_tensor
from goldennoise.sampling import DDIMSchedule, ddim_move, invert_ddim, redenoise_step, sample_ddim

BAD_TENSORS = {
    "nan": (torch.tensor(float("nan")), ValueError, r"non-finite values \(1 NaN and 0 infinite of 32 values\)"),
    "inf": (torch.tensor(float("inf")), ValueError, r"non-finite values \(0 NaN and 1 infinite of 32 values\)"),
    "int64": (torch.zeros((), dtype=torch.int64), TypeError, "floating-point tensor, got dtype torch.int64"),
    "bool": (torch.zeros((), dtype=torch.bool), TypeError, "floating-point tensor, got dtype torch.bool"),
}


def bad_tensor(kind: str, shape=(2, 1, 4, 4)) -> tuple[torch.Tensor, type, str]:
    """A tensor spoilt as ``kind`` (one NaN or inf element, or a non-float dtype), its error and message."""
    value, error, message = BAD_TENSORS[kind]
    tensor = torch.zeros(shape, dtype=value.dtype)
    tensor[0, 0, 1, 2] = value
    return tensor, error, message


def schedule(num_steps: int = 4) -> DDIMSchedule:
    alphas_cumprod = torch.linspace(0.999, 0.01, 1000)
    return DDIMSchedule(alphas_cumprod, torch.arange(num_steps - 1, -1, -1) * (1000 // num_steps) + 1, 1.0)


def counting_denoiser(calls: list):
    def denoiser(x, t):
        calls.append(int(t))
        return 0.1 * x

    return denoiser


# --- the helper ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_TENSORS))
def test_check_tensor_names_the_argument_and_the_problem(kind):
    tensor, error, message = bad_tensor(kind)
    with pytest.raises(error, match=rf"^latents (must be a|holds) .*{message}"):
        check_tensor("latents", tensor)


def test_check_tensor_checks_shapes_with_named_free_sizes_and_passes_good_tensors_through():
    good = torch.randn(2, 4, 8, 8)
    assert check_tensor("noise", good, shape=("B", 4, "h", "w")) is good
    with pytest.raises(ValueError, match=r"noise must have shape \(B, 4, h, w\), got \(2, 3, 8, 8\)"):
        check_tensor("noise", torch.randn(2, 3, 8, 8), shape=("B", 4, "h", "w"))
    with pytest.raises(ValueError, match=r"got \(4, 8, 8\)"):
        check_tensor("noise", torch.randn(4, 8, 8), shape=("B", 4, "h", "w"))
    with pytest.raises(TypeError, match="noise must be a torch.Tensor, got ndarray"):
        check_tensor("noise", np.zeros((2, 4, 8, 8), dtype=np.float32))
    integer = torch.zeros(3, dtype=torch.long)
    assert check_tensor("index", integer, floating=False) is integer
    assert check_tensor("x", torch.tensor([float("nan")]), finite=False).isnan().all()


@pytest.mark.parametrize(("value", "minimum", "message"), [
    (1.7, 1, "must be an integer, got 1.7"), (2.0, 1, "must be an integer, got 2.0"),
    (True, 0, "must be an integer, got True"), ("3", 1, "must be an integer, got '3'"),
    (0, 1, "must be at least 1, got 0"), (-3, 2, "must be at least 2, got -3"),
])
def test_check_int_refuses_non_integers_and_small_values(value, minimum, message):
    with pytest.raises(ValueError, match=f"^num_steps {message}"):
        check_int("num_steps", value, minimum)


def test_check_int_takes_integer_scalars_of_any_library_and_bounds_above():
    assert check_int("n", np.int64(5), 1) == 5 and check_int("n", torch.tensor(7), 1) == 7
    with pytest.raises(ValueError, match="between 0 and 9, got 10"):
        check_int("n", 10, 0, 9)


def test_check_finite_and_check_prompts():
    assert check_finite("margin", np.float32(0.5)) == 0.5
    for value in (math.nan, math.inf, "5", True):
        with pytest.raises(ValueError, match="^margin must be"):
            check_finite("margin", value)
    assert check_prompts("prompts", ("a", " b ")) == ["a", " b "]
    with pytest.raises(ValueError, match=r"prompts\[1\] is ' \\t'; every prompt needs some text"):
        check_prompts("prompts", ["a", " \t"])
    with pytest.raises(ValueError, match=r"prompts\[0\] is None"):
        check_prompts("prompts", [None])
    with pytest.raises(ValueError, match="single string"):
        check_prompts("prompts", "a cat")


# --- the sampling entry points ------------------------------------------------------------------------------------


SAMPLING_ENTRY_POINTS = {
    "sample_ddim": ("noise", lambda d, x: sample_ddim(d, x, schedule())),
    "invert_ddim": ("latents", lambda d, x: invert_ddim(d, x, schedule())),
    "redenoise_step": ("noise", lambda d, x: redenoise_step(d, d, x, schedule())),
}


@pytest.mark.parametrize("kind", sorted(BAD_TENSORS))
@pytest.mark.parametrize("entry", sorted(SAMPLING_ENTRY_POINTS))
def test_sampling_refuses_bad_noise_before_the_first_step(entry, kind):
    argument, run = SAMPLING_ENTRY_POINTS[entry]
    tensor, error, message = bad_tensor(kind)
    calls = []
    with pytest.raises(error, match=rf"^{argument} .*{message}"):
        run(counting_denoiser(calls), tensor)
    assert calls == []


def test_redenoise_step_refuses_zero_repeats():
    with pytest.raises(ValueError, match="repeats must be at least 1, got 0"):
        redenoise_step(lambda x, t: x, lambda x, t: x, torch.zeros(1, 1, 2, 2), schedule(), repeats=0)


def test_checks_leave_gradients_through_the_sampler_exact():
    # ε = 0.1 x makes every DDIM step x ↦ k_i x, so d(sum x_0)/d(noise) = ∏ k_i everywhere
    grid = schedule(4)
    noise = torch.randn(2, 1, 4, 4, requires_grad=True)
    sample_ddim(lambda x, t: 0.1 * x, noise, grid).sum().backward()
    expected = 1.0
    for t in grid.timesteps:
        one = torch.ones(())
        expected *= float(ddim_move(one, 0.1 * one, grid.alpha(t), grid.alpha(grid.previous(t)))[0])
    torch.testing.assert_close(noise.grad, torch.full_like(noise, expected))


# --- constructors: settings fail before any model is loaded -------------------------------------------------------


@pytest.fixture
def no_backbone_loading(monkeypatch):
    """Make loading a backbone fail the test: every check below must fire before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("a backbone was loaded before the settings were checked")

    for module in ("goldennoise.lit.frozen", "goldennoise.lit.harness"):
        monkeypatch.setattr(importlib.import_module(module), "load_backbone", refuse)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_every_datamodule_refuses_a_bad_batch_size_at_construction(tmp_path, batch_size):
    from goldennoise.data import NoisePairDataModule, PromptSeedDataModule, ShapesDataModule

    for make in (lambda: PromptSeedDataModule(prompts=["a cat"], batch_size=batch_size),
                 lambda: NoisePairDataModule(str(tmp_path / "npd"), batch_size=batch_size),
                 lambda: ShapesDataModule(batch_size=batch_size)):
        with pytest.raises(ValueError, match=rf"^batch_size must be (an integer|at least 1), got {batch_size}"):
            make()


@pytest.mark.parametrize(("settings", "message"), [
    ({"prompts": ["a cat", " "]}, r"prompts\[1\] is ' '"),
    ({"seeds": "0-3.5"}, "Cannot parse seed range"),
    ({"split_seed": -1}, "split_seed must be between 0 and"),
    ({"num_workers": -2}, "num_workers must be at least 0"),
    ({"prompts": None, "prompt_file": "shapes:train:abc"}, "the count 'abc' is not an integer"),
])
def test_prompt_seed_datamodule_refuses_bad_settings(settings, message):
    from goldennoise.data import PromptSeedDataModule

    with pytest.raises(ValueError, match=message):
        PromptSeedDataModule(**{"prompts": ["a cat"], **settings})


@pytest.mark.parametrize(("settings", "message"), [
    ({"prompts": ["a cat", ""]}, r"prompts\[1\] is ''"),
    ({"prompts": ["a cat"], "prompt_source": "shapes:test:4"}, "prompts or a prompt_source, not both"),
    ({"seeds": [2**64]}, "seed must be between 0 and"),
    ({"steps": 0}, "steps must be at least 1, got 0"),
    ({"scheduler": "heun"}, "Unknown scheduler 'heun'"),
    ({"every_n_epochs": -1}, "every_n_epochs must be at least 0"),
    ({"guidance_scale": math.inf}, "guidance_scale must be finite"),
    ({"baselines": {}}, "baselines needs at least one Gaussian baseline"),
    ({"baselines": {"cfg/3": 3.0}}, r"Baseline names may hold .* \['cfg/3'\]"),
    ({"baselines": {"gaussian": math.nan}}, r"baselines\['gaussian'\] must be finite"),
    ({"image_size": 0}, "image_size must be at least 1, got 0"),
])
def test_harness_refuses_bad_settings_before_loading_the_backbone(no_backbone_loading, settings, message):
    from goldennoise.lit import NoiseMethodHarness

    with pytest.raises(ValueError, match=message):
        NoiseMethodHarness(backbone="tiny-sd", **settings)


@pytest.mark.parametrize("num_steps", [0, 1, -3])
def test_redenoise_regression_refuses_fewer_than_two_steps_before_loading_the_backbone(no_backbone_loading,
                                                                                      num_steps):
    from goldennoise.lit import RedenoiseRegressionModule

    with pytest.raises(ValueError, match=f"num_steps must be at least 2, got {num_steps}"):
        RedenoiseRegressionModule(num_steps=num_steps)
