"""mmengine's Runner as the pipeline runs it: a quiet console and a config without stale helper variables.

Before the first iteration mmengine logs the whole environment, the config, the hook order and
per-parameter optimiser options at INFO (~400 lines) to stdout *and* its log file, and its config
dump showed the file's top-level helper variables (`max_iters = 20`, `num_classes = 21`) next to
the overridden values the run used. Here the console shows mmengine's warnings and errors, the log
file everything, and the config holds only what the Runner reads.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from mmengine.config import Config
from mmengine.runner import Runner

__all__ = ["RUNNER_KEYS", "QuietRunner", "without_helper_variables"]

# What mmengine's Runner reads from a config: its constructor's arguments, the keys it looks up in
# `self.cfg` later (mmengine 0.10 runner.py: model wrapper, SyncBN, DDP, compile, memory options)
# and `custom_imports`, which a dumped config needs to load again. Any other top-level name of a
# config file is a helper variable (`max_iters = 20`, `num_classes = 21`, `crop_size`) whose value
# the file already copied into the sections; after an override it is stale, and the config dump
# (train.log, `<work_dir>/<config>.py`) showed it next to the effective value.
RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {"self", "cfg"} | {
    "model_wrapper_cfg",
    "sync_bn",
    "find_unused_parameters",
    "activation_checkpointing",
    "efficient_conv_bn_eval",
    "compile",
    "custom_imports",
}


def without_helper_variables(cfg: Config) -> Config:
    """The config with only what the Runner reads, so every value it shows is the effective one.

    A top-level ``data_preprocessor`` is dropped too when the model has its own: the Runner uses it
    only for a model without one (and its ``size`` would not follow a crop override).
    """
    kept = {key: cfg[key] for key in cfg if key in RUNNER_KEYS}
    if "data_preprocessor" in (cfg.get("model") or {}):
        kept.pop("data_preprocessor", None)
    return Config(kept, filename=cfg.filename)


# mmengine's own deprecation notices, raised by its CheckpointHook on every run: nothing a user of
# the pipeline can act on, so they stay in the log file and off the console.
CONSOLE_NOISE = ('"FileClient" will be deprecated', '"HardDiskBackend" is the alias')


class _ConsoleFilter(logging.Filter):
    """Passes warnings and errors (without mmengine's own deprecation notices) to the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and not str(record.getMessage()).startswith(CONSOLE_NOISE)


class QuietRunner(Runner):
    """mmengine's Runner whose console shows warnings and errors only.

    The Runner logs the whole environment, the config, the hook order and per-parameter optimiser
    options at INFO (~400 lines before the first iteration) to stdout *and* its log file; here
    they go to the log file only (the train stage copies it to ``artifacts/train/train.log``).
    Progress is the caller's: ``on_iteration`` of :func:`train_segmenter`.
    """

    def build_logger(self, log_level: int | str = "INFO", log_file: str | None = None, **kwargs: Any) -> Any:
        logger = super().build_logger(log_level=log_level, log_file=log_file, **kwargs)
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and not any(isinstance(f, _ConsoleFilter) for f in handler.filters):
                handler.addFilter(_ConsoleFilter())
        return logger
