"""Typed, validated configuration built from a plain mapping (the parsed params.yaml).

Config flows one way: params.yaml -> `CoreConfig.from_mapping` -> frozen dataclasses -> plain
arguments into core functions. Unknown keys and wrong types are rejected here, before any
work, with the dotted key named. Core functions never read configuration files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from wsss.cam.caa import CaaSettings
from wsss.cam.extractor import CamSettings
from wsss.clip.loading import ClipSource
from wsss.errors import ConfigError
from wsss.failures import ReliabilitySettings
from wsss.io.codecs import CODECS, DEFAULT_CODEC
from wsss.prompts.learning import LearnPromptsSettings
from wsss.pseudo.crf import CrfParams
from wsss.text.vocabulary import (
    VOC_BACKGROUND_WORDS,
    VOC_PROMPT_NAMES,
    ClassVocabulary,
    coco_vocabulary,
    default_background_words,
    voc_vocabulary,
)


@dataclass(frozen=True)
class PseudoSettings:
    """How refined CAMs become pseudo masks (spec §1.5).

    Attributes:
        background_alpha: exponent of the background score `(1 - max cam)^alpha`.
        crf: run the dense CRF.
        crf_reference_image_quirk: feed the CRF the reference's mean-subtracted uint8 image.
        confidence_threshold: pixels whose confidence is below become `ignore_index`; None = keep all.
        ignore_index: label of ignored pixels.
        crf_params: dense CRF parameters.
    """

    background_alpha: float = 1.0
    crf: bool = True
    crf_reference_image_quirk: bool = True
    confidence_threshold: float | None = 0.95
    ignore_index: int = 255
    crf_params: CrfParams = CrfParams()
    jobs: int = 1

    def __post_init__(self) -> None:
        if self.background_alpha <= 0:
            raise ConfigError(f"pseudo.background_alpha must be > 0, got {self.background_alpha}")
        if self.confidence_threshold is not None and not 0.0 <= self.confidence_threshold <= 1.0:
            raise ConfigError(f"pseudo.confidence_threshold must be in [0, 1], got {self.confidence_threshold}")
        if not 0 <= self.ignore_index <= 255 or self.jobs < 1:
            raise ConfigError("pseudo.ignore_index must be in 0..255 and pseudo.jobs >= 1")


DATASET_KINDS = ("sample", "voc", "coco", "folder")
TAG_SOURCES = ("annotations", "ground_truth")


@dataclass(frozen=True)
class DataSettings:
    """Which dataset the pipeline labels. Paths are relative to the repository (or absolute).

    Attributes:
        kind: sample (materialised by `prepare`), voc, coco or folder.
        root: dataset root.
        split: split name (VOC `ImageSets/Segmentation/<split>.txt`).
        ground_truth_dir: folder of ground-truth PNGs under root (must exist when given);
            null = the kind's default: VOC `SegmentationClass` if present, COCO masks rasterised
            from the instances JSON, none for folders.
        instances_json, images_dir: COCO instances file and image folder under root.
        tags_file: folder datasets: CSV (`image,tags` with `;`) or JSON under root.
        tags_from: VOC tags from the `annotations` XML or from the `ground_truth` masks.
    """

    kind: str = "sample"
    root: str = "data/sample"
    split: str = "train"
    ground_truth_dir: str | None = None
    instances_json: str | None = None
    images_dir: str | None = None
    tags_file: str | None = None
    tags_from: str = "annotations"

    def __post_init__(self) -> None:
        if self.kind not in DATASET_KINDS:
            raise ConfigError(f"data.kind must be one of {DATASET_KINDS}, got {self.kind!r}")
        if self.tags_from not in TAG_SOURCES:
            raise ConfigError(f"data.tags_from must be one of {TAG_SOURCES}, got {self.tags_from!r}")
        if self.tags_from == "ground_truth" and self.kind not in ("sample", "voc"):
            raise ConfigError(f"data.tags_from: ground_truth is only available for VOC layouts, not kind {self.kind!r}")


@dataclass(frozen=True)
class PromptSettings:
    """Prompt sharpness scoring and template choice.

    Attributes:
        candidates: templates to score; empty = the CLIP ImageNet templates + the reference's.
        pin: template the CAM stage uses regardless of the ranking (the reference's by
            default); null = use the best-ranked (lowest sharpness) template.
        pooling: image feature for zero-shot scores, "cls" or "patch_mean".
        ddof: delta degrees of freedom of the variance in the sharpness.
        max_images: at most this many multi-label images are scored (sorted ids).
    """

    candidates: tuple[str, ...] = ()
    pin: str | None = "a clean origami {}."
    pooling: str = "cls"
    ddof: int = 1
    max_images: int = 500

    def __post_init__(self) -> None:
        if self.pooling not in ("cls", "patch_mean"):
            raise ConfigError(f"prompts.pooling must be cls or patch_mean, got {self.pooling!r}")
        if self.max_images < 1 or self.ddof < 0:
            raise ConfigError("prompts.max_images must be >= 1 and prompts.ddof >= 0")


@dataclass(frozen=True)
class StoreSettings:
    """HDF5 shard layout of the CAM and refined-map stores.

    Attributes:
        images_per_shard: images per shard file (by sorted id) when `shard_count` is None.
        shard_count: stable assignment instead: shard = hash(image id) % shard_count, so an
            added or removed image rewrites only its own shard (`wsss.io.shard_assignment`).
        compression: lossless codec of `wsss.io.codecs.CODECS`: zstd (default; shuffle +
            Zstandard, read with h5py + `import hdf5plugin`), blosc2-zstd, gzip, lzf or none.
        gradcam_dtype: Grad-CAM maps are kept in float32 by default: CAA's box mask thresholds
            `uint8(cam * 255)`, and float16 rounding moves box edges (refined maps then differ
            from the reference by up to ~0.17); they are tiny (K x h x w).
        attention_dtype: the attention affinity is the bulk of the store; float16 changes the
            refined maps by < 3e-4.
    """

    images_per_shard: int = 500
    shard_count: int | None = None
    compression: str = DEFAULT_CODEC
    gradcam_dtype: str = "float32"
    attention_dtype: str = "float16"

    def __post_init__(self) -> None:
        if self.shard_count is not None and (not isinstance(self.shard_count, int) or self.shard_count < 1):
            raise ConfigError(f"store.shard_count must be an integer >= 1 or null, got {self.shard_count!r}")
        if self.images_per_shard < 1 or self.compression not in CODECS:
            raise ConfigError(f"store.images_per_shard must be >= 1 and store.compression one of {CODECS}")
        if {self.gradcam_dtype, self.attention_dtype} - {"float16", "float32"}:
            raise ConfigError("store.gradcam_dtype and store.attention_dtype must be float16 or float32")


@dataclass(frozen=True)
class CoreConfig:
    """Everything the core needs: weights, device and precision, vocabulary, CAM and pseudo settings."""

    clip: ClipSource
    device: str
    precision: str
    vocabulary: ClassVocabulary
    cam: CamSettings
    caa: CaaSettings
    pseudo: PseudoSettings

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> CoreConfig:
        """Validate the `clip`, `classes`, `cam`, `caa` and `pseudo` sections of params."""
        clip = dict(_section(params, "clip"))
        device = _pop_typed(clip, "device", str, "clip", "cpu")
        precision = _pop_typed(clip, "precision", str, "clip", "fp32")
        if precision not in ("fp32", "fp16", "bf16"):
            raise ConfigError(f"clip.precision must be fp32, fp16 or bf16, got {precision!r}")
        if clip.get("checkpoint") is not None:
            clip["checkpoint"] = Path(_typed(clip["checkpoint"], str, "clip.checkpoint"))
        pseudo = dict(_section(params, "pseudo"))
        crf_params = _build(CrfParams, _section(pseudo, "crf_params", "pseudo."), "pseudo.crf_params")
        pseudo.pop("crf_params", None)
        cam = dict(_section(params, "cam"))
        _as_tuple(cam, "templates", str, "cam")
        return cls(
            clip=_build(ClipSource, clip, "clip"),
            device=device,
            precision=precision,
            vocabulary=vocabulary_from_mapping(_section(params, "classes")),
            cam=_build(CamSettings, cam, "cam"),
            caa=_build(CaaSettings, _section(params, "caa"), "caa"),
            pseudo=_build(PseudoSettings, {**pseudo, "crf_params": crf_params}, "pseudo"),
        )


def vocabulary_from_mapping(section: Mapping[str, Any]) -> ClassVocabulary:
    """`classes: {preset: voc|coco|sample}` or `{names: [...], synonyms: {...}, background: [...]}`,
    either with an optional `dataset_names: {name in the dataset files: class name}`.

    Without `background`, custom classes get the reference's background words minus those that
    are (or are a word of) a class name, synonym or dataset name; `background: []` means none.
    """
    _no_unknown(section, {"preset", "names", "synonyms", "background", "dataset_names"}, "classes.")
    dataset_names = _typed(section.get("dataset_names") or {}, dict, "classes.dataset_names")
    for alias, target in dataset_names.items():
        _typed(alias, str, "classes.dataset_names key")
        _typed(target, str, f"classes.dataset_names.{alias}")
    preset = section.get("preset")
    try:
        if preset is not None:
            if set(section) - {"preset", "dataset_names"}:
                raise ConfigError("classes.preset cannot be combined with names/synonyms/background")
            presets = {"voc": voc_vocabulary, "coco": coco_vocabulary, "sample": sample_vocabulary}
            if preset not in presets:
                raise ConfigError(f"classes.preset must be one of {sorted(presets)}, got {preset!r}")
            base = presets[preset]()
            return replace(base, dataset_names=tuple({**base.rename, **dataset_names}.items()))
        names = [_typed(n, str, "classes.names[]") for n in _typed(section.get("names", []), list, "classes.names")]
        synonyms = _typed(section.get("synonyms") or {}, dict, "classes.synonyms")
        if "background" in section:
            items = _typed(section["background"] or [], list, "classes.background")
            background = [_typed(w, str, "classes.background[]") for w in items]
        else:
            prompts = [synonyms.get(name, name) for name in names]
            background = list(default_background_words(names, prompts, dataset_names))
        return ClassVocabulary.build(names, synonyms, background, dataset_names)
    except ConfigError as error:
        message = str(error)
        raise ConfigError(message if message.startswith("classes") else f"classes: {message}") from None


def sample_vocabulary() -> ClassVocabulary:
    """The embedded sample's classes: VOC's 20 (reference wording) plus "cup" and "rocket"."""
    from wsss.datasets.sample import SAMPLE_CLASS_NAMES

    return ClassVocabulary.build(SAMPLE_CLASS_NAMES, VOC_PROMPT_NAMES, VOC_BACKGROUND_WORDS)


def _as_tuple(section: dict[str, Any], key: str, kind: type, prefix: str) -> None:
    """Replace a YAML list by a tuple of checked items, in place (null = empty)."""
    if key in section:
        items = _typed(section[key] or [], list, f"{prefix}.{key}")
        section[key] = tuple(_typed(item, kind, f"{prefix}.{key}[]") for item in items)


def _section(params: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = params.get(key) or {}
    return _typed(value, dict, f"{prefix}{key}")


def _typed(value: Any, kind: type, key: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def _pop_typed(section: dict[str, Any], key: str, kind: type, prefix: str, default: Any) -> Any:
    return _typed(section.pop(key, default), kind, f"{prefix}.{key}")


def _no_unknown(section: Mapping[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + k for k in unknown)}; known: {', '.join(sorted(known))}")


def _build(kind: type, values: Mapping[str, Any], prefix: str) -> Any:
    """Instantiate a dataclass from a mapping, naming unknown or mistyped keys."""
    declared = {f.name: f for f in fields(kind)}
    _no_unknown(values, set(declared), f"{prefix}.")
    checked = {}
    for key, value in values.items():
        default = getattr(kind(), key) if _has_defaults(kind) else None
        if value is not None and default is not None and not isinstance(default, (tuple, Path, CrfParams)):
            value = _typed(value, type(default), f"{prefix}.{key}")
        checked[key] = value
    try:
        return kind(**checked)
    except TypeError as error:
        raise ConfigError(f"{prefix}: {error}") from error


def _has_defaults(kind: type) -> bool:
    try:
        kind()
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class EvaluateSettings:
    """What the evaluate stage reports.

    Attributes:
        background_alphas: exponents tried for CAM mIoU (the reference reports the best of 1, 2).
        overlay_ids: images drawn as overlays; empty = the first `max_overlays` of the manifest.
        max_overlays: how many overlays when no ids are given.
    """

    background_alphas: tuple[float, ...] = (1.0, 2.0)
    overlay_ids: tuple[str, ...] = ()
    max_overlays: int = 6


@dataclass(frozen=True)
class TrainSettings:
    """DeepLabV2 training on the pseudo masks (MMSegmentation; see `wsss_mmseg`).

    Attributes:
        config: mmseg config file (the tiny CPU config for the sample; the full VOC recipe is
            `src/wsss_mmseg/configs/deeplabv2_r101_voc_pseudo.py`).
        max_iters, batch_size, crop_size, lr, seed: overrides of the config's values.
        init_checkpoint: local backbone weights (ImageNet/COCO init cannot be downloaded here).
        use_confidence: feed the confidence maps to the CGL loss (else only the 255-encoding).
        checkpoint_interval: iterations between checkpoints (the resume points).
        msc_training: deeplab-pytorch's multi-scale training (losses at scales 1, 0.75, 0.5
            and their max; `wsss_mmseg.segmentors.MultiScaleEncoderDecoder`).
        test_scales: scales fused (max) at evaluation, e.g. [1.0, 0.75, 0.5].
        test_crf: also score the model after dense CRF (deeplab-pytorch's test protocol, with
            the `pseudo.crf_params`).
        device: "cpu" or "cuda".
    """

    config: str = "src/wsss_mmseg/configs/deeplabv2_tiny_cpu.py"
    max_iters: int = 20
    batch_size: int = 2
    crop_size: int = 64
    lr: float = 0.01
    seed: int = 0
    init_checkpoint: str | None = None
    use_confidence: bool = True
    checkpoint_interval: int = 10
    msc_training: bool = False
    test_scales: tuple[float, ...] = (1.0,)
    test_crf: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        if min(self.max_iters, self.batch_size, self.crop_size, self.checkpoint_interval) < 1 or self.lr <= 0:
            raise ConfigError("train.max_iters, batch_size, crop_size, checkpoint_interval must be >= 1 and lr > 0")


def train_settings(params: Mapping[str, Any]) -> TrainSettings:
    """The `train` section."""
    section = dict(_section(params, "train"))
    _as_tuple(section, "test_scales", float, "train")
    return _build(TrainSettings, section, "train")


def evaluate_settings(params: Mapping[str, Any]) -> EvaluateSettings:
    """The `evaluate` section."""
    section = dict(_section(params, "evaluate"))
    _as_tuple(section, "background_alphas", float, "evaluate")
    _as_tuple(section, "overlay_ids", str, "evaluate")
    return _build(EvaluateSettings, section, "evaluate")


def data_settings(params: Mapping[str, Any]) -> DataSettings:
    """The `data` section."""
    return _build(DataSettings, _section(params, "data"), "data")


def prompt_settings(params: Mapping[str, Any]) -> PromptSettings:
    """The `prompts` section."""
    section = dict(_section(params, "prompts"))
    _as_tuple(section, "candidates", str, "prompts")
    return _build(PromptSettings, section, "prompts")


def store_settings(params: Mapping[str, Any]) -> StoreSettings:
    """The `store` section."""
    return _build(StoreSettings, _section(params, "store"), "store")


def learn_prompts_settings(params: Mapping[str, Any]) -> LearnPromptsSettings:
    """The optional `learn_prompts` section (SemPLeS background prompts; off when absent)."""
    return _build(LearnPromptsSettings, _section(params, "learn_prompts"), "learn_prompts")


def reliability_settings(params: Mapping[str, Any]) -> ReliabilitySettings:
    """The `reliability` section (defaults when absent)."""
    return _build(ReliabilitySettings, _section(params, "reliability"), "reliability")


PARAMS_SECTIONS = (
    "data", "clip", "classes", "prompts", "cam", "store", "caa", "pseudo", "train", "evaluate",
    "reliability", "learn_prompts", "runner", "relabel",
)


def validate_params(params: Mapping[str, Any]) -> None:
    """Check every section of params.yaml before any stage does work (unknown keys are named)."""
    _no_unknown(params, set(PARAMS_SECTIONS), "")
    CoreConfig.from_mapping(params)
    data_settings(params)
    prompt_settings(params)
    store_settings(params)
    train_settings(params)
    evaluate_settings(params)
    reliability_settings(params)
    learn_prompts_settings(params)
    from wsss.relabel.settings import relabel_settings
    from wsss.scaleout import runner_settings

    runner_settings(params)
    relabel_settings(params)
