"""Progress of a long stage, for the three people watching it: a terminal bar, a Prefect progress
artifact and INFO log lines.

* The bar (tqdm) goes to stderr and only when stderr is a terminal: DVC and CI runs get no
  carriage-return noise, only the log lines.
* The Prefect progress artifact is updated on the clock (every `artifact_every_s` seconds and at
  the end), never "at multiples of N images", so uneven shards still show intermediate values.
* A log line with counts, rate and ETA every `log_every_s` seconds or every `log_every_share` of
  the work, whichever comes first; `finish` logs what was done ("cams: 6 images, 2 computed,
  4 reused in 12.3 s").

The clock is injectable so tests check the cadence without sleeping.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext
from tqdm import tqdm

from wsss.stage_result import StageResult


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def shards_outcome(result: StageResult) -> str:
    """What a sharded stage run did to its shards, for its closing line."""
    return f"{plural(len(result.written), 'shard')} written, {len(result.details['untouched'])} unchanged"


# How the engine's outcomes read in a sentence.
OUTCOME_WORDS = {"copied": "reused", "untouched": "unchanged"}


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """Prefect's run logger inside a flow or task run (it reaches the UI), else the `wsss` logger."""
    if FlowRunContext.get() is not None or TaskRunContext.get() is not None:
        return get_run_logger()
    return logging.getLogger("wsss")


def duration_text(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """A stage's `StageReport`: `start(total)`, `advance(ids, outcome)` (or `tick(n)`), `finish()`.

    Args:
        key: Prefect artifact key (lowercase, dashes), distinct per stage and variant.
        description: the artifact's description in the UI.
        label: the name in bars and log lines ("cams", "evaluate model crf=on").
        unit: what is counted ("image", "iteration", "step").
        clock: seconds, monotonic (injected in tests).
    """

    def __init__(
        self,
        key: str,
        description: str,
        label: str | None = None,
        unit: str = "image",
        *,
        artifact_every_s: float = 3.0,
        log_every_s: float = 20.0,
        log_every_share: float = 0.05,
        min_log_gap_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        bar: bool | None = None,
    ) -> None:
        self.key, self.description, self.unit = key, description, unit
        self.label = label or key.removeprefix("wsss-").removesuffix("-progress")
        self.artifact_every_s, self.log_every_s, self.log_every_share = artifact_every_s, log_every_s, log_every_share
        self.min_log_gap_s = min_log_gap_s  # share-triggered lines no closer than this (fast small runs)
        self.clock, self.show_bar = clock, bar
        self.total, self.done = 0, 0
        self.counts: dict[str, int] = {}  # outcome -> units
        self.artifact: UUID | None = None
        self._bar: Any = None
        self._started: float | None = None
        self._artifact_at = self._logged_at = 0.0
        self._logged_done, self._published = 0, 0.0
        self._active = self._finished = False

    # -- StageReport -------------------------------------------------------------------------
    def start(self, total: int) -> None:
        self.total, self.done, self.counts, self._finished = max(int(total), 0), 0, {}, False
        self._started = self._artifact_at = self._logged_at = self.clock()
        self._logged_done, self._published, self._active = 0, 0.0, True
        self._close_bar()
        # disable=None: no bar unless stderr is a terminal (DVC, CI, pipes get only log lines).
        self._bar = tqdm(
            total=self.total,
            desc=self.label,
            unit=self.unit,
            file=sys.stderr,
            leave=False,
            disable=None if self.show_bar is None else not self.show_bar,
            dynamic_ncols=True,
        )
        if FlowRunContext.get() is not None:
            artifact = create_progress_artifact(0.0, key=self.key, description=self.description)
            # Prefect's async_dispatch types the call `UUID | Coroutine`: from sync code (a stage) it is the UUID.
            assert isinstance(artifact, UUID), "a progress artifact is created from sync code"
            self.artifact = artifact
        run_logger().info("%s: %d %s to go through", self.label, self.total, self._units(self.total))

    def advance(self, image_ids: Sequence[str], outcome: str) -> None:
        self.tick(len(image_ids), outcome)

    # -- other units ---------------------------------------------------------------------------
    def tick(self, count: int = 1, outcome: str = "done") -> None:
        """`count` more units finished with this outcome."""
        if count <= 0:
            return
        self.done += count
        self.counts[outcome] = self.counts.get(outcome, 0) + count
        if self._bar is not None:
            self._bar.update(count)
        self._publish(self.clock())

    @property
    def started(self) -> bool:
        return self._active

    def reach(self, done: int, total: int, outcome: str = "done") -> None:
        """A `(done, total)` callback (training iterations, review images): starts on first use."""
        if not self._active or total != self.total:
            self.start(total)
        self.tick(done - self.done, outcome)

    def finish(self, detail: str = "") -> None:
        """The artifact at 100 %, the bar closed, one line saying what was done."""
        if self._finished:
            return
        self._finished, self._active = True, False
        now = self.clock()
        if self.artifact is not None and self._published < 100.0:
            update_progress_artifact(self.artifact, 100.0)
            self._published = 100.0
        self._close_bar()
        elapsed = now - (now if self._started is None else self._started)
        counts = ", ".join(f"{n} {OUTCOME_WORDS.get(o, o)}" for o, n in self.counts.items() if o != "done")
        rate = f" ({self.done / elapsed:.2f} {self.unit}/s)" if elapsed > 0 and self.done else ""
        run_logger().info(
            "%s: %d %s%s%s in %.1f s%s",
            self.label,
            self.done,
            self._units(self.done),
            f", {counts}" if counts else "",
            f", {detail}" if detail else "",
            elapsed,
            rate,
        )

    # -- internals -----------------------------------------------------------------------------
    def _units(self, count: int) -> str:
        return self.unit if count == 1 else f"{self.unit}s"

    def _publish(self, now: float) -> None:
        percent = 100.0 * self.done / self.total if self.total else 100.0
        complete = self.done >= self.total
        if self.artifact is not None and (complete or now - self._artifact_at >= self.artifact_every_s):
            value = min(100.0, percent)
            if value > self._published:
                update_progress_artifact(self.artifact, value)
                self._published = value
            self._artifact_at = now
        share_step = max(1, int(self.total * self.log_every_share))
        since = now - self._logged_at
        if complete or since >= self.log_every_s or (self.done - self._logged_done >= share_step and since >= self.min_log_gap_s):
            self._log_line(now, percent)
        if complete:
            self._close_bar()

    def _log_line(self, now: float, percent: float) -> None:
        elapsed = now - (now if self._started is None else self._started)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = f", ETA {duration_text(left / rate)}" if rate > 0 and left > 0 else ""
        run_logger().info(
            "%s: %d/%d %s (%.0f %%), %.2f %s/s%s",
            self.label,
            self.done,
            self.total,
            self._units(self.total),
            min(percent, 100.0),
            rate,
            self.unit,
            eta,
        )
        self._logged_at, self._logged_done = now, self.done

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
