"""Class names, their prompt wording (synonyms) and background words, as data.

The defaults are the CLIP-ES reference lists verbatim (spec §1.2), quirks included: synonyms are
fused at sentence level by writing them into the one class string ("person with
clothes,people,human"), and the COCO list keeps the reference's typo "sknowboard" so that
reference-exact runs produce the same text embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wsss.errors import ConfigError

REFERENCE_TEMPLATE = "a clean origami {}."

VOC_CLASS_NAMES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip

VOC_PROMPT_NAMES: Mapping[str, str] = {
    "bird": "bird avian",
    "chair": "chair seat",
    "person": "person with clothes,people,human",
    "tvmonitor": "tvmonitor screen",
}

VOC_BACKGROUND_WORDS: tuple[str, ...] = (
    "ground", "land", "grass", "tree", "building", "wall", "sky", "lake", "water", "river", "sea",
    "railway", "railroad", "keyboard", "helmet", "cloud", "house", "mountain", "ocean", "road",
    "rock", "street", "valley", "bridge", "sign",
)  # fmt: skip

COCO_CLASS_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "sofa", "pottedplant",
    "bed", "diningtable", "toilet", "tvmonitor", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

COCO_PROMPT_NAMES: Mapping[str, str] = {
    "person": "person with clothes,people,human",
    "bird": "bird avian",
    "backpack": "backpack,bag",
    "umbrella": "umbrella,parasol",
    "handbag": "handbag,purse",
    "tie": "necktie",
    "snowboard": "sknowboard",
    "baseball glove": "glove",
    "spoon": "dessertspoon",
    "chair": "chair seat",
    "tvmonitor": "tvmonitor screen",
    "remote": "remote control",
    "hair drier": "hairdrier,blowdrier",
}

# COCO drops "keyboard" (a COCO class) and "sign" (clashes with stop sign).
COCO_BACKGROUND_WORDS: tuple[str, ...] = tuple(w for w in VOC_BACKGROUND_WORDS if w not in ("keyboard", "sign"))


@dataclass(frozen=True)
class ClassVocabulary:
    """Foreground classes (0-based ids, label value = id + 1), prompt wording and background words.

    Attributes:
        class_names: dataset class names, index = class id (background excluded).
        prompt_names: the string put into the template for each class (synonyms fused).
        background_words: extra softmax rows that absorb background concepts.
    """

    class_names: tuple[str, ...]
    prompt_names: tuple[str, ...]
    background_words: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.prompt_names):
            raise ConfigError(
                f"{len(self.class_names)} class names but {len(self.prompt_names)} prompt names"
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise ConfigError("class names must be unique")
        if not self.class_names:
            raise ConfigError("the vocabulary needs at least one class")
        if len(self.class_names) > 254:
            raise ConfigError("at most 254 classes fit uint8 masks with 0 = background and 255 = ignore")

    @classmethod
    def build(
        cls,
        class_names: Sequence[str],
        synonyms: Mapping[str, str] | None = None,
        background_words: Sequence[str] = (),
    ) -> ClassVocabulary:
        """Vocabulary whose prompt name is `synonyms[name]` where given, else the name itself."""
        synonyms = dict(synonyms or {})
        unknown = sorted(set(synonyms) - set(class_names))
        if unknown:
            raise ConfigError(f"synonyms given for unknown classes: {unknown}")
        return cls(
            tuple(class_names),
            tuple(synonyms.get(name, name) for name in class_names),
            tuple(background_words),
        )

    @property
    def num_classes(self) -> int:
        """Foreground classes; masks hold `num_classes + 1` labels with background."""
        return len(self.class_names)

    def class_id(self, name: str) -> int:
        """0-based id of a class name; ConfigError naming the unknown tag otherwise."""
        try:
            return self.class_names.index(name)
        except ValueError:
            raise ConfigError(f"unknown class name {name!r}; known: {', '.join(self.class_names)}") from None


def voc_vocabulary() -> ClassVocabulary:
    """PASCAL VOC 2012 with the reference's synonyms and 25 background words."""
    return ClassVocabulary.build(VOC_CLASS_NAMES, VOC_PROMPT_NAMES, VOC_BACKGROUND_WORDS)


def coco_vocabulary() -> ClassVocabulary:
    """MS COCO 2014 (80 classes, VOC-style spellings) with the reference's 23 background words."""
    return ClassVocabulary.build(COCO_CLASS_NAMES, COCO_PROMPT_NAMES, COCO_BACKGROUND_WORDS)
