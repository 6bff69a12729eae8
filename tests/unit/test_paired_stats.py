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
