"""What changed in a dataset since the last run: added, changed (bytes or tags) and removed images."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wsss.datasets import Manifest


def record_fingerprint(record: Any) -> dict[str, Any]:
    """What the labels of one image depend on in the manifest: its bytes, tags and path."""
    return {"sha256": record.sha256, "tags": sorted(record.tags), "image_path": record.image_path}


@dataclass(frozen=True)
class ManifestDiff:
    """Image ids by status, each sorted; `reasons` says which fingerprint fields changed."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]
    reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def to_relabel(self) -> tuple[str, ...]:
        """Images whose masks must be (re)computed."""
        return tuple(sorted(self.added + self.changed))

    def changed_share(self) -> float:
        """(added + changed + removed) over the larger of the old and new image counts."""
        total = max(len(self.added) + len(self.changed) + len(self.unchanged), len(self.changed) + len(self.removed) + len(self.unchanged), 1)
        return (len(self.added) + len(self.changed) + len(self.removed)) / total

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "changed": len(self.changed), "removed": len(self.removed), "unchanged": len(self.unchanged)}


def diff_manifests(previous: Manifest | None, current: Manifest) -> ManifestDiff:
    """Compare two manifests by image id and content fingerprint; no previous = everything added."""
    old = {r.image_id: record_fingerprint(r) for r in (previous.records if previous else ())}
    new = {r.image_id: record_fingerprint(r) for r in current.records}
    reasons = {
        image_id: tuple(k for k in new[image_id] if new[image_id][k] != old[image_id][k])
        for image_id in sorted(set(old) & set(new))
        if new[image_id] != old[image_id]
    }
    return ManifestDiff(
        added=tuple(sorted(set(new) - set(old))),
        changed=tuple(reasons),
        removed=tuple(sorted(set(old) - set(new))),
        unchanged=tuple(sorted(i for i in set(old) & set(new) if i not in reasons)),
        reasons=reasons,
    )
