"""The benchmark script runs every variant on a tiny setting and prints its table with the goals (no timing is
asserted: the machine is shared)."""

import re
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_bench_quick_runs_every_variant():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--quick"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("linlight benchmark (quick)")
    rows = lines[1:]
    expected = ["plain PyTorch (tutorial)", "bare Lightning (floor)", "naive Lightning", "reference, 20 epochs: "
                "linlight fit", "costs, 20 epochs: linlight fit", "costs: progress bar", "costs: TensorBoard logger",
                "costs: checkpoints", "costs: signal handling", "costs: metrics", "costs: LightningCLI",
                "batch 1024: raw", "batch 1024: bare", "batch 1024: linlight", "batch 1024: linlight K=32",
                "batch 1024: dataloader", "batch 65536: raw", "batch 65536: bare", "batch 65536: linlight",
                "batch 65536: linlight K=16", "memory: reference run peak", "points, one epoch, peak",
                "(bare Trainer): LitLinearRegression", "module: - EpochLogging (Lightning's self.log)",
                "module: - StepsPerExecution", "module: - LearningRateOnResume: LitRegression",
                "sweep, 4 trials: 1 worker", "sweep, 4 trials: 2 workers", "sweep, 4 trials: 4 workers"]
    names = [re.split(r"\s{2,}", row.strip())[0] for row in rows]
    for name in expected:
        assert sum(n.endswith(name) for n in names) == 1, f"row {name!r}: {names}"
    for row in rows:
        assert re.search(r"[+-]?\d+\.\d+ (s|s/epoch|MB|trials/min)\b", row), row
    goals = [row for row in rows if "goal" in row]
    assert len(goals) == 7 and all(row.endswith(("met", "NOT MET")) for row in goals)


@pytest.mark.slow
def test_bench_best_prints_the_best_checkpoints_cost_beside_lightnings():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_best.py"), "--repeats", "1"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.strip().splitlines()
    assert [re.split(r"\s{2,}", row)[0] for row in rows] == [
        "no best", "linlight: best held, written with last.ckpt", "Lightning: ModelCheckpoint writes every best",
        "the best, linlight against Lightning"]
    assert all(re.search(r"\d+\.\d+ s   \+ *-?\d+\.\d+ s over no best$", row) for row in rows[:3]), rows
    assert re.search(r"(\d+\.\d+x|n/a \(no measurable cost\))$", rows[3]), rows[3]
