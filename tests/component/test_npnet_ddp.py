"""NPNet under DDP (docs/npnet.md §4.1: the official script never syncs gradients): 2 gloo CPU processes."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("npnet_ddp_worker.py")
STEPS, BATCH = 3, 2


@pytest.mark.slow  # spawns two gloo processes: half a minute on 2 cores
def test_ddp_ranks_agree_and_match_one_process(tmp_path):
    """After k steps both ranks hold identical weights, and loss and weights match a 1-process run."""
    result = subprocess.run([sys.executable, str(WORKER), str(tmp_path), str(STEPS), str(BATCH)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    single = torch.load(tmp_path / "1proc_rank0.pt", weights_only=True)
    ranks = [torch.load(tmp_path / f"2proc_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert len(single["losses"]) == len(ranks[0]["losses"]) == len(ranks[1]["losses"]) == STEPS
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
    ddp_loss = [(a + b) / 2 for a, b in zip(ranks[0]["losses"], ranks[1]["losses"], strict=True)]
    torch.testing.assert_close(torch.tensor(ddp_loss), torch.tensor(single["losses"]), rtol=1e-5, atol=1e-7)
    assert ranks[0]["losses"] != ranks[1]["losses"]  # the ranks did see different halves of the batch
    for key, value in single["state"].items():
        torch.testing.assert_close(ranks[0]["state"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    for run in (single, *ranks):  # training happened: every trained parameter left its (shared) initial value
        assert all(torch.equal(run["initial"][k], single["initial"][k]) for k in single["initial"])
        assert run["trained"] and [k for k in run["trained"] if torch.equal(run["initial"][k], run["state"][k])] == []
