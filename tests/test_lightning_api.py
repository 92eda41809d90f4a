"""The private members of Lightning (and of torch and TensorBoard) that linlight overrides, calls or reads are
still there in the installed versions. An override of a method that was renamed would silently never run,
so each is checked by name, and its signature where linlight overrides it (the README lists why each is used).
"""

import inspect

import pytest
from lightning.fabric.utilities import distributed
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from lightning.pytorch.trainer.connectors.checkpoint_connector import _CheckpointConnector
from tensorboard.summary.writer import event_file_writer
from torch.utils.tensorboard import SummaryWriter

# (owner, member, parameters of an overridden method or None for a member that is only called or read)
PRIVATE = [
    (LightningCLI, "_parse_ckpt_path", ["self"]),
    (LightningCLI, "_get", None),
    (LightningCLI, "_parser", None),
    (ModelCheckpoint, "_save_checkpoint", ["self", "trainer", "filepath"]),
    (ModelCheckpoint, "_monitor_candidates", ["self", "trainer"]),
    (ModelCheckpoint, "_save_last_checkpoint", None),
    (ModelCheckpoint, "_save_topk_checkpoint", None),
    (ModelCheckpoint, "_should_skip_saving_checkpoint", None),
    (ModelCheckpoint, "_remove_checkpoint", ["self", "trainer", "filepath"]),
    (_CheckpointConnector, "dump_checkpoint", None),
    (DDPStrategy, "_configure_launcher", ["self"]),
    (_SubprocessScriptLauncher, "launch", ["self", "function", "args", "trainer", "kwargs"]),
    (_SubprocessScriptLauncher, "_call_children_scripts", None),
    (distributed, "_set_num_threads_if_needed", None),
    (SummaryWriter, "_get_file_writer", None),
    (event_file_writer, "_AsyncWriterThread", None),  # found by name: the writer thread's report kept off stderr
]


@pytest.mark.parametrize("owner, member, parameters", PRIVATE,
                         ids=[f"{o.__name__.split('.')[-1]}.{m}" for o, m, _ in PRIVATE])
def test_private_members_linlight_relies_on_exist(owner, member, parameters):
    found = getattr(owner, member, None)
    assert found is not None, (f"{owner.__module__}.{owner.__name__} has no {member} any more: linlight's use of it "
                               "(see the README, 'Where linlight reaches into Lightning') needs a new way")
    if parameters is not None:
        assert list(inspect.signature(found).parameters) == parameters, f"{member} changed its signature"


def test_attributes_set_by_lightning_that_linlight_reads(tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_on_train_epoch_end=True)
    assert checkpoint._save_on_train_epoch_end is True, "ModelCheckpoint keeps save_on_train_epoch_end elsewhere"
    assert hasattr(Trainer(logger=False), "_checkpoint_connector"), "the Trainer has no checkpoint connector"
    logger = TensorBoardLogger(tmp_path)
    assert hasattr(logger, "_prefix"), "TensorBoardLogger has no _prefix: RunLogger.log_metrics needs a new check"
    launcher = _SubprocessScriptLauncher.__init__
    assert "num_nodes" in inspect.signature(launcher).parameters
    assert "procs" in inspect.getsource(_SubprocessScriptLauncher), "the launcher no longer keeps its children"


def test_epoch_logging_takes_every_parameter_of_lightnings_log_by_name():
    """log_dict calls self.log with all of Lightning's parameters: EpochLogging's fast path must know each by name
    (one it does not know goes to Lightning's slow self.log, silently costing what the mixin saves)."""
    from lightning.pytorch import LightningModule

    from linlight.mixins import EpochLogging

    theirs = list(inspect.signature(LightningModule.log).parameters)
    ours = list(inspect.signature(EpochLogging.log).parameters)
    assert theirs == ours[: len(theirs)] and ours[len(theirs):] == ["kwargs"], (theirs, ours)
