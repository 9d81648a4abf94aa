"""The `classes` params section: a preset class list, or names + synonyms + background words, either
with an optional `dataset_names` table (name in the dataset files -> class name)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from wsss.errors import ConfigError
from wsss.settings import check_fields, setting
from wsss.text.vocabulary import VOC_BACKGROUND_WORDS, VOC_PROMPT_NAMES, ClassVocabulary, coco_vocabulary, default_background_words, voc_vocabulary


def sample_vocabulary() -> ClassVocabulary:
    """The embedded sample's classes: VOC's 20 (reference wording) plus "cup" and "rocket"."""
    from wsss.datasets.sample import SAMPLE_CLASS_NAMES

    return ClassVocabulary.build(SAMPLE_CLASS_NAMES, VOC_PROMPT_NAMES, VOC_BACKGROUND_WORDS)


PRESETS: Mapping[str, Callable[[], ClassVocabulary]] = {"voc": voc_vocabulary, "coco": coco_vocabulary, "sample": sample_vocabulary}


@dataclass(frozen=True)
class ClassesSettings:
    """Either `preset`, or explicit `names` (with optional `synonyms` and `background` words); both
    take an optional `dataset_names` table.

    Without `background`, custom classes get the reference's background words minus those that are
    (or are a word of) a class name, synonym or dataset name; `background: []` means none. A
    background word equal to a class name, synonym or dataset name is refused. A params file
    without a `classes` section gets the sample's preset (`Params`)."""

    SECTION: ClassVar[str] = "classes"

    preset: Literal["sample", "voc", "coco"] | None = setting(None, "a built-in class list (reference wording)")
    names: tuple[str, ...] = setting((), "class names, index = class id (without preset)")
    synonyms: Mapping[str, str] = setting({}, "class name -> the words put into the prompt (synonyms fused)")
    background: tuple[str, ...] | None = setting(
        None, "background words: extra softmax rows that absorb background concepts; null = the reference's minus class words"
    )
    dataset_names: Mapping[str, str] = setting(
        {}, "name in the dataset files -> class name (e.g. COCO's motorcycle -> motorbike); extends a preset's table"
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.preset is not None and (self.names or self.synonyms or self.background is not None):
            raise ConfigError("classes.preset cannot be combined with names/synonyms/background")
        try:
            self.vocabulary()
        except ConfigError as error:
            message = str(error)
            raise ConfigError(message if message.startswith("classes") else f"classes: {message}") from None

    def vocabulary(self) -> ClassVocabulary:
        if self.preset is not None:
            base = PRESETS[self.preset]()
            if not self.dataset_names:
                return base
            return replace(base, dataset_names=tuple({**base.rename, **self.dataset_names}.items()))
        background = self.background
        if background is None:
            prompts = [self.synonyms.get(name, name) for name in self.names]
            background = default_background_words(self.names, prompts, self.dataset_names)
        return ClassVocabulary.build(self.names, self.synonyms, background, self.dataset_names)

    @property
    def background_derived(self) -> bool:
        """The background words are the reference's minus class words (a preset or `background: null`),
        not a list the user wrote: then the dropped words are worth a word (`background_word_notes`)."""
        return self.preset is not None or self.background is None

    def as_params(self) -> dict[str, Any]:
        """The section as written: `{preset: ...}`, or the explicit keys that are set."""
        if self.preset is not None:
            return {"preset": self.preset, **({"dataset_names": dict(self.dataset_names)} if self.dataset_names else {})}
        explicit = {"names": list(self.names), "synonyms": dict(self.synonyms),
                    "background": None if self.background is None else list(self.background),
                    "dataset_names": dict(self.dataset_names)}  # fmt: skip
        return {key: value for key, value in explicit.items() if value or key == "names" or (key == "background" and value == [])}
