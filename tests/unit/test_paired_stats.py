"""Paired comparisons: the bootstrap CI of a mean difference and the summary the NPNet experiment reports."""

import pytest
import torch

from goldennoise.metrics import paired_bootstrap_ci, paired_summary


def test_constant_differences_have_a_degenerate_interval():
    low, high = paired_bootstrap_ci(torch.full((50,), 0.25))
    assert low == pytest.approx(0.25) and high == pytest.approx(0.25)


def test_interval_matches_the_normal_approximation_on_a_large_sample():
    diffs = torch.randn(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.3 + 0.1
    low, high = paired_bootstrap_ci(diffs, resamples=4000)
    half = 1.96 * diffs.std().item() / len(diffs) ** 0.5
    assert low == pytest.approx(diffs.mean().item() - half, abs=0.15 * half)
    assert high == pytest.approx(diffs.mean().item() + half, abs=0.15 * half)


def test_pairing_is_kept_so_a_shared_offset_cancels():
    base = torch.linspace(0, 1, 200)  # widely spread scores
    low, high = paired_bootstrap_ci(base + 0.01 - base)
    assert low == pytest.approx(0.01, abs=1e-6) and high == pytest.approx(0.01, abs=1e-6)


def test_summary_reports_means_delta_and_win_loss_shares():
    baseline = torch.tensor([0.5, 0.5, 1.0, 0.0])
    method = torch.tensor([1.0, 0.5, 0.5, 0.0])
    summary = paired_summary(baseline, method, resamples=200)
    assert summary["baseline"] == pytest.approx(0.5) and summary["method"] == pytest.approx(0.5)
    assert summary["delta"] == pytest.approx(0.0)
    assert summary["wins"] == pytest.approx(0.25) and summary["losses"] == pytest.approx(0.25)
    low, high = summary["delta_ci95"]
    assert low <= 0.0 <= high


@pytest.mark.parametrize("bad", [torch.zeros(0), torch.zeros(2, 3)])
def test_bad_differences_are_refused(bad):
    with pytest.raises(ValueError, match="1-D"):
        paired_bootstrap_ci(bad)


def test_unpaired_shapes_are_refused():
    with pytest.raises(ValueError, match="equal shapes"):
        paired_summary(torch.zeros(3), torch.zeros(4))


def test_resampling_by_prompt_widens_the_interval_when_seeds_of_a_prompt_agree():
    prompt_effect = torch.randn(50, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    diffs = prompt_effect.repeat_interleave(8)  # 8 seeds per prompt, all with their prompt's difference
    groups = torch.arange(50).repeat_interleave(8)
    pair_low, pair_high = paired_bootstrap_ci(diffs, resamples=4000)
    low, high = paired_bootstrap_ci(diffs, resamples=4000, groups=groups)
    assert (high - low) > 2.3 * (pair_high - pair_low)  # ≈ √8 when the 8 seeds are one observation
    half = 1.96 * prompt_effect.std().item() / 50**0.5
    assert high - low == pytest.approx(2 * half, rel=0.15)


def test_resampling_by_prompt_changes_nothing_with_one_pair_per_prompt():
    diffs = torch.randn(300, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    by_pair = paired_bootstrap_ci(diffs, resamples=2000, seed=3)
    by_prompt = paired_bootstrap_ci(diffs, resamples=2000, seed=3, groups=torch.arange(300))
    assert by_prompt == pytest.approx(by_pair, abs=0.02)
