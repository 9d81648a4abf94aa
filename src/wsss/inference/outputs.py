"""Where `wsss predict` / `wsss segment` write, one image at a time, and how a run reports failures.

An output folder holds one file per image and kind (`labels/<name>.png`, `confidence/<name>.npy`,
`overlays/<name>.png`, ...), written atomically with the project's encoders (`wsss.palette`
palette PNGs as every mask of the pipeline, float16 `.npy` confidence as the pseudo stage's), a
`failures.json` listing each image that could not be used and why (only while there are any) and
`<command>.log` with the tracebacks, which never reach the terminal. A run fails (exit 2) only when
more than `--max-failed-share` of its images failed, after every other image was written.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from wsss.errors import ArtifactWriteError, WsssError
from wsss.failures import FailureReport
from wsss.io.atomic import write_bytes_atomic, write_json_atomic
from wsss.io.pseudo_store import npy_bytes, png_bytes
from wsss.palette import palette_png_bytes

T = TypeVar("T")


@dataclass(frozen=True)
class OutputFolder:
    """The output folder of one command run (`command` names its log and failure report)."""

    root: Path
    command: str

    def path(self, kind: str, name: str, suffix: str) -> Path:
        return self.root / kind / f"{name}{suffix}"

    @property
    def failures(self) -> Path:
        return self.root / "failures.json"

    @property
    def log(self) -> Path:
        return self.root / f"{self.command}.log"

    def write_labels(self, kind: str, name: str, labels: np.ndarray) -> Path:
        """`(H, W)` labels as a VOC-palette PNG (the pipeline's mask encoding)."""
        path = self.path(kind, name, ".png")
        write_bytes_atomic(path, palette_png_bytes(labels))
        return path

    def write_confidence(self, kind: str, name: str, confidence: np.ndarray) -> Path:
        """`(H, W)` confidence as float16 `.npy` (as the pseudo stage stores it)."""
        path = self.path(kind, name, ".npy")
        write_bytes_atomic(path, npy_bytes(np.asarray(confidence).astype(np.float16)))
        return path

    def write_image(self, kind: str, name: str, rgb: np.ndarray) -> Path:
        """An `(H, W, 3)` uint8 figure (an overlay) as PNG."""
        path = self.path(kind, name, ".png")
        write_bytes_atomic(path, png_bytes(rgb))
        return path

    def logger(self) -> logging.Logger:
        """A logger writing to `<command>.log` in the folder: tracebacks of failed images, and the
        libraries' warnings (mmseg's deprecation notes), which would otherwise bury the summary."""
        logger = logging.getLogger(f"wsss.inference.{self.command}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        target = str(self.log.resolve())
        if not any(getattr(handler, "baseFilename", None) == target for handler in logger.handlers):
            self.root.mkdir(parents=True, exist_ok=True)
            for handler in list(logger.handlers):  # an earlier run of this process wrote elsewhere
                logger.removeHandler(handler)
                logging.getLogger("py.warnings").removeHandler(handler)
                handler.close()
            handler = logging.FileHandler(self.log, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
            logging.getLogger("py.warnings").addHandler(handler)
            logging.captureWarnings(True)
        return logger

    def settle(self, failures: FailureReport, total: int, max_failed_share: float) -> None:
        """`failures.json` while there are failures (removed otherwise); then the verdict.

        Raises:
            TooManyFailuresError: when more than `max_failed_share` of the `total` images failed.
        """
        if failures.failures:
            write_json_atomic(self.failures, failures.to_dict(total, max_failed_share))
        else:
            self.failures.unlink(missing_ok=True)
        failures.check(total, max_failed_share, str(self.failures))


def record_failure(failures: FailureReport, logger: logging.Logger, name: str, file: str, error: BaseException) -> None:
    """One image's failure: its reason in the report, the traceback in the log (a disk-full or
    permission error is not the image's fault: it stops the run)."""
    if isinstance(error, ArtifactWriteError):
        raise error
    reason = str(error) if isinstance(error, WsssError) else f"{type(error).__name__}: {error}"
    failures.add(name, file, reason)
    logger.warning("%s (%s): %s\n%s", name, file, reason, "".join(traceback.format_exception(error)).rstrip())


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr when it is a terminal (none under CI or in logs); yields `advance(n)`."""
    from tqdm import tqdm

    with tqdm(total=total, desc=what, unit="image", file=sys.stderr, disable=None, dynamic_ncols=True) as bar:
        yield bar.update


def batches_of_one_size(items: Iterable[tuple[T, np.ndarray]], batch_size: int) -> Iterator[list[tuple[T, np.ndarray]]]:
    """Consecutive `(item, image)` pairs in batches of at most `batch_size` images of one size.

    A model input batch holds one size only (padding would change what the network sees), so a
    batch ends early when the next image's size differs; the order is kept.
    """
    batch: list[tuple[T, np.ndarray]] = []
    for item, image in items:
        if batch and (len(batch) == batch_size or batch[0][1].shape != image.shape):
            yield batch
            batch = []
        batch.append((item, image))
    if batch:
        yield batch
