"""Make it yours: a model of your own (an MLP in a module outside the package) on a table of your own (a CSV of
three features), by configuration only, through fit, Ctrl-C and resume, test, predict, export and a small sweep,
each checked against a plain PyTorch loop (tests/plain.py) where the numbers are exact.

The project a user would have: ``models/my_mlp.py``, ``data/table.csv`` and ``configs/mlp.yaml`` naming them by
paths relative to the config file (``import_path: [../models]``, ``csv: ../data/table.csv``); every command runs
from another folder.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, cli, load_ckpt, run_dir, scalars
from plain import MLP, plain_fit
from test_resume import new_shell, start, wait_for

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]
MODULE = (REPO / "scripts" / "examples" / "my_models.py").read_text()  # the README's model of your own
SETTINGS = {"hidden": 8, "lr": 0.01, "batch_size": 16}


def project(tmp_path: Path, module: str = "my_mlp", epochs: int = 40, marker: Path | None = None) -> Path:
    """A user's project: their model, their table and a config naming them relative to itself."""
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    source = MODULE if marker is None else f"{MODULE}\nopen({str(marker)!r}, 'w').close()  # imported!\n"
    (root / "models" / f"{module}.py").write_text(source)
    (root / "data").mkdir()
    shutil.copy(REPO / "data" / "table.csv", root / "data" / "table.csv")
    (root / "configs").mkdir()
    config = {
        "import_path": ["../models"],
        "trainer": {"max_epochs": epochs},
        "model": {"model": {"class_path": f"{module}.MLP", "init_args": {"hidden": SETTINGS["hidden"]}},
                  "loss": "torch.nn.MSELoss", "optimizer": "torch.optim.Adam", "lr": SETTINGS["lr"]},
        "data": {"class_path": "linlight.data.TableDataModule",
                 "init_args": {"csv": "../data/table.csv", "target": "y", "batch_size": SETTINGS["batch_size"],
                               "shuffle": True}},
    }
    path = root / "configs" / "mlp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def table() -> tuple[torch.Tensor, torch.Tensor]:
    values = np.loadtxt(REPO / "data" / "table.csv", delimiter=",", skiprows=1, dtype=np.float32)
    return torch.from_numpy(values[:, :3]).contiguous(), torch.from_numpy(values[:, 3:]).contiguous()


def truth(epochs: int, lr: float = SETTINGS["lr"]):
    X, y = table()
    return plain_fit(lambda: MLP(3, SETTINGS["hidden"]), X, y, epochs, lr, optimizer=torch.optim.Adam,
                     loss_fn=torch.nn.MSELoss(), batch_size=SETTINGS["batch_size"], shuffle=True)


def assert_is_plain(run: Path, plain, epochs: int) -> None:
    logged = scalars(run)
    assert [s for s, _ in logged["loss/train"]] == list(range(epochs)), "each epoch once, at step = epoch"
    assert [v for _, v in logged["loss/train"]] == plain.train_losses
    assert [v for _, v in logged["loss/val"]] == plain.test_losses
    state = load_ckpt(run / "checkpoints" / "last.ckpt")["state_dict"]
    learned = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    assert learned.keys() == plain.state.keys()
    assert all(torch.equal(learned[k], plain.state[k]) for k in learned)


def test_your_model_on_your_table_by_configuration(tmp_path):
    """fit, test, predict (rows and a CSV) and export: the plain loop's numbers; nothing of the line shown."""
    config, elsewhere = project(tmp_path), tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, err = cli("fit", "--config", str(config), *FAST, cwd=elsewhere)
    assert code == 0, err
    run, plain = run_dir(elsewhere), truth(40)
    assert_is_plain(run, plain, 40)
    assert "trained MLP for 40 epochs" in out and "weight " not in out  # no learned line for an MLP
    assert f"{(config.parent / '../data/table.csv').resolve()} (sha256 " in out
    logged = scalars(run)
    assert not any(tag.startswith("params/") for tag in logged)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"tensors": 0})
    events.Reload()
    layout = b"".join(events.PluginTagToContent("custom_scalars").values()) or b"".join(
        e.tensor_proto.string_val[0] for e in events.Tensors("custom_scalars__config__"))
    assert b"loss: train and val" in layout and b"weight" not in layout  # charts of logged tags only
    ckpt = load_ckpt(run / "checkpoints" / "last.ckpt")
    parts = ckpt["hyper_parameters"]
    assert parts["model"] == {"class_path": "my_mlp.MLP", "init_args": {"hidden": 8, "in_features": 3}}  # linked
    assert parts["optimizer"]["class_path"] == "torch.optim.Adam" and parts["arch"] is None
    assert "_instantiator" not in parts  # nothing for Lightning's load_from_checkpoint to build classes with
    assert ckpt["datamodule_hyper_parameters"]["target"] == "y"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["init_args"]["csv"] == str((config.parent / "../data/table.csv").resolve())
    assert saved["import_path"] == [str((config.parent / "../models").resolve())]

    code, out, err = cli("test", *FAST, cwd=elsewhere)  # the newest run, its own model and data
    assert code == 0, err
    assert float(re.search(r"^\s*test/loss\s+(\S+)", out, re.M).group(1)) == plain.test_losses[-1]
    assert float(re.search(r"^\s*test/mse\s+(\S+)", out, re.M).group(1)) == plain.test_losses[-1]  # MSE loss

    rows = [[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]]
    code, out, err = cli("predict", "--data.predict_x", str(rows), *FAST, cwd=elsewhere)
    assert code == 0, err
    lines = out.strip().splitlines()[-3:]
    want = [str(np.float32(v)) for v in plain.predict(rows)]
    assert lines == ["x1,x2,x3,y", f"0.1,-0.2,0.3,{want[0]}", f"0.0,0.0,0.0,{want[1]}"]  # each row with its inputs
    (elsewhere / "rows.csv").write_text("x3,y,x1,x2\n0.3,9,0.1,-0.2\n")  # by name, in any order; y ignored
    code, out, err = cli("predict", "--data.predict_csv", "rows.csv", *FAST, cwd=elsewhere)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == f"0.1,-0.2,0.3,{want[0]}"
    (elsewhere / "bare.csv").write_text("0.1,-0.2,0.3\n0,0,0\n")  # no header: rows of exactly three numbers
    code, out, err = cli("predict", "--data.predict_csv", "bare.csv", *FAST, cwd=elsewhere)
    assert code == 0, err
    assert out.strip().splitlines()[-3:] == lines

    from linlight.export import export_onnx, load_model, onnx_predict  # my_mlp is imported (by the config)

    model = load_model(run / "checkpoints" / "last.ckpt")  # rebuilt from its settings, loaded strictly
    x = torch.tensor(rows)
    with torch.inference_mode():
        assert model(x).flatten().tolist() == plain.predict(rows)
    onnx = export_onnx(model, tmp_path / "mlp.onnx", features=3)
    assert torch.allclose(onnx_predict(onnx, x).flatten(), torch.tensor(plain.predict(rows)), atol=1e-6, rtol=0)


def test_ctrl_c_and_the_printed_command_continue_it_exactly(tmp_path):
    """Ctrl-C (SIGINT) mid-run; the printed command, in a new shell in a third folder, ends with the plain loop's
    weights: Adam's state and the shuffle order carried over, the model imported from the recorded import_path."""
    config, work, third = project(tmp_path, epochs=300), tmp_path / "work", tmp_path / "third"
    work.mkdir(), third.mkdir()
    proc = start("fit", "--config", str(config), "--checkpoint.every_n_epochs", "10", *FAST, cwd=work)
    wait_for(run_dir(work) / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    stopped = int(re.search(r"after (\d+) epochs", last).group(1))
    assert stopped < 300, "the run ended before the signal: make it longer"
    command = last.split("continue with: ", 1)[1]
    done = new_shell(command, cwd=third)
    assert done.returncode == 0, done.stderr
    assert not (third / "lightning_logs").exists()
    assert_is_plain(run_dir(work), truth(300), 300)


def test_a_small_sweep_of_your_model_is_plain_fits(tmp_path, capsys):
    """Each trial is an ordinary run: its final loss/val is the plain loop's with the trial's settings; the printed
    command that reproduces the best trial runs from another folder (the config's paths are its own)."""
    pytest.importorskip("optuna")
    from linlight.sweep import main

    config, root = project(tmp_path), tmp_path / "runs"
    space = config.parent / "space.yaml"
    space.write_text(yaml.safe_dump({"config": "mlp.yaml", "fixed": {"trainer.accelerator": "cpu"}, "space": {
        "model.lr": {"type": "float", "low": 0.003, "high": 0.03, "log": True},
        "trainer.max_epochs": {"type": "int", "low": 10, "high": 20, "step": 10}}}))
    main(["--space", str(space), "--trials", "2", "--seed", "1", "--root", str(root)])
    out = capsys.readouterr().out
    runs = sorted((root / "lightning_logs").glob("version_*"))
    assert len(runs) == 2
    for run in runs:
        saved = yaml.safe_load((run / "config.yaml").read_text())
        epochs, lr = saved["trainer"]["max_epochs"], saved["model"]["lr"]
        assert scalars(run)["loss/val"][-1][1] == truth(epochs, lr).test_losses[-1]
    command = re.search(r"^reproduce: (.+)$", out, re.M).group(1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = new_shell(command, cwd=elsewhere)
    assert done.returncode == 0, done.stderr


def test_a_resume_that_the_saved_state_cannot_take_is_refused_with_nothing_recorded(tmp_path):
    config, work = project(tmp_path, epochs=5), tmp_path / "work"
    work.mkdir()
    code, _, err = cli("fit", "--config", str(config), *FAST, cwd=work)
    assert code == 0, err
    run = run_dir(work)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    last = run / "checkpoints" / "last.ckpt"
    cases = [
        (["--model.optimizer", "torch.optim.SGD"],
         f"{last} was trained with optimizer torch.optim.Adam: its saved state cannot continue as torch.optim.SGD; "
         "resume with the optimizer it was trained with (leave model.optimizer out), or start a new run"),
        (["--model.optimizer.betas", "[0.8, 0.9]"], "model.optimizer.betas cannot change on a resume (model.lr can)"),
        (["--model.model.hidden", "4"], f"{last} holds weights of model.model=my_mlp.MLP(hidden=8), "
                                        "not my_mlp.MLP(hidden=4)"),
        (["--model.arch", "model0", "--model.model", "null"], "holds weights of model.model=my_mlp.MLP(hidden=8), "
                                                             "not model.arch='model0'"),
        (["--model.scheduler", "torch.optim.lr_scheduler.StepLR", "--model.scheduler.step_size", "2"],
         "was trained with scheduler none: its saved state cannot continue as torch.optim.lr_scheduler.StepLR"),
    ]
    for args, words in cases:
        code, out, err = cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "10", *args, *FAST, cwd=work)
        assert code == 1, (args, err)
        assert "Traceback" not in out + err
        line = err.strip().splitlines()[-1]
        assert line.startswith("linlight: error: ") and words in line, line
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before, args  # nothing recorded
        assert not run_dir(work, 1).exists()
    # what the saved state can take goes on: a new learning rate, another loss, each recorded as a change
    code, _, err = cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "7", "--model.lr", "0.02", *FAST, cwd=work)
    assert code == 0, err
    code, _, err = cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "8", "--model.loss", "torch.nn.L1Loss",
                       *FAST, cwd=work)
    assert code == 0, err
    from linlight.records import config_changes

    changes = config_changes(run)
    assert "model.lr 0.01 -> 0.02" in changes[0]
    assert "model.loss.class_path torch.nn.MSELoss -> torch.nn.L1Loss" in changes[1]


def test_a_checkpoint_never_names_code_to_import(tmp_path):
    """A checkpoint outside its run folder, of a model whose module nothing imported: refused in one line, the
    module not imported; named by the user's own config, it is used."""
    marker = tmp_path / "IMPORTED"
    config, work = project(tmp_path, module="untrusted_mlp", epochs=3, marker=marker), tmp_path / "work"
    work.mkdir()
    code, _, err = cli("fit", "--config", str(config), *FAST, cwd=work)  # (this process imports it: a new one below)
    assert code == 0, err
    loose = tmp_path / "downloaded.ckpt"
    shutil.copy(run_dir(work) / "checkpoints" / "last.ckpt", loose)
    marker.unlink()
    bare = tmp_path / "bare"
    bare.mkdir()
    python = shlex.quote(sys.executable)
    for command in (f"{python} -m linlight.cli test --ckpt_path {loose} --trainer.accelerator cpu",
                    f"{python} -c 'from linlight.export import load_model; load_model(\"{loose}\")'"):
        proc = new_shell(f"cd {shlex.quote(str(REPO))} && {command}", cwd=bare)
        assert proc.returncode != 0 and not marker.exists(), proc.stderr
        assert "untrusted_mlp.MLP, a class linlight does not import because a checkpoint names it" in proc.stderr
    proc = new_shell(f"{python} -m linlight.cli test --ckpt_path {loose} --config {config} --trainer.accelerator cpu",
                     cwd=bare)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()  # imported because the user's config names it


def test_a_copied_modules_own_logs_land_on_the_epoch_axis(tmp_path):
    """A module of your own beside linlight's: its self.log(..., on_epoch=True) values are at step = epoch, as
    linlight's are (Lightning would write them at the number of optimizer steps); per-step values stay per step."""
    import lightning.pytorch as pl

    from linlight.board import RunBoard, RunLogger
    from linlight.data import LineDataModule
    from linlight.models import LinearRegressionModelV2
    from linlight.module import LitLinearRegression, LitRegression

    class Mine(LitLinearRegression):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.log("mine/double", 2 * loss, on_epoch=True)  # on_step too, by Lightning's default here
            return loss

        def validation_step(self, batch, batch_idx):
            super().validation_step(batch, batch_idx)
            self.log("mine/val", torch.tensor(1.0))  # epoch-level, Lightning's default in validation

    class Clean(LitRegression):  # the module to copy, without linlight's mixins
        pass

    for version, make in enumerate((Mine, lambda: Clean(LinearRegressionModelV2()))):
        pl.seed_everything(42, verbose=False)
        logger = RunLogger(str(tmp_path), name="lightning_logs", version=version, default_hp_metric=False)
        trainer = pl.Trainer(max_epochs=5, logger=logger, callbacks=[RunBoard()], enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                             log_every_n_steps=1)
        trainer.fit(make(), datamodule=LineDataModule(batch_size=8))  # 5 optimizer steps an epoch
        logged = scalars(run_dir(tmp_path, version))
        epochs = list(range(5))
        assert [s for s, _ in logged["loss/train"]] == epochs and [s for s, _ in logged["loss/val"]] == epochs
        assert [s for s, _ in logged["val/r2"]] == epochs
        assert ("epoch" in logged) == (version == 0)  # Lightning's epoch-per-step curve, beside per-step values only
        if version == 0:
            assert [s for s, _ in logged["mine/double_epoch"]] == epochs
            assert [s for s, _ in logged["mine/val"]] == epochs
            assert [s for s, _ in logged["mine/double_step"]] == list(range(25))  # per step: the optimizer steps
            for (_, double), (_, loss) in zip(logged["mine/double_epoch"], logged["loss/train"]):
                assert double == pytest.approx(2 * loss, rel=1e-6)


@pytest.mark.parametrize(
    "content, args, words",
    [("x1,x2,y\n1,2,3\n4,5,6\n", ["--data.target", "z"],
      "has no column 'z' (data.target); its columns are ['x1', 'x2', 'y']"),
     ("1,2,3\n4,5,6\n", [], "line 1: expected a header row naming the columns (the target is found by its name, "
                           "--data.target y), found numbers"),
     ("a,a,y\n1,2,3\n", [], "the column names must differ, ['a'] repeat"),
     ("x1,x2,y\n1,2,3\n4,5\n", [], "line 3: expected 3 columns (as the header), found 2 columns"),
     ("x1,x2,y\n1,2,3\n4,five,6\n", [], "line 3: 'five' is not a number"),
     ("x1,x2,y\n1,2,3\n", [], "has 1 row: data.train_split=0.8 leaves none for training"),
     ("x1,x2,y\n", [], "has no data rows after its header"),
     ("x1,x2,y\n1,2,3\n4,5,6\n", ["--data.features", "[x1, x9]"], "data.features has no column(s) ['x9']"),
     ("x1,x2,y\n1,2,3\n4,5,6\n", ["--data.predict_x", "[[1, 2, 3]]"],
      "data.predict_x must be rows of 2 finite numbers (x1,x2), got [1.0, 2.0, 3.0]")],
    ids=["no-target", "no-header", "repeated-name", "short-row", "not-a-number", "one-row", "header-only",
         "unknown-feature", "predict-row-length"],
)
def test_a_bad_table_is_one_line_before_anything_runs(tmp_path, content, args, words):
    (tmp_path / "t.csv").write_text(content)
    code, out, err = cli("fit", "--data", "linlight.data.TableDataModule", "--data.csv", "t.csv", "--data.target", "y",
                         "--model.model", "torch.nn.Linear", "--model.model.out_features", "1", *args, *FAST,
                         cwd=tmp_path)
    assert code == 1, err
    assert "Traceback" not in out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith("linlight: error: data.") and words in line, line
    assert not (tmp_path / "lightning_logs").exists()


def test_features_choose_and_order_the_inputs(tmp_path):
    """`--data.features '[c, a]'`: those columns, in that order; by default every column but the target, in file
    order."""
    from linlight.data import TableDataModule

    (tmp_path / "t.csv").write_text("a,y,b,c\n1,2,3,4\n5,6,7,8\n9,10,11,12\n13,14,15,16\n")
    rows = torch.tensor([[1.0, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]])
    for features, columns in ((["c", "a"], [3, 0]), (None, [0, 2, 3])):
        dm = TableDataModule(csv=tmp_path / "t.csv", target="y", features=features)
        dm.setup("fit")
        assert torch.equal(dm.x, rows[:, columns]) and torch.equal(dm.y, rows[:, [1]]), features


def test_the_line_says_where_several_features_go_and_the_tutorial_model_says_what_it_takes(tmp_path):
    (tmp_path / "t.csv").write_text("x1,x2,y\n1,2,3\n4,5,6\n7,8,9\n")
    code, _, err = cli("fit", "--data.csv", "t.csv", *FAST, cwd=tmp_path)
    assert code == 1 and err.strip().splitlines()[-1].endswith(
        "expected 2 columns (x,y), found 3 columns; for several features use --data linlight.data.TableDataModule "
        "(a header row names the columns, --data.target the one to predict)")
    code, _, err = cli("fit", "--data", "linlight.data.TableDataModule", "--data.csv", "t.csv", "--data.target", "y",
                       *FAST, cwd=tmp_path)
    assert code == 1 and err.strip().splitlines()[-1].startswith(
        "linlight: error: the model (LinearRegressionModelV2) cannot take the data's rows of 2 features")
    assert not (tmp_path / "lightning_logs").exists()


def test_a_scheduler_trains_as_the_plain_loop_and_resumes_on_its_schedule(tmp_path):
    """StepLR halves the lr every 10 epochs (exactly: 0.01, 0.005, 0.0025); stopped at 15 and resumed, the run is
    the uninterrupted plain loop's; a new lr on the resume is refused (the schedule sets it)."""
    from plain import plain_loop

    scheduler = ["--model.scheduler", "torch.optim.lr_scheduler.StepLR", "--model.scheduler.step_size", "10",
                 "--model.scheduler.gamma", "0.5", "--checkpoint.every_n_epochs", "5"]
    code, _, err = cli("fit", *scheduler, "--trainer.max_epochs", "15", *FAST, cwd=tmp_path)
    assert code == 0, err
    code, _, err = cli("fit", "--ckpt_path", "last", "--model.lr", "0.1", "--trainer.max_epochs", "30", *FAST,
                       cwd=tmp_path)
    assert code == 1 and "was trained with a scheduler, which sets the learning rate from then on" in err
    code, _, err = cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "30", *FAST, cwd=tmp_path)
    assert code == 0, err
    truth = plain_loop(epochs=30, lr_changes={10: 0.005, 20: 0.0025})
    logged = scalars(run_dir(tmp_path))
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    assert [v for _, v in logged["loss/val"]] == truth.test_losses


def test_reduce_lr_on_plateau_is_stepped_on_loss_val(tmp_path):
    """A scheduler that watches a value, ReduceLROnPlateau, is stepped every epoch with loss/val: the plain loop
    with torch's scheduler fed each test loss."""
    from plain import plain_loop

    plateau = {"patience": 2, "factor": 0.5}
    code, _, err = cli("fit", "--model.scheduler", "torch.optim.lr_scheduler.ReduceLROnPlateau",
                       *(f"--model.scheduler.{k}={v}" for k, v in plateau.items()), "--trainer.max_epochs", "80",
                       *FAST, cwd=tmp_path)
    assert code == 0, err
    truth = plain_loop(epochs=80, plateau=plateau)
    assert truth.train_losses != plain_loop(epochs=80).train_losses, "the rate must be cut for this to mean anything"
    logged = scalars(run_dir(tmp_path))
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    assert [v for _, v in logged["loss/val"]] == truth.test_losses


def test_a_resume_with_another_loss_trains_with_it_from_the_resumed_epoch(tmp_path):
    from plain import plain_loop
    from test_resume import assert_same_as_plain

    code, _, err = cli("fit", "--trainer.max_epochs", "20", "--checkpoint.every_n_epochs", "10", *FAST, cwd=tmp_path)
    assert code == 0, err
    code, _, err = cli("fit", "--ckpt_path", "last", "--model.loss", "torch.nn.MSELoss", "--trainer.max_epochs", "40",
                       *FAST, cwd=tmp_path)
    assert code == 0, err
    assert_same_as_plain(run_dir(tmp_path), plain_loop(epochs=40, loss_changes={20: torch.nn.MSELoss()}))


def test_linlights_own_values_skip_lightnings_per_call_logging(tmp_path, monkeypatch):
    """EpochLogging is the speed-up it claims: in a fit, none of linlight's values (losses, metrics, the learned
    line) goes through Lightning's self.log (half a millisecond a call); in a test, each value once."""
    import lightning.pytorch as pl

    calls = []
    original = pl.LightningModule.log
    monkeypatch.setattr(pl.LightningModule, "log", lambda self, name, *a, **k: calls.append(name) or original(
        self, name, *a, **k))
    code, _, err = cli("fit", "--trainer.max_epochs", "3", "--data.batch_size", "8", *FAST, cwd=tmp_path)
    assert code == 0, err
    assert calls == []
    code, _, err = cli("test", *FAST, cwd=tmp_path)
    assert code == 0, err
    assert sorted(calls) == ["test/loss", "test/mae", "test/mse", "test/r2"]


def test_the_readme_shows_the_example_config_as_it_is():
    """The README's Make it yours section prints scripts/examples/mlp.yaml: the same settings, comment for comment."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Make it yours"):readme.index("## Early stopping")]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    config = (REPO / "scripts" / "examples" / "mlp.yaml").read_text()
    assert block in config and yaml.safe_load(block) == yaml.safe_load(config)


def test_the_train_script_on_your_model_and_table(tmp_path):
    """scripts/train.py: fit, test, plots and exports for the MLP of scripts/examples/mlp.yaml: the loss curves, no
    scatter of one x (three features), the state_dict and ONNX of the MLP, the plain loop's test loss."""
    epochs = 20
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--config",
                           str(REPO / "scripts" / "examples" / "mlp.yaml"), "--trainer.max_epochs", str(epochs), *FAST],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    run = run_dir(tmp_path)
    assert (run / "loss_curves.png").is_file() and not (run / "predictions.png").exists()
    X, y = table()
    plain = plain_fit(lambda: MLP(3, 16), X, y, epochs, 0.01, optimizer=torch.optim.Adam, loss_fn=torch.nn.MSELoss(),
                      batch_size=16, shuffle=True)
    assert re.search(r"test\s+test/loss (\S+)", proc.stdout).group(1) == f"{plain.test_losses[-1]:.4g}"
    state = torch.load(run / "model.pth", weights_only=True)
    assert state.keys() == plain.state.keys() and all(torch.equal(state[k], plain.state[k]) for k in state)
    assert (run / "model.onnx").is_file()
    from linlight.export import load_model

    rows = [[0.1, -0.2, 0.3], [0.5, 0.5, 0.5]]
    with torch.inference_mode():  # the README's load_model("model.pth", model=MLP(3)): a model of yours
        assert load_model(run / "model.pth", model=MLP(3))(torch.tensor(rows)).flatten().tolist() == plain.predict(rows)


def test_file_settings_in_a_config_are_read_against_its_folder(tmp_path):
    """predict_csv and predictions.output in a config file: beside the config, wherever the command runs."""
    config = project(tmp_path, epochs=2)
    work = tmp_path / "work"
    work.mkdir()
    code, _, err = cli("fit", "--config", str(config), *FAST, cwd=work)
    assert code == 0, err
    (config.parent / "rows.csv").write_text("x1,x2,x3\n0.1,0.2,0.3\n")
    predict = config.parent / "predict.yaml"
    predict.write_text(yaml.safe_dump({"data": {"class_path": "linlight.data.TableDataModule", "init_args": {
        "csv": "../data/table.csv", "target": "y", "predict_csv": "rows.csv"}}, "predictions": {"output": "out.csv"}}))
    code, _, err = cli("predict", "--config", str(predict), "--trainer.default_root_dir", str(work), *FAST,
                       cwd=tmp_path)
    assert code == 0, err
    assert (config.parent / "out.csv").read_text().splitlines()[0] == "x1,x2,x3,y"


def test_import_paths_go_last_so_they_never_shadow_an_installed_module(tmp_path):
    import importlib
    import json

    from linlight import parts

    (tmp_path / "json.py").write_text("raise ImportError('the folder shadowed the standard library')\n")
    parts.use_import_paths([tmp_path])
    try:
        assert sys.path[-1] == str(tmp_path)
        assert importlib.reload(json).dumps([1]) == "[1]"
    finally:
        sys.path.remove(str(tmp_path))
