"""NoiseRefine under DDP (2 gloo CPU processes) in bf16-mixed: the ranks stay in sync, only the adapter trains."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "component" / "noiserefine_ddp_worker.py"


@pytest.mark.slow
def test_ddp_bf16_ranks_agree_and_the_base_stays_frozen(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{WORKER.parent}{os.pathsep}{ROOT}"}
    result = subprocess.run([sys.executable, str(WORKER), str(tmp_path), "2"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for a, b in zip(ranks[0]["lora"], ranks[1]["lora"], strict=True):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(ranks[0]["initial"], ranks[0]["lora"], strict=True))
    assert all(r["base_before"] == r["base_after"] for r in ranks)
