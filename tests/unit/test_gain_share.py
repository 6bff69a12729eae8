"""gain_share: the share of a reference's gain a method reaches, bootstrapped by prompt."""

import pytest
import torch

from goldennoise.metrics import gain_share


def test_gain_share_is_the_ratio_of_mean_gains_with_a_prompt_bootstrap():
    groups = torch.arange(40).repeat_interleave(2)  # 40 prompts x 2 seeds
    baseline = torch.zeros(80)
    reference = torch.ones(80) + 0.1 * torch.randn(80, generator=torch.Generator().manual_seed(0))
    method = 0.8 * reference
    out = gain_share(baseline, reference, method, groups, resamples=2000)
    assert out["share"] == pytest.approx(0.8)
    assert out["share_ci95"][0] == pytest.approx(0.8) and out["share_ci95"][1] == pytest.approx(0.8)
    noisy = gain_share(baseline, reference, reference * torch.rand(80, generator=torch.Generator().manual_seed(1)),
                       groups, resamples=2000)
    low, high = noisy["share_ci95"]
    assert low < noisy["share"] < high and out["pairs"] == 80
    with pytest.raises(ValueError, match="1-D per-pair scores"):
        gain_share(baseline, reference, method, groups[:10])
