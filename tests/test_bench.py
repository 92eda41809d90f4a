"""The benchmark script runs on a tiny setting and prints its table (no timing is asserted)."""

import re
import subprocess
import sys

from conftest import REPO


def test_bench_quick_prints_the_table():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--repeats", "1"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("linlight benchmark (quick)")
    rows = lines[1:]
    expected = ["reference, 20 epochs: plain PyTorch (tutorial)", "reference, 20 epochs: linlight fit",
                "reference, 20 epochs: naive Lightning", "reference, 20 epochs: bare Lightning (floor)",
                "reference, 20 epochs: linlight fit, no progress bar", "batch 1024: raw", "batch 1024: linlight",
                "batch 1024: bare",
                "batch 1024: dataloader", "batch 65536: raw", "batch 65536: linlight",
                "memory: reference run peak", "points peak"]
    for name in expected:
        assert any(name in row for row in rows), f"missing row: {name}"
    for row in rows:
        assert re.search(r"\d+\.\d+ (s|s/epoch|MB)\b", row), row
    assert sum("x plain" in row for row in rows) == 5 and sum("x raw" in row for row in rows) == 7
