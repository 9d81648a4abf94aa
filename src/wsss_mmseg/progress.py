"""Training progress out of mmengine's loop: a hook that tells a `(done, total)` callback the
iteration count (the pipeline's progress bar, artifact and log lines), resumed runs included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmengine.hooks import Hook

IterationCallback = Callable[[int, int], None]


class IterationProgressHook(Hook):
    """Calls `on_iteration(done, max_iters)` before training (a resumed run starts above 0) and
    after every training iteration."""

    priority = "VERY_LOW"

    def __init__(self, on_iteration: IterationCallback) -> None:
        self.on_iteration = on_iteration

    def before_train(self, runner: Any) -> None:
        self.on_iteration(int(runner.iter), int(runner.max_iters))

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.on_iteration(int(runner.iter) + 1, int(runner.max_iters))
