"""scripts/workflow.ipynb, the tutorial side by side: stored without outputs, linked from the README step by step,
and run top to bottom on a fresh kernel as a learner runs it, printing the plain loop's losses (tests/plain.py).

    pytest tests/test_notebook.py          # the run is slow (about a minute): pytest -m slow tests/test_notebook.py
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient
from plain import plain_loop
from tensorboard import manager

NOTEBOOK = REPO / "scripts" / "workflow.ipynb"
STEPS = ["1. Data", "2. Model", "3. Training", "4. Evaluation and inference", "5. Saving and loading",
         "6. All together"]  # the tutorial's six steps, in its order
PRINTED = re.compile(r"^Epoch: (\d+) \| Train loss: (\S+) \| Test loss: (\S+)$", re.M)


def headings(nb: nbformat.NotebookNode) -> list[str]:
    return [line[3:].strip() for cell in nb.cells if cell.cell_type == "markdown"
            for line in cell.source.splitlines() if line.startswith("## ")]


def anchor(heading: str) -> str:
    """The id JupyterLab and nbconvert give a heading: its text with spaces as dashes."""
    return heading.replace(" ", "-")


def tagged(nb: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    return cell


def stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def test_notebook_is_stored_without_outputs():
    """Outputs stay out of git, so diffs show code and text only (clear them before committing)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"cells {with_outputs} of {NOTEBOOK.name} hold outputs: clear them before committing"


def test_notebook_has_the_six_steps_in_order_and_the_readme_links_each():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert [h for h in headings(nb) if h[0].isdigit()] == STEPS
    links = re.findall(r"\]\(scripts/workflow\.ipynb#([^)]+)\)", (REPO / "README.md").read_text())
    assert links == [anchor(step) for step in STEPS]
    assert "jupyter lab scripts/workflow.ipynb" in (REPO / "README.md").read_text()


def serves_run(logdir: Path) -> list[str]:
    """The scalar tags the TensorBoard that the notebook started on `logdir` serves (it is asked over HTTP)."""
    infos = [i for i in manager.get_all() if Path(i.logdir) == logdir]
    assert infos, "the notebook's %tensorboard cell started no TensorBoard on its runs"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://localhost:{infos[0].port}/data/plugin/scalars/tags", timeout=5) as r:
                tags = json.loads(r.read())
            if tags:
                return sorted({tag for run_tags in tags.values() for tag in run_tags})
        except OSError:
            pass
        assert time.monotonic() < deadline, f"TensorBoard on port {infos[0].port} serves no runs"
        time.sleep(0.5)


def stop_board(pid: int, logdir: Path) -> None:
    """Stop the TensorBoard the notebook started, if it still runs (and the pid is still that TensorBoard's)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return  # it has ended
    if b"tensorboard" in command and str(logdir).encode() in command:
        os.kill(pid, signal.SIGTERM)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_printing_the_plain_loops_losses(tmp_path, monkeypatch):
    """Every cell runs on a fresh kernel (a cell that fails fails the test); the losses its plain PyTorch cell
    and its Lightning cell print, at epochs 0, 100, ..., 900, are tests/plain.py's, digit for digit; it writes
    only under the folder it names; its TensorBoard cell serves the run that its "all together" step trained."""
    # this environment's Python as the kernel, whatever kernels the machine has installed
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "linlight tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # `tensorboard`
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the ground truth below runs on the CPU
    cwd = tmp_path / "learner"
    cwd.mkdir()
    out = cwd / "workflow_output"

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    board_tags, board_pids = None, []
    start = time.monotonic()
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)  # raises CellExecutionError, with the cell's traceback
                if "tensorboard" in cell.metadata.get("tags", []):
                    board_pids = [i.pid for i in manager.get_all() if Path(i.logdir) == out / "lightning_logs"]
                    board_tags = serves_run(out / "lightning_logs")
    finally:
        for pid in board_pids:  # the kernel's end stops it too; this is in case it did not
            stop_board(pid, out / "lightning_logs")
    print(f"the notebook ran in {time.monotonic() - start:.0f} s")

    truth = plain_loop()  # the tutorial's V2: 1000 epochs, full batch, on the CPU
    for tag in ("plain-losses", "lightning-losses"):
        printed = PRINTED.findall(stdout(tagged(nb, tag)))
        assert [int(epoch) for epoch, _, _ in printed] == list(range(0, 1000, 100)), tag
        for epoch, train, test in printed:
            e = int(epoch)
            # the tutorial prints f"{loss}" of a float32 tensor: its value as a Python float, every digit
            assert (train, test) == (str(truth.train_losses[e]), str(truth.test_losses[e])), f"{tag}, epoch {e}"
    assert "bit for bit" in stdout(tagged(nb, "bit-for-bit"))
    assert "loss/train" in board_tags and "loss/val" in board_tags, board_tags
    assert sorted(p.name for p in cwd.iterdir()) == ["workflow_output"]  # nothing written beside it
