"""Which model settings a resumed run trains with: those given on this command line win.

``LightningCLI._parse_ckpt_path`` replaces the model's settings with the checkpoint's hyperparameters,
after the command line is parsed, so ``linlight fit --ckpt_path last --model.lr 0.05`` used to train on
with the old learning rate, silently (and record the old one). linlight reads back which model settings
the command line (and its ``--config`` files) gave, and puts them back over the checkpoint's before the
model is built; the rest still comes from the checkpoint. ``LitLinearRegression.on_train_start`` then
makes the optimizer use the model's ``lr`` (Lightning restores the old one with the optimizer state).
A changed ``model.arch`` cannot resume (the weights have another shape) and is refused.
"""

from __future__ import annotations

from typing import Any

from linlight.errors import CheckpointError


def given_model_settings(parser: Any, args: Any, config: Any) -> dict[str, Any]:
    """The ``model.*`` settings given explicitly for a ``fit`` that resumes a checkpoint, else ``{}``."""
    subcommand = config.get("subcommand")
    if subcommand != "fit" or not config[subcommand].get("ckpt_path"):
        return {}
    if isinstance(args, dict):
        given = args.get(subcommand, args)
    else:
        given = parser.parse_args(args, defaults=False).as_dict().get(subcommand, {})
    model = given.get("model") or {}
    return dict(model) if isinstance(model, dict) else {}


def keep_given_model_settings(config: Any, given: dict[str, Any]) -> None:
    """Put the given model settings back over the checkpoint's; refuse another architecture."""
    if not given:
        return
    model = config[config["subcommand"]].model
    if "arch" in given and given["arch"] != model.arch:
        raise CheckpointError(
            f"{config[config['subcommand']].ckpt_path} was trained with model.arch={model.arch!r} (now "
            f"{given['arch']!r}): its weights do not fit that model; resume with the same arch, or start a new run"
        )
    for key, value in given.items():
        model[key] = value
