"""What changed in a dataset since the last run: added, changed (bytes or tags) and removed images.

The last run is the manifest the last relabel run completed with; before the first relabel run
(after a `dvc repro`) it is what the pseudo-mask store says each mask was made from, so an
unchanged dataset counts as unchanged rather than as every image added (which retrained).
"""

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


def stored_fingerprints(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The fingerprints the pseudo-mask store's rows (`PseudoMaskStore.stored_rows`) record: the
    image bytes and tags each mask was made from (no path: a moved file with the same bytes and
    tags is unchanged)."""
    return {image_id: {"sha256": row.get("source_sha256"), "tags": sorted(row.get("tags") or ())} for image_id, row in rows.items()}


def diff_manifests(previous: Manifest | None, current: Manifest) -> ManifestDiff:
    """Compare two manifests by image id and content fingerprint; no previous = everything added."""
    return diff_fingerprints({r.image_id: record_fingerprint(r) for r in (previous.records if previous else ())}, current)


def diff_fingerprints(old: Mapping[str, Mapping[str, Any]], current: Manifest) -> ManifestDiff:
    """Compare earlier fingerprints (a manifest's, or the stores') with `current` by image id, on
    the fields the earlier ones record."""
    new = {r.image_id: record_fingerprint(r) for r in current.records}
    reasons = {
        image_id: changed
        for image_id in sorted(set(old) & set(new))
        if (changed := tuple(k for k in old[image_id] if new[image_id].get(k) != old[image_id][k]))
    }
    return ManifestDiff(
        added=tuple(sorted(set(new) - set(old))),
        changed=tuple(reasons),
        removed=tuple(sorted(set(old) - set(new))),
        unchanged=tuple(sorted(i for i in set(old) & set(new) if i not in reasons)),
        reasons=reasons,
    )
