"""The training script: the tutorial's whole workflow, end to end, on the reference experiment.

    python scripts/train.py                               # V2, 1000 epochs: fit, test, plots, export
    python scripts/train.py --config exercise              # a shipped config by name (linlight.configs)
    python scripts/train.py --ckpt_path last              # continue the newest run, then test and export
    python scripts/train.py --data.csv points.csv         # your own x,y points instead of the generated line
    python scripts/train.py --config scripts/examples/mlp.yaml    # your own model and table of features

It takes the same options as ``linlight fit``, then tests the trained model, draws the tutorial's plots
(``predictions.png``, ``loss_curves.png``, and TensorBoard images), exports ``model.pth`` (the plain
state_dict) and, with ``pip install 'linlight[export]'``, ``model.onnx``, and prints a summary.

The workflow itself is ``linlight/train.py``, part of the package, so that an installed linlight runs it too
(``python -m linlight.train``); this script runs it under its own name, which the printed commands repeat.
"""

import sys
from pathlib import Path

from linlight.train import main

if __name__ == "__main__":
    main(program=[sys.executable, str(Path(__file__).resolve())])
