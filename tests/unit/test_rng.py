import numpy as np
import pytest
import torch

from goldennoise.sampling import SEED_MAX, noise_for_seeds, paired_items, parse_seeds


def test_seed_noise_is_independent_of_batch():
    seeds = [3, 1, 4, 1, 5, 9, 2, 6]
    batch = noise_for_seeds(seeds, (4, 8, 8))
    assert batch.shape == (8, 4, 8, 8)
    for i, seed in enumerate(seeds):
        torch.testing.assert_close(noise_for_seeds([seed], (4, 8, 8))[0], batch[i], rtol=0, atol=0)


def test_different_seeds_differ_and_noise_is_standard_normal():
    noise = noise_for_seeds(range(16), (4, 32, 32))
    assert not torch.equal(noise[0], noise[1])
    assert abs(noise.mean().item()) < 0.02 and abs(noise.std().item() - 1) < 0.02


def test_half_precision_noise_matches_official_npd_draw():
    official = torch.randn((1, 4, 16, 16), generator=torch.manual_seed(7), dtype=torch.float16)
    torch.testing.assert_close(noise_for_seeds([7], (4, 16, 16), dtype=torch.float16), official, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("0-3,10,12-13", [0, 1, 2, 3, 10, 12, 13]), (5, [5]), ([2, 1], [2, 1]), (" 7 , 8-9 ", [7, 8, 9])],
)
def test_parse_seeds(spec, expected):
    assert parse_seeds(spec) == expected


@pytest.mark.parametrize("spec", ["a-b", "", "1-x"])
def test_parse_seeds_rejects_malformed(spec):
    with pytest.raises(ValueError, match="seed"):
        parse_seeds(spec)


@pytest.mark.parametrize(("spec", "message"), [
    ("1.7", "Cannot parse seed range '1.7'"),
    (1.7, "seed must be an integer, got 1.7"),
    ([0, 1.7], "seed must be an integer, got 1.7"),
    ([True], "seed must be an integer, got True"),
    ("99999999999999999999", r"seed must be between 0 and 18446744073709551615, got 99999999999999999999"),
    ([2**64], "seed must be between 0 and"),
    ([-1], "seed must be between 0 and"),
    ("0,5-3", "Seed range '5-3' in '0,5-3' runs backwards"),
    ([], "names no seeds"),
])
def test_parse_seeds_refuses_what_torch_would_truncate_or_overflow(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_seeds(spec)


def test_seed_range_is_what_manual_seed_takes():
    assert parse_seeds(f"{SEED_MAX - 1}-{SEED_MAX}") == [SEED_MAX - 1, SEED_MAX]
    assert parse_seeds(np.arange(3)) == [0, 1, 2] and parse_seeds(torch.tensor([4, 5])) == [4, 5]
    torch.Generator().manual_seed(SEED_MAX)
    with pytest.raises(ValueError, match="seed must be an integer, got 1.7"):
        noise_for_seeds([1.7], (1, 2, 2))


def test_paired_items_give_every_prompt_its_own_seeds_and_refuse_seeds_out_of_range():
    assert paired_items(["a", "b"], [0, 1], distinct_seeds=True) == [(0, "a", 0), (0, "a", 1), (1, "b", 2),
                                                                     (1, "b", 3)]
    assert paired_items(["a", "b"], [5], distinct_seeds=False) == [(0, "a", 5), (1, "b", 5)]
    with pytest.raises(ValueError, match="seed of prompt 1"):
        paired_items(["a", "b"], [SEED_MAX], distinct_seeds=True)
