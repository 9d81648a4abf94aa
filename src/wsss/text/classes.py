"""The `classes` params section: a preset class list, or names + synonyms + background words."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from wsss.errors import ConfigError
from wsss.settings import check_fields, setting
from wsss.text.vocabulary import (
    VOC_BACKGROUND_WORDS,
    VOC_PROMPT_NAMES,
    ClassVocabulary,
    coco_vocabulary,
    voc_vocabulary,
)


def sample_vocabulary() -> ClassVocabulary:
    """The embedded sample's classes: VOC's 20 (reference wording) plus "cup" and "rocket"."""
    from wsss.datasets.sample import SAMPLE_CLASS_NAMES

    return ClassVocabulary.build(SAMPLE_CLASS_NAMES, VOC_PROMPT_NAMES, VOC_BACKGROUND_WORDS)


PRESETS: Mapping[str, Callable[[], ClassVocabulary]] = {"voc": voc_vocabulary, "coco": coco_vocabulary, "sample": sample_vocabulary}


@dataclass(frozen=True)
class ClassesSettings:
    """Either `preset` alone, or explicit `names` (with optional `synonyms` and `background` words).

    A params file without a `classes` section gets the sample's preset (`Params`)."""

    SECTION: ClassVar[str] = "classes"

    preset: Literal["sample", "voc", "coco"] | None = setting(None, "a built-in class list (reference wording)")
    names: tuple[str, ...] = setting((), "class names, index = class id (without preset)")
    synonyms: Mapping[str, str] = setting({}, "class name -> the words put into the prompt (synonyms fused)")
    background: tuple[str, ...] = setting((), "background words: extra softmax rows that absorb background concepts")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.preset is not None and (self.names or self.synonyms or self.background):
            raise ConfigError("classes.preset cannot be combined with names/synonyms/background")
        try:
            self.vocabulary()
        except ConfigError as error:
            raise ConfigError(f"classes: {error}") from None

    def vocabulary(self) -> ClassVocabulary:
        if self.preset is not None:
            return PRESETS[self.preset]()
        return ClassVocabulary.build(self.names, self.synonyms, self.background)

    def as_params(self) -> dict[str, Any]:
        """The section as written: `{preset: ...}`, or the explicit keys that are set."""
        if self.preset is not None:
            return {"preset": self.preset}
        explicit = {"names": list(self.names), "synonyms": dict(self.synonyms), "background": list(self.background)}
        return {key: value for key, value in explicit.items() if value or key == "names"}
