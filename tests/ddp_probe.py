"""A callback the DDP tests load into `linlight fit` (--trainer.callbacks+=ddp_probe.ShardRecorder): each
process writes down the training inputs it was given, so a test can see how the data was shared out."""

from pathlib import Path

import lightning.pytorch as pl
import torch


class ShardRecorder(pl.Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.seen: list[list[list[float]]] = []  # per epoch, per batch: the x values

    def on_train_epoch_start(self, trainer, pl_module):
        self.seen.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen[-1].append(batch[0].flatten().tolist())

    def on_train_end(self, trainer, pl_module):
        self.out.mkdir(parents=True, exist_ok=True)
        torch.save({"rank": trainer.global_rank, "world_size": trainer.world_size, "seen": self.seen},
                   self.out / f"rank{trainer.global_rank}.pt")
