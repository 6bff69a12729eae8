"""goldennoise.data.base.split_indices: the train/validation split of the NPD and text-image DataModules."""

import pytest

from goldennoise.data import NoisePairDataModule, TextImagePairDataModule
from goldennoise.data.base import check_split, split_indices

FIRST = [(f"a prompt {i % 1500}", i // 1500) for i in range(3000)]  # 1,500 distinct prompts × 2 seeds
GROWN = FIRST + [(f"a prompt {i}", 0) for i in range(1500, 2000)] + [(f"a prompt {i}", 2) for i in range(100)]


def held_out(split_by: str, pairs: list[tuple[str, int]], seed: int = 3) -> set:
    """The held-out prompts (prompt splits) or pairs (item splits), after checking the split's invariants."""
    prompts, seeds = [p for p, _ in pairs], [s for _, s in pairs]
    val, train = split_indices(prompts, seeds, split_by, 0.1, seed)
    assert sorted(val + train) == list(range(len(pairs))) and val == sorted(val) and train == sorted(train)
    if split_by.startswith("prompt"):
        assert not {prompts[i] for i in val} & {prompts[i] for i in train}
        return {prompts[i] for i in val}
    return {pairs[i] for i in val}


@pytest.mark.parametrize("split_by", ["prompt_hash", "item_hash"])
def test_a_hash_split_keeps_every_prompt_or_pair_on_its_side_when_the_dataset_grows(split_by):
    unit = (lambda p: p[0]) if split_by == "prompt_hash" else (lambda p: p)
    old = {unit(p) for p in FIRST}
    assert held_out(split_by, GROWN) & old == held_out(split_by, FIRST)
    total = len({unit(p) for p in GROWN})
    assert abs(len(held_out(split_by, GROWN)) / total - 0.1) < 0.025  # binomial sd 0.5-0.7 points here
    assert held_out(split_by, FIRST, seed=4) != held_out(split_by, FIRST)


@pytest.mark.parametrize("split_by", ["prompt", "item"])
def test_a_permutation_split_holds_out_an_exact_share_and_reshuffles_when_the_dataset_grows(split_by):
    unit = (lambda p: p[0]) if split_by == "prompt" else (lambda p: p)
    assert len(held_out(split_by, FIRST)) == round(0.1 * len({unit(p) for p in FIRST}))
    assert held_out(split_by, GROWN) & {unit(p) for p in FIRST} != held_out(split_by, FIRST)


def test_permutation_splits_reproduce_the_splits_every_earlier_run_trained_with():
    """The values the per-module permutation code gave before the split was shared (pinned, computed with it)."""
    prompts = ["c", "a", "b", "a", "d", "e", "c", "f", "g", "h"]
    assert split_indices(prompts, [0] * 10, "prompt", 0.3, 3) == ([0, 5, 6], [1, 2, 3, 4, 7, 8, 9])
    assert split_indices(prompts, [0] * 10, "item", 0.3, 3) == ([0, 3, 6], [1, 2, 4, 5, 7, 8, 9])


def test_a_hash_split_refuses_a_fractional_seed():
    with pytest.raises(TypeError):
        split_indices(["a"], [1.0], "item_hash", 0.5, 0)


def test_bad_split_settings_are_refused_by_both_datamodules(tmp_path):
    with pytest.raises(ValueError, match="split_by must be one of 'prompt', 'prompt_hash', 'item', 'item_hash', "
                                         "got 'hash'"):
        check_split("hash", 0.1)
    for make in (NoisePairDataModule, TextImagePairDataModule):
        with pytest.raises(ValueError, match="split_by must be one of"):
            make(str(tmp_path), split_by="hash")
        with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1.0"):
            make(str(tmp_path), val_fraction=1.0)
