"""Readers of today's stage outputs for the review, export and import commands.

Every path comes from the artifact catalog (`wsss.catalog.ArtifactLayout`: manifest, CAM and
refined stores, pseudo masks, prompt scores, derived ground truth, the corrections store, the
review and export folders), and every artifact is read through its store or record class
(`CamStore`, `PseudoMaskStore`, `PseudoSummary`, the one GT reader `GroundTruthFiles`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from wsss.bounded_parsing import read_json_file
from wsss.catalog import ArtifactLayout, PseudoLayout
from wsss.datasets import GroundTruthFiles, ImageRecord, Manifest, file_sha256, safe_join
from wsss.errors import ConfigError, WsssError
from wsss.io import CamStore
from wsss.io.pseudo_store import PseudoMaskStore
from wsss.provenance import sha256_of
from wsss.pseudo.settings import PseudoSettings
from wsss.review.corrections import CorrectionRecord, CorrectionStore, ImageSpec
from wsss.review.reviewed import ReviewedStore, ReviewMark, sort_marks
from wsss.review.training_labels import sort_corrections
from wsss.settings import build_section
from wsss.stage_inputs import read_manifest, read_manifest_meta, recorded_dataset_name


@dataclass
class PseudoFacts:
    """The pseudo stage's settings as it recorded them (`summary.json`), typed by the one params
    builder (a key an older summary lacks takes the section's default), and its per-image rows."""

    params: dict[str, Any]  # as recorded (hashed for lineage)
    settings: PseudoSettings
    rows: dict[str, dict[str, Any]]
    flow_run_id: str | None
    input_manifest_sha256: str | None

    @property
    def ignore_index(self) -> int:
        return self.settings.ignore_index

    @property
    def alpha(self) -> float:
        return self.settings.background_alpha


@dataclass
class PipelineOutputs:
    """Read-only access to one pipeline run's outputs (lazily loaded, cached)."""

    layout: ArtifactLayout = field(default_factory=ArtifactLayout)

    @classmethod
    def at(cls, root: Path | str = ".", corrections: Path | str | None = None) -> PipelineOutputs:
        """The outputs of the repository `root`; `corrections`: another corrections folder, relative to `root`."""
        layout = ArtifactLayout(Path(root))
        return cls(layout if corrections is None else layout.with_corrections(corrections))

    @staticmethod
    def _read_json(path: Path, required: bool = True) -> Any:
        if not path.is_file():
            if required:
                raise WsssError(f"{path}: missing; run the pipeline up to the stage that writes it (`dvc repro`)")
            return None
        try:
            return read_json_file(path)
        except (OSError, ValueError) as error:
            raise WsssError(f"{path}: unreadable JSON ({error})") from error

    @cached_property
    def masks(self) -> PseudoMaskStore:
        return PseudoMaskStore(self.layout.pseudo)

    @cached_property
    def manifest(self) -> Manifest:
        return read_manifest(self.layout)

    @cached_property
    def records(self) -> dict[str, ImageRecord]:
        return {record.image_id: record for record in self.manifest.records}

    @cached_property
    def image_specs(self) -> dict[str, ImageSpec]:
        return {r.image_id: ImageSpec(r.image_id, r.width, r.height, r.sha256) for r in self.manifest.records}

    @cached_property
    def dataset_root(self) -> Path:
        meta = self._read_json(self.layout.manifest_meta)
        return self.layout.repo / meta["root"]

    @cached_property
    def class_names(self) -> list[str]:
        """Label value -> name: background first, then the manifest's classes."""
        return ["background", *self.manifest.class_names]

    def has_pseudo_summary(self) -> bool:
        return self.layout.pseudo.summary.is_file()

    @cached_property
    def pseudo(self) -> PseudoFacts:
        path = self.layout.pseudo.summary
        if not path.is_file():
            raise WsssError(f"{path}: no pseudo masks yet; run the pseudo stage (`dvc repro pseudo`) first")
        summary = self.masks.read_summary()
        assert summary is not None
        rows = {row["image_id"]: row for row in summary.images}
        try:
            settings = build_section(PseudoSettings, summary.params or {}, PseudoSettings.SECTION)
        except ConfigError as error:
            raise WsssError(f"{path}: the recorded pseudo params do not check ({error})") from error
        return PseudoFacts(summary.params or {}, settings, rows, summary.flow_run_id, summary.input_manifest_sha256)

    @property
    def ignore_index(self) -> int:
        """The label of ignored pixels of this run's masks (the section default before any pseudo run)."""
        return self.pseudo.ignore_index if self.has_pseudo_summary() else PseudoSettings().ignore_index

    def image_ids(self) -> list[str]:
        """Images of the manifest that have a pseudo mask, sorted."""
        masked = self.masks.image_ids()
        return [i for i in sorted(self.records) if i in masked]

    def pseudo_mask(self, image_id: str) -> np.ndarray:
        """`masks/<id>.png`: labels with the ignore index where confidence was low, `(H, W)` uint8."""
        return self.masks.labels(image_id)

    def crf_labels(self, image_id: str) -> np.ndarray:
        """`raw/<id>.png`: labels before the confidence filter (after the CRF when it is on)."""
        return self.masks.labels(image_id, raw=True)

    def confidence(self, image_id: str) -> np.ndarray:
        return self.masks.confidence(image_id).astype(np.float32)

    @cached_property
    def refined_store(self) -> CamStore:
        return CamStore(self.layout.refined)

    def refined(self, image_id: str) -> tuple[np.ndarray, dict[str, Any]]:
        """Refined maps `(K, H, W)` float16 as stored, and the image's attributes (tags, class ids,
        tag probabilities, source hash, content key)."""
        stored = self.refined_store.read(image_id, ["refined"], keep_dtype=True)
        return stored.arrays["refined"], stored.attrs

    def photo(self, image_id: str) -> np.ndarray:
        from wsss.imaging import load_rgb  # imports torch: only when pictures are drawn

        return np.asarray(load_rgb(safe_join(self.dataset_root, self.records[image_id].image_path)))

    def ground_truth(self, image_id: str) -> np.ndarray | None:
        """The image's label map through the one GT reader (dataset masks and derived COCO masks alike)."""
        record = self.records[image_id]
        if record.ground_truth_path is None:
            return None
        return GroundTruthFiles(self.dataset_root, self.layout.ground_truth).read(record, len(self.manifest.class_names))

    @cached_property
    def corrections(self) -> CorrectionStore:
        return CorrectionStore(self.layout.corrections)

    @cached_property
    def correction_records(self) -> dict[str, CorrectionRecord]:
        return self.corrections.read_records()[0]

    @cached_property
    def sorted_corrections(self) -> tuple[dict[str, CorrectionRecord], list[dict[str, Any]]]:
        """The corrections training uses, and the others with why (`training_labels.sort_corrections`)."""
        return sort_corrections(self.corrections, self.image_specs, len(self.class_names), self.ignore_index)

    def usable_correction(self, image_id: str) -> CorrectionRecord | None:
        """The image's correction when training uses it (it fits the image, its mask passes the checks)."""
        return self.sorted_corrections[0].get(image_id)

    def corrected_mask(self, image_id: str) -> np.ndarray | None:
        """The human-corrected mask training uses, `(H, W)` uint8, or None."""
        record = self.usable_correction(image_id)
        return None if record is None else self.corrections.read_mask(record, len(self.class_names), self.ignore_index)

    @cached_property
    def reviewed(self) -> ReviewedStore:
        return ReviewedStore(self.layout.reviewed)

    def mask_sha256(self, image_id: str) -> str:
        """SHA-256 of the image's pseudo mask file (what a review mark was made on)."""
        return file_sha256(self.layout.pseudo.output(PseudoLayout.MASKS, image_id))

    def review_facts(self, image_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """`(image sha256, pseudo mask sha256)` of the images that have both, as a mark records them."""
        masked = self.masks.image_ids()
        return {i: (self.records[i].sha256, self.mask_sha256(i)) for i in image_ids if i in self.records and i in masked}

    @cached_property
    def sorted_marks(self) -> tuple[dict[str, ReviewMark], list[dict[str, Any]]]:
        """The review marks that hold for today's images and masks, and the stale ones with why."""
        marks = self.reviewed.read()
        return sort_marks(marks, self.review_facts(marks))

    @cached_property
    def manifest_meta(self) -> dict[str, Any]:
        return read_manifest_meta(self.layout)

    @cached_property
    def dataset(self) -> str | None:
        """The dataset's one name, as prepare recorded it."""
        return recorded_dataset_name(self.manifest_meta)

    @cached_property
    def ground_truth_warning(self) -> str | None:
        """Prepare's warning when no ground-truth mask has a background pixel (None otherwise)."""
        warning = (self.manifest_meta.get("ground_truth") or {}).get("warning")
        return str(warning) if warning else None

    @cached_property
    def background_notes(self) -> dict[str, list[dict[str, str]]]:
        """The background words the classes dropped and the near-synonyms kept (vocabulary.json)."""
        document = self._read_json(self.layout.vocabulary, required=False) or {}
        notes = {"dropped": document.get("background_words_dropped"), "near_synonyms": document.get("background_near_synonyms")}
        return {
            key: [{k: str(v) for k, v in entry.items()} for entry in value if isinstance(entry, dict)]
            for key, value in notes.items()
            if isinstance(value, list)
        }

    def training_mask(self, image_id: str) -> tuple[np.ndarray, str]:
        """The mask training learns from and where it comes from (`human-corrected` or `pseudo`)."""
        corrected = self.corrected_mask(image_id)
        if corrected is not None:
            return corrected, "human-corrected"
        return self.pseudo_mask(image_id), "pseudo"

    def _root_attrs(self, store: Path, shard: Path) -> dict[str, Any]:
        cache = self.__dict__.setdefault("_root_attr_cache", {})
        key = (str(store), str(shard))
        if key not in cache:
            cache[key] = CamStore(store).root_attrs(shard)
        return cache[key]

    @cached_property
    def prompt_scores(self) -> dict[str, Any]:
        return self._read_json(self.layout.prompt_scores, required=False) or {}

    @cached_property
    def cam_store(self) -> CamStore | None:
        return CamStore(self.layout.cams) if self.layout.cams.is_dir() else None

    def cam_attrs(self, image_id: str) -> tuple[dict[str, Any], Path] | None:
        """The CAM store's attributes of one image (`tag_probabilities`, grid, ...) and its shard."""
        if self.cam_store is None or image_id not in self.cam_store:
            return None
        stored = self.cam_store.read(image_id, [])
        return stored.attrs, stored.shard

    def tag_probabilities(self, image_id: str) -> list[float]:
        """CLIP's probability of each tag (softmax over the tags + background words); [] if unknown."""
        found = self.cam_attrs(image_id)
        return [float(p) for p in found[0].get("tag_probabilities", [])] if found else []

    def lineage(self, image_id: str) -> dict[str, Any]:
        """Model, template, params hashes, code version and flow-run ids behind one image's mask."""
        facts: dict[str, Any] = {}
        refine = self._root_attrs(self.layout.refined, self.refined_store.read(image_id, []).shard)
        upstream = refine.get("upstream_cams") or {}
        found = self.cam_attrs(image_id)
        cams_attrs = self._root_attrs(self.layout.cams, found[1]) if found else {}
        clip = cams_attrs.get("clip") or upstream.get("clip") or {}
        facts["model"] = {key: clip.get(key) for key in ("model_name", "weights", "checkpoint_sha256", "precision") if clip.get(key)}
        facts["template"] = cams_attrs.get("template") or upstream.get("template") or self.prompt_scores.get("selected")
        facts["params_sha256"] = {
            "cams": cams_attrs.get("params_sha256"),
            "refine": refine.get("params_sha256"),
            "pseudo": sha256_of(self.pseudo.params) if self.pseudo.params else None,
        }
        code = cams_attrs.get("code_version") or refine.get("code_version") or {}
        facts["code_version"] = {"git_commit": code.get("git_commit"), "git_dirty": code.get("git_dirty")}
        row = self.pseudo.rows.get(image_id, {})
        facts["flow_run_ids"] = {
            "cams": cams_attrs.get("flow_run_id"),
            "refine": refine.get("flow_run_id"),
            "pseudo": row.get("flow_run_id") or self.pseudo.flow_run_id,
        }
        correction = self.correction_records.get(image_id)
        if correction is not None:
            facts["correction"] = {
                "summary": correction.describe(),
                "mask_file": correction.mask_file,
                "mask_sha256": correction.mask_sha256,
                "stale": next((e["reason"] for e in self.sorted_corrections[1] if e["image_id"] == image_id), None),
            }
        return facts
