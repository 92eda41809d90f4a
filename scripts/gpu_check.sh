#!/usr/bin/env bash
# On a machine with a CUDA GPU: the reference experiment on the GPU against the CPU, then the benchmark.
#   bash scripts/gpu_check.sh            (after the README's set-up command)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=$(mktemp -d)
"$py" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU here"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
for acc in gpu cpu; do
  TIMEFORMAT="$acc: reference run %R s (whole process)"
  time "$py" -m linlight.cli fit --trainer.accelerator "$acc" --trainer.devices 1 \
    --trainer.default_root_dir "$out/$acc" --trainer.enable_progress_bar false > "$out/$acc.log" 2>&1
done
"$py" - "$out" <<'PY'
import sys
from pathlib import Path
import torch
out = Path(sys.argv[1])
def last(acc):
    return torch.load(out / acc / "lightning_logs/version_0/checkpoints/last.ckpt", weights_only=True)["state_dict"]
gpu, cpu = last("gpu"), last("cpu")
diff = max((gpu[k] - cpu[k]).abs().max().item() for k in cpu)
print(f"GPU vs CPU final weights: max |difference| = {diff:.3g}")
assert diff <= 1e-5, "GPU and CPU disagree by more than 1e-5"
PY
"$py" -m pytest -q -m gpu tests
"$py" scripts/bench.py --only scale --repeats 3
