"""The one typed view of params.yaml: `Params`, built once per run, before any work.

Config flows one way: params.yaml (+ the untracked `params.local.yaml` merged over it) -> `load_params` -> `Params` (frozen; one field per section,
each section class next to the step it configures) -> plain arguments into core functions. The
keys the class preset fixes (`wsss.presets`: COCO's box threshold, ...) take the preset's value
unless the user set them. The builder (`wsss.settings`) checks every key against the section
annotations and declared ranges and names the dotted key and the file in every error. What artifacts record as "the params that
made me" (`section_dict`) is derived from the same object, never from the raw YAML.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from wsss.cam.settings import CaaSettings, CamSettings
from wsss.clip.settings import ClipSettings
from wsss.datasets.settings import DataSettings
from wsss.errors import ConfigError
from wsss.evaluation.settings import EvaluateSettings
from wsss.failures import ReliabilitySettings
from wsss.io.settings import StoreSettings
from wsss.local_params import local_params_path, read_params_file, with_local_params
from wsss.presets import preset_keys, protocol_lines, with_preset_values
from wsss.prompts.settings import LearnPromptsSettings, PromptSettings
from wsss.pseudo.settings import PseudoSettings
from wsss.relabel.settings import RelabelSettings
from wsss.scaleout import RunnerSettings
from wsss.settings import build_section, no_unknown_keys, plain
from wsss.text.classes import ClassesSettings
from wsss.text.vocabulary import ClassVocabulary
from wsss.training import TrainSettings


@dataclass(frozen=True)
class Params:
    """Every params.yaml section, typed and validated (absent sections take their defaults)."""

    data: DataSettings = field(default_factory=DataSettings)
    clip: ClipSettings = field(default_factory=ClipSettings)
    classes: ClassesSettings = field(default_factory=lambda: ClassesSettings(preset="sample"))
    prompts: PromptSettings = field(default_factory=PromptSettings)
    cam: CamSettings = field(default_factory=CamSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    caa: CaaSettings = field(default_factory=CaaSettings)
    pseudo: PseudoSettings = field(default_factory=PseudoSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)
    reliability: ReliabilitySettings = field(default_factory=ReliabilitySettings)
    learn_prompts: LearnPromptsSettings = field(default_factory=LearnPromptsSettings)
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    relabel: RelabelSettings = field(default_factory=RelabelSettings)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Params:
        """Check and build every section of a parsed params file.

        Raises:
            ConfigError: naming the dotted key (unknown sections and keys, types, ranges).
        """
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"expected a mapping at the top level, got {type(mapping).__name__}")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        no_unknown_keys(mapping, sections, "")
        classes = mapping.get("classes")
        factory = sections["classes"].default_factory
        assert callable(factory)  # setting() gives every section default a factory
        default_preset = factory().preset  # no `classes`: the sample's
        mapping = with_preset_values(mapping, default_preset if classes is None else _preset_of(classes))
        hints = typing.get_type_hints(cls)
        built = {name: build_section(hints[name], value, name) for name, value in mapping.items() if not (name == "classes" and value is None)}
        return cls(**built)

    def section_dict(self, name: str) -> dict[str, Any]:
        """One section as plain data: what artifacts record and hash (equal to the YAML as written
        when every key is given)."""
        section = getattr(self, name)
        return section.as_params() if isinstance(section, ClassesSettings) else plain(section)

    def sections(self, *names: str) -> dict[str, dict[str, Any]]:
        """Several sections by name, e.g. `sections("caa", "store")` for the refine attributes."""
        return {name: self.section_dict(name) for name in names}

    def protocol_lines(self, *sections: str) -> list[str]:
        """The keys the class preset fixes (of `sections`, default all), their effective values
        and where they come from: what the `prompts` and `refine` stages log."""
        effective = {key: self.section_dict(key.split(".")[0])[key.split(".", 1)[1]] for key in preset_keys()}
        return protocol_lines(self.classes.preset, effective, sections or None)

    def replace(self, **sections: Any) -> Params:
        return dataclasses.replace(self, **sections)

    @cached_property
    def vocabulary(self) -> ClassVocabulary:
        return self.classes.vocabulary()

    @property
    def dataset_root(self) -> Path:
        return Path(self.data.root)


def _preset_of(classes: Any) -> str | None:
    """The preset a raw `classes` section names (None when it names none or is malformed: the
    typed builder reports that)."""
    preset = classes.get("preset") if isinstance(classes, Mapping) else None
    return preset if isinstance(preset, str) else None


def read_params_mapping(path: Path | str) -> dict[str, Any]:
    """params.yaml as parsed, with the untracked `params.local.yaml` beside it merged over it (both
    read by `wsss.local_params.read_params_file`): the values every stage and lineage use.

    Raises:
        ConfigError: naming the file (size, encoding, syntax with its line, `!!python` tags, nesting,
            repeated keys, not a mapping, a null section).
    """
    path = Path(path)
    return with_local_params(read_params_file(path), path)


def load_params(path: Path | str, runner: Mapping[str, Any] | None = None) -> Params:
    """Parse (YAML safe loader, `params.local.yaml` merged over it) and check a params file; every
    error names the file (and the override file when there is one) and the key.

    `runner`: command-line overrides of the `runner` section (None values keep the file's).
    Every `auto` is resolved for this machine (`wsss.machine_layout.resolve_auto`), so what a stage
    records is what it ran with.
    """
    from wsss.machine_layout import resolve_auto  # it reads Params: imported when params are loaded

    path = Path(path)
    mapping = read_params_mapping(path)
    local = local_params_path(path)
    source = f"{path} (+ {local.name})" if local.is_file() else str(path)
    try:
        params = Params.from_mapping(mapping)
        return resolve_auto(params.replace(runner=params.runner.with_overrides(runner)) if runner else params)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from error
