"""Per-image failures of a stage: what went wrong with which file, and when the run must fail.

A stage records an image it cannot use (undecodable file, unsafe id, unknown tag, ...) in a
`FailureReport` and carries on with the others. The report is written next to the stage's
outputs; the stage exits non-zero only when the failed share exceeds
`reliability.max_failed_share`, so one bad photo in a large dataset costs that photo, not the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from wsss.errors import TooManyFailuresError
from wsss.settings import check_fields, setting

# 12000 x 9000 photos (108 Mpx) pass; PIL's own decompression-bomb error fires at ~179 Mpx.
DEFAULT_MAX_IMAGE_PIXELS = 120_000_000


@dataclass(frozen=True)
class ReliabilitySettings:
    """How much bad input a run tolerates (the `reliability` params section)."""

    SECTION: ClassVar[str] = "reliability"

    max_failed_share: float = setting(0.05, "a stage fails when more than this share of its images failed (0: any, 1: never)", ge=0.0, le=1.0)
    max_image_pixels: int = setting(DEFAULT_MAX_IMAGE_PIXELS, "larger images (header size, before decoding) are refused", ge=1, le=10_000_000_000)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class ImageFailure:
    """One image a stage could not use.

    Attributes:
        image: the image id or, when no valid id exists, the name as written in the dataset.
        file: the file (or dataset file and line) the problem was found in.
        reason: what is wrong, in words.
    """

    image: str
    file: str
    reason: str


@dataclass
class FailureReport:
    """The failures of one stage run, and the verdict against the tolerated share.

    Attributes:
        stage: the stage name, e.g. "prepare".
        failures: one entry per failed image, in the order found.
    """

    stage: str
    failures: list[ImageFailure] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def add(self, image: str, file: str, reason: str) -> None:
        """Record that `image` (found in `file`) cannot be used because of `reason`."""
        self.failures.append(ImageFailure(str(image), str(file), str(reason)))

    def skip(self, reason: str, count: int = 1) -> None:
        """Record `count` images left out by rule, not by fault (COCO images without annotations,
        as the CLIP-ES lists leave them out): counted and said, never held against the run."""
        if count > 0:
            self.skipped[reason] = self.skipped.get(reason, 0) + count

    def counts_line(self, kept: int) -> str:
        """`128 read, 126 kept, 2 skipped (no annotations), 0 failed`: what happened to every image read."""
        failed, skipped = len(self.failed_images()), sum(self.skipped.values())
        reasons = ", ".join(f"{count} {reason}" if len(self.skipped) > 1 else reason for reason, count in self.skipped.items())
        return f"{kept + failed + skipped} read, {kept} kept, {skipped} skipped" + (f" ({reasons})" if skipped else "") + f", {failed} failed"

    def failed_images(self) -> set[str]:
        return {failure.image for failure in self.failures}

    def failed_share(self, total: int) -> float:
        """Share of `total` images that failed (0 when there were no images at all)."""
        return len(self.failed_images()) / total if total else 0.0

    def to_dict(self, total: int, max_failed_share: float) -> dict[str, Any]:
        """JSON-ready summary: counts, share, threshold and every failure."""
        return {
            "stage": self.stage,
            "images_total": total,
            "images_failed": len(self.failed_images()),
            "failed_share": round(self.failed_share(total), 6),
            "max_failed_share": max_failed_share,
            "images_skipped": dict(self.skipped),
            "failures": [{"image": failure.image, "file": failure.file, "reason": failure.reason} for failure in self.failures],
        }

    def check(self, total: int, max_failed_share: float, report_path: str) -> None:
        """Raise when the failed share exceeds `max_failed_share`.

        Raises:
            TooManyFailuresError: naming the counts, the threshold and the report file.
        """
        share = self.failed_share(total)
        if share > max_failed_share:
            raise TooManyFailuresError(
                f"{self.stage}: {len(self.failed_images())} of {total} images failed ({share:.1%}), more than "
                f"reliability.max_failed_share = {max_failed_share:.1%}; see {report_path}"
            )


def settle_failures(stage: str, failed: Mapping[str, str], total: int, max_failed_share: float, report_path: Path) -> None:
    """The per-image failures of a stage run: `report_path` written while there are any (removed
    otherwise), then the run fails when their share exceeds `max_failed_share`.

    Raises:
        TooManyFailuresError: naming the counts, the threshold and the report.
    """
    from wsss.io.atomic import write_json_atomic

    report = FailureReport(stage)
    for image, reason in sorted(failed.items()):
        report.add(image, stage, reason)
    if report.failures:
        write_json_atomic(report_path, report.to_dict(total, max_failed_share))
    else:
        report_path.unlink(missing_ok=True)
    report.check(total, max_failed_share, str(report_path))
