"""The README's commands run as printed, in a fresh shell, in a fresh copy of the repository.

Every command in the README's ```bash blocks is run in order, each in a new `bash` with a clean
environment and the virtual environment activated as the README says (`source .venv/bin/activate`), from
the root of a copy of the repository's files. An HTML comment before a block can say how to run it:
`readme-test: ci (...)` (the set-up lines, which `.ci/run` runs itself on a fresh machine),
`readme-test: together (...)` (lines that make one run between them, started at once) and
`readme-test: skip (why)` (needs hardware this machine lacks). A server (`tensorboard`) is started, asked
for the run over HTTP, and stopped.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

BLOCK = re.compile(r"(?:<!-- readme-test: (\w+)[^>]*-->\s*\n)?```bash\n(.*?)```", re.S)


@dataclass
class Block:
    mode: str  # run | ci | together | skip
    commands: list[str]


def readme_blocks(text: str) -> list[Block]:
    blocks = []
    for mode, body in BLOCK.findall(text):
        joined = body.replace("\\\n", " ")  # a backslash at the end of a line continues the command
        commands = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        blocks.append(Block(mode or "run", commands))
    return blocks


def test_readme_blocks_are_all_understood():
    """Every block has a known mode and at least one command; the set-up block is the README's first."""
    blocks = readme_blocks((REPO / "README.md").read_text())
    assert blocks and all(b.mode in ("run", "ci", "together", "skip") and b.commands for b in blocks)
    assert blocks[0].mode == "ci" and len(blocks[0].commands) == 2
    assert blocks[0].commands[0].endswith("scripts/train.py") and blocks[0].commands[1].endswith("pytest")


def test_the_promise_table_names_tests_that_exist():
    """The Tests section's table of promises: each test it names is a test function of that file, and each slow
    one is said to be slow."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Each promise and the test that breaks with it"):text.index("## Layout")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| promise")]
    named = re.findall(r"`tests/(\w+\.py)::(\w+)`( \(slow\))?", section)
    assert len(rows) >= 60 and len(named) >= len(rows)
    for file, name, slow in named:
        tests = {node.name: node for node in ast.parse((REPO / "tests" / file).read_text()).body
                 if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
        assert name in tests, f"README: tests/{file}::{name} is no test"
        marked = any(ast.unparse(d) == "pytest.mark.slow" for d in tests[name].decorator_list)
        assert bool(slow) == marked, f"README: tests/{file}::{name} is {'not ' * (not marked)}slow"


def test_ci_runs_the_readme_set_up_commands():
    """.ci/run runs the README's first block as written (so the two commands are tried on every CI run)."""
    ci = (REPO / ".ci" / "run").read_text()
    assert "README.md" in ci and "readme_setup" in ci
    out = subprocess.run(["bash", "-c", f"source <(sed -n '/^readme_setup()/,/^}}/p' {REPO / '.ci' / 'run'}); "
                          "readme_setup"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines() == readme_blocks((REPO / "README.md").read_text())[0].commands


def fresh_copy(dest: Path) -> Path:
    """The repository's files (tracked, and new ones not ignored), with this environment as its .venv."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    (dest / ".venv").symlink_to(sys.prefix)  # made by the README's first command (run by .ci/run)
    return dest


def shell(command: str, cwd: Path, output=subprocess.PIPE) -> subprocess.Popen:
    """`command` in a new bash with a clean environment and the virtual environment activated."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "PYTHONPATH": str(cwd)}  # this copy's code, not the checkout the environment was installed from
    return subprocess.Popen(["bash", "-c", f"source .venv/bin/activate && {command}"], cwd=cwd, env=env,
                            stdout=output, stderr=subprocess.STDOUT if output is not subprocess.PIPE else output,
                            text=True)


def finish(proc: subprocess.Popen, command: str, timeout: float = 600) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"`{command}` failed ({proc.returncode}):\n{out[-3000:]}\n{err[-3000:]}"
    assert "Traceback" not in out + err, f"`{command}`:\n{err[-3000:]}"
    # a library's warning ("/.../site-packages/x.py:12: ...") or TensorBoard's purge notice reads as trouble
    worrying = re.findall(r"^.*(?:site-packages/\S+\.py:\d+: |Detected out of order event).*$", err, re.M)
    assert not worrying, f"`{command}` warns:\n" + "\n".join(worrying)
    return out + err


def serve(command: str, cwd: Path) -> None:
    """Start a server command, check that it serves the runs, stop it."""
    log = cwd / f".server-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        proc = shell(f"exec {command}", cwd, output=out)  # exec: stopping the shell stops the server
    try:
        deadline, url, tags = time.monotonic() + 90, None, None
        while url is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"`{command}` did not start serving"
            time.sleep(0.5)
            found = re.search(r"http://[^\s/]+:\d+", log.read_text())  # TensorBoard prints its address
            url = found and found.group(0)
        while True:
            try:
                with urllib.request.urlopen(f"{url}/data/plugin/scalars/tags", timeout=5) as response:
                    tags = json.loads(response.read())
                if tags and all("loss/train" in run_tags for run_tags in tags.values()):
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline + 60, f"`{command}` serves no runs: {tags}"
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_every_readme_command_runs_as_printed(tmp_path):
    copy = fresh_copy(tmp_path / "linlight")
    ran = []
    for block in readme_blocks((copy / "README.md").read_text()):
        if block.mode in ("ci", "skip"):
            continue
        if block.mode == "together":
            procs = [(c, shell(c, copy)) for c in block.commands]
            for command, proc in procs:
                finish(proc, command)
            ran += block.commands
            continue
        for command in block.commands:
            if command.split()[0] == "tensorboard":
                serve(command, copy)
            else:
                output = finish(shell(command, copy), command)
                if command.startswith("linlight test"):  # the exercise run, tested on its own line
                    r2 = float(re.search(r"test/r2\s+(\S+)", output).group(1))
                    assert r2 > 0.5, output
            ran.append(command)
    assert len(ran) >= 10, ran
