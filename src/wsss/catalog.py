"""The artifact catalog: the one place that names where every artifact of the pipeline lives.

Stage entries (`tasks/`), lineage, the CLI and the tests take paths from an `ArtifactLayout`;
`dvc.yaml` names the same paths, and a test checks both ways that they agree
(`ArtifactLayout.dvc_stages`). Paths are relative to the repository (`repo`), where the stages
run. The SemPLeS second pass writes the same cams/refined/pseudo layout under
`artifacts/learned` (`layout.learned()`), so one stage entry serves both passes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

ARTIFACTS = "artifacts"
SCRATCH = ".wsss-scratch"
LOOP_STATE = ".wsss"
CORRECTIONS = "corrections"
REVIEWED = "reviewed.json"
LEARNED = "learned"


@dataclass(frozen=True)
class PseudoLayout:
    """One pass's pseudo masks: per-image files in four folders and a summary.

    `masks/<id>.png` (VOC palette, 255 = ignored), `raw/<id>.png` (before the confidence filter),
    `confidence/<id>.npy` (float16), `keys/<id>.json` (reuse key + summary row), `summary.json`.
    """

    root: Path

    MASKS: ClassVar[str] = "masks"
    RAW: ClassVar[str] = "raw"
    CONFIDENCE: ClassVar[str] = "confidence"
    KEYS: ClassVar[str] = "keys"
    # Folder -> suffix of one image's output file, in the order they are written.
    OUTPUTS: ClassVar[dict[str, str]] = {MASKS: ".png", RAW: ".png", CONFIDENCE: ".npy"}

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def folder(self, kind: str) -> Path:
        return self.root / kind

    def output(self, kind: str, image_id: str) -> Path:
        suffix = ".json" if kind == self.KEYS else self.OUTPUTS[kind]
        return self.root / kind / f"{image_id}{suffix}"

    def output_folders(self) -> list[Path]:
        return [self.root / kind for kind in self.OUTPUTS]

    def outputs(self, image_id: str) -> dict[str, Path]:
        """The mask, raw labels and confidence files of one image, by folder."""
        return {kind: self.output(kind, image_id) for kind in self.OUTPUTS}


@dataclass(frozen=True)
class ArtifactLayout:
    """Every artifact path of one repository (and of one pass: `learned()` is the second)."""

    repo: Path = Path(".")
    relabel_state_dir: str = "artifacts/relabel"
    pass_name: str | None = None  # None: the main pass; "learned": the SemPLeS second pass
    corrections_dir: str = CORRECTIONS  # relative to the repository (`wsss review --corrections`)

    @classmethod
    def for_params(cls, params: Any, repo: Path | str = ".") -> ArtifactLayout:
        """The layout of a repository run with these params (`relabel.state_dir` is a param)."""
        return cls(Path(repo), params.relabel.state_dir)

    def with_corrections(self, corrections_dir: Path | str) -> ArtifactLayout:
        """The same layout with another corrections store (relative to the repository, or absolute)."""
        return replace(self, corrections_dir=str(corrections_dir))

    def learned(self) -> ArtifactLayout:
        """The same layout for the SemPLeS second pass (cams/refined/pseudo under artifacts/learned)."""
        return replace(self, pass_name=LEARNED)

    @property
    def artifacts(self) -> Path:
        return self.repo / ARTIFACTS

    @property
    def pass_root(self) -> Path:
        """Where this pass's cams/refined/pseudo live: artifacts/ or artifacts/learned/."""
        return self.artifacts / self.pass_name if self.pass_name else self.artifacts

    @property
    def sample_data(self) -> Path:
        """Where the `sample` stage materialises the embedded sample (a VOC tree; data, not an artifact)."""
        return self.repo / "data" / "sample"

    # prepare
    @property
    def prepare(self) -> Path:
        return self.artifacts / "prepare"

    @property
    def manifest(self) -> Path:
        return self.prepare / "manifest.json"

    @property
    def manifest_meta(self) -> Path:
        return self.prepare / "manifest.meta.json"

    @property
    def prepare_failures(self) -> Path:
        return self.prepare / "failures.json"

    @property
    def ground_truth(self) -> Path:
        """Label maps `prepare` derives (COCO masks rasterised from the instances JSON), reused by
        content key across runs (a persisted DVC output); manifest records whose
        `ground_truth_root` is "derived" are relative to it."""
        return self.artifacts / "ground_truth"

    @property
    def ground_truth_about(self) -> Path:
        """What the derived ground-truth folder is, written by `prepare`: it also keeps the folder
        non-empty when nothing is derived, so DVC does not warn "'artifacts/ground_truth' is empty"."""
        return self.ground_truth / "README.md"

    # prompts
    @property
    def prompts(self) -> Path:
        return self.artifacts / "prompts"

    @property
    def prompt_scores(self) -> Path:
        return self.prompts / "scores.json"

    @property
    def vocabulary(self) -> Path:
        """What CLIP is asked: classes, synonyms, dataset names, background words and the exact
        prompt strings of the selected template (written by the prompts stage)."""
        return self.prompts / "vocabulary.json"

    @property
    def prompt_features(self) -> Path:
        """Image features of the scoring images by content key (`<key>.npy`), reused across runs."""
        return self.prompts / "features"

    @property
    def prompt_text_features(self) -> Path:
        """Class prompt embeddings of each scored template by content key (`<key>.npy`), reused across runs."""
        return self.prompts / "text_features"

    # cams -> refine -> pseudo (per pass)
    @property
    def cams(self) -> Path:
        return self.pass_root / "cams"

    @property
    def refined(self) -> Path:
        return self.pass_root / "refined"

    @property
    def pseudo(self) -> PseudoLayout:
        return PseudoLayout(self.pass_root / "pseudo")

    def stage_failures(self, store: Path) -> Path:
        """Per-image failures of a sharded stage, next to its store (only while there are any)."""
        return store / "failures.json"

    @property
    def pass_status(self) -> Path:
        """The second pass's record (also written while SemPLeS is disabled)."""
        return self.artifacts / LEARNED / "status.json"

    # train
    @property
    def train(self) -> Path:
        return self.artifacts / "train"

    @property
    def model(self) -> Path:
        return self.train / "model.pth"

    @property
    def model_record(self) -> Path:
        return self.train / "model.json"

    @property
    def train_log(self) -> Path:
        return self.train / "train.log"

    @property
    def train_curves(self) -> Path:
        return self.train / "curves"

    @property
    def model_card(self) -> Path:
        """What the model is, was trained on, scored and cannot do; written by `evaluate` from model.json and the scores."""
        return self.train / "MODEL_CARD.md"

    def train_curve(self, split: str) -> Path:
        """Training curves as DVC plot rows: `train` (loss, lr per iteration) or `val` (mIoU)."""
        return self.train_curves / f"{split}.json"

    # learn_prompts
    @property
    def learn_prompts(self) -> Path:
        return self.artifacts / "learn_prompts"

    @property
    def learned_prompts(self) -> Path:
        return self.learn_prompts / "prompts.safetensors"

    @property
    def learn_prompts_report(self) -> Path:
        return self.learn_prompts / "report.md"

    @property
    def learn_prompts_status(self) -> Path:
        return self.learn_prompts / "status.json"

    # evaluate
    @property
    def metrics(self) -> Path:
        """Every key of the evaluation protocol (mIoU, pixel accuracy, pixels per variant)."""
        return self.artifacts / "metrics.json"

    @property
    def metrics_headline(self) -> Path:
        """One mIoU per artifact (`wsss.evaluation.headline`): the file `dvc metrics show` prints."""
        return self.artifacts / "metrics_headline.json"

    @property
    def evaluation_run(self) -> Path:
        return self.artifacts / "evaluation_run.json"

    @property
    def plots(self) -> Path:
        return self.artifacts / "plots"

    @property
    def per_class_iou(self) -> Path:
        return self.plots / "per_class_iou.json"

    @property
    def pipeline_miou(self) -> Path:
        return self.plots / "pipeline_miou.json"

    @property
    def overlays(self) -> Path:
        return self.plots / "overlays"

    # relabel state (outside DVC: written by `python -m flows.relabel`)
    @property
    def relabel(self) -> Path:
        return self.repo / self.relabel_state_dir

    @property
    def last_manifest(self) -> Path:
        return self.relabel / "last_manifest.json"

    @property
    def run_log(self) -> Path:
        return self.relabel / "runs.jsonl"

    @property
    def relabel_metrics(self) -> Path:
        return self.relabel / "metrics.json"

    def history(self, run_stamp: str) -> Path:
        """Where a relabel run keeps the previous version of every mask it replaces."""
        return self.relabel / "history" / run_stamp

    # the review loop
    @property
    def review(self) -> Path:
        """The static HTML review report (`index.html`, `run.html`, `triage.json`, panels)."""
        return self.artifacts / "review"

    @property
    def exports(self) -> Path:
        """Default folder of `wsss export` (one subfolder per format; not a stage output)."""
        return self.artifacts / "export"

    @property
    def corrections(self) -> Path:
        """Human-corrected masks: an input the user commits (never a stage output); training and
        lineage prefer them over pseudo masks, relabel never touches them."""
        return self.repo / self.corrections_dir

    @property
    def reviewed(self) -> Path:
        """Images a person marked reviewed (`wsss review --mark-reviewed`): human input like the
        corrections, out of `corrections/` so that a mark does not make DVC retrain."""
        return self.repo / REVIEWED

    # outside the artifacts
    @property
    def lock_dir(self) -> Path:
        """The run lock (`wsss.run_lock`) sits in the artifacts directory it guards."""
        return self.artifacts

    @property
    def loop_state(self) -> Path:
        """What the `wsss` loop commands keep (git-ignored, not in DVC): `runs.jsonl`, `logs/`."""
        return self.repo / LOOP_STATE

    @property
    def loop_runs(self) -> Path:
        """One JSON line per `wsss run` / `wsss relabel`: when, what, how it ended, its parent flow run."""
        return self.loop_state / "runs.jsonl"

    def log_file(self, command: str) -> Path:
        """Tracebacks of expected errors of one command (`run`, a stage), and the Prefect server's output."""
        return self.loop_state / "logs" / f"{command}.log"

    def scratch(self, name: str) -> Path:
        """A resumable work folder, e.g. `cams-<key>` (kept across interrupted runs, not in DVC)."""
        return self.repo / SCRATCH / name

    def dvc_stages(self) -> dict[str, dict[str, list[Path]]]:
        """Per DVC stage, the artifact paths it reads (`deps`) and writes (`outs`, metrics, plots).

        `dvc.yaml` must name exactly these artifact paths, the corrections input included
        (tests/unit/test_architecture.py).
        """
        main, learned = replace(self, pass_name=None), self.learned()
        return {
            "sample": {"deps": [], "outs": [self.sample_data]},
            "prepare": {"deps": [], "outs": [self.prepare, self.ground_truth]},
            "prompts": {"deps": [self.prepare], "outs": [self.prompts]},
            "cams": {"deps": [self.prepare, self.prompt_scores], "outs": [main.cams]},
            "refine": {"deps": [main.cams], "outs": [main.refined]},
            "pseudo": {"deps": [main.refined], "outs": [main.pseudo.root]},
            "review": {
                "deps": [
                    self.prepare,
                    self.ground_truth,
                    self.prompt_scores,
                    main.cams,
                    main.refined,
                    main.pseudo.root,
                    self.corrections,
                    self.reviewed,
                ],
                "outs": [self.review],
            },
            # train's outputs are named file by file: the model card beside them is evaluate's.
            "train": {
                "deps": [self.prepare, self.ground_truth, main.pseudo.root, self.corrections],
                "outs": [self.model, self.model_record, self.train_log, self.train_curves],
            },
            "learn_prompts": {"deps": [self.prepare, main.pseudo.root, main.refined], "outs": [self.learn_prompts]},
            "learned_cams": {"deps": [self.learn_prompts, self.prepare, self.prompt_scores], "outs": [learned.pass_root]},
            "evaluate": {
                "deps": [
                    self.prepare,
                    self.ground_truth,
                    main.cams,
                    main.refined,
                    main.pseudo.root,
                    self.model,
                    self.model_record,
                    learned.pass_root,
                ],
                "outs": [
                    self.evaluation_run,
                    self.model_card,
                    self.metrics,
                    self.metrics_headline,
                    self.pipeline_miou,
                    self.per_class_iou,
                    self.overlays,
                ],
            },
        }

    def dvc_top_level_plots(self) -> list[Path]:
        """The files dvc.yaml's top-level `plots` draw (training curves)."""
        return [self.train_curve("train"), self.train_curve("val")]
