"""Class names, their prompt wording (synonyms), dataset spellings and background words, as data.

The defaults are the CLIP-ES reference lists verbatim (docs/method.md, "Text"), quirks included: synonyms are
fused at sentence level by writing them into the one class string ("person with
clothes,people,human"), and the COCO list keeps the reference's typo "sknowboard" so that
reference-exact runs produce the same text embeddings.

`dataset_names` maps the label names a dataset file uses (COCO's official category names such as
"motorcycle") to class names ("motorbike"); loaders rename tags through it. Background words may
not equal a class name, a synonym or a dataset name of a class: CLIP would be asked to tell a
class from itself, and that class could never win the softmax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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

# COCO drops "keyboard" (a COCO class) and "sign" (clashes with stop sign); the same list as
# `default_background_words(COCO_CLASS_NAMES, ...)` gives (checked by a test).
COCO_BACKGROUND_WORDS: tuple[str, ...] = tuple(w for w in VOC_BACKGROUND_WORDS if w not in ("keyboard", "sign"))

# The official COCO 2014/2017 category names that the CLIP-ES list spells the VOC way.
COCO_DATASET_NAMES: Mapping[str, str] = {
    "airplane": "aeroplane",
    "motorcycle": "motorbike",
    "couch": "sofa",
    "potted plant": "pottedplant",
    "dining table": "diningtable",
    "tv": "tvmonitor",
}


# Background words of the reference list that name nearly the same thing (data). A class named like
# one word of a group meets the others as near-synonyms: they stay in the background list (only
# equal words are dropped), so CLIP weighs "lake" against the class "water". Logged and recorded,
# never dropped silently: whether "lake" should absorb water pixels is the user's call.
NEAR_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("water", "lake", "river", "sea", "ocean"),
    ("building", "house"),
    ("road", "street"),
    ("sky", "cloud"),
    ("railway", "railroad"),
    ("ground", "land"),
)


def _normal(text: str) -> str:
    """Case- and spacing-insensitive form used to compare words ("Potted  Plant" = "potted plant")."""
    return " ".join(text.split()).casefold()


def class_terms(name: str, prompt_name: str, dataset_names: Sequence[str] = ()) -> tuple[str, ...]:
    """The words that mean this class: its name, each comma-separated synonym of its prompt
    string and the dataset's names for it, normalised."""
    terms = [name, *prompt_name.split(","), *dataset_names]
    return tuple(dict.fromkeys(_normal(term) for term in terms if term.strip()))


def default_background_words(
    class_names: Sequence[str],
    prompt_names: Sequence[str] | None = None,
    dataset_names: Mapping[str, str] | None = None,
    reference: Sequence[str] = VOC_BACKGROUND_WORDS,
) -> tuple[str, ...]:
    """The reference's background words minus every word that is, or is a word of, a class term.

    Dropping words *within* multi-word terms too is what the reference did for COCO ("sign"
    for "stop sign"); applied to the COCO classes this rule gives exactly `COCO_BACKGROUND_WORDS`.
    """
    prompts = prompt_names if prompt_names is not None else class_names
    aliases = _aliases_by_class(dataset_names or {})
    taken: set[str] = set()
    for name, prompt in zip(class_names, prompts, strict=True):
        for term in class_terms(name, prompt, aliases.get(name, ())):
            taken.add(term)
            taken.update(term.split())
    return tuple(word for word in reference if _normal(word) not in taken)


def _aliases_by_class(dataset_names: Mapping[str, str]) -> dict[str, list[str]]:
    aliases: dict[str, list[str]] = {}
    for alias, name in dataset_names.items():
        aliases.setdefault(name, []).append(alias)
    return aliases


@dataclass(frozen=True)
class ClassVocabulary:
    """Foreground classes (0-based ids, label value = id + 1), prompt wording and background words.

    Attributes:
        class_names: dataset class names, index = class id (background excluded).
        prompt_names: the string put into the template for each class (synonyms fused).
        background_words: extra softmax rows that absorb background concepts.
        dataset_names: `(name in the dataset files, class name)` pairs; loaders rename tags
            through them (COCO's "motorcycle" -> "motorbike").
    """

    class_names: tuple[str, ...]
    prompt_names: tuple[str, ...]
    background_words: tuple[str, ...]
    dataset_names: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Frozen and hashable: the table is kept as sorted pairs whatever mapping was handed in.
        pairs = sorted(dict(self.dataset_names).items())
        object.__setattr__(self, "dataset_names", tuple((str(alias), str(name)) for alias, name in pairs))
        if len(self.class_names) != len(self.prompt_names):
            raise ConfigError(f"{len(self.class_names)} class names but {len(self.prompt_names)} prompt names")
        if len(set(self.class_names)) != len(self.class_names):
            raise ConfigError("class names must be unique")
        if not self.class_names:
            raise ConfigError("the vocabulary needs at least one class")
        if len(self.class_names) > 254:
            raise ConfigError("at most 254 classes fit uint8 masks with 0 = background and 255 = ignore")
        self._check_dataset_names()
        self._check_background_words()

    def _check_dataset_names(self) -> None:
        known = set(self.class_names)
        for alias, name in self.dataset_names:
            if name not in known:
                raise ConfigError(f"dataset name {alias!r} maps to {name!r}, which is not a class name")
            if alias in known and alias != name:
                raise ConfigError(f"dataset name {alias!r} is itself a class name but maps to {name!r}")

    def _check_background_words(self) -> None:
        """Refuse a background word that equals a class name, synonym or dataset name, or repeats."""
        aliases = _aliases_by_class(dict(self.dataset_names))
        owner: dict[str, str] = {}
        for name, prompt in zip(self.class_names, self.prompt_names, strict=True):
            for term in class_terms(name, prompt, aliases.get(name, ())):
                owner.setdefault(term, name)
        seen: set[str] = set()
        for word in self.background_words:
            if not isinstance(word, str) or not word.strip():
                raise ConfigError(f"background words must be non-empty strings, got {word!r}")
            key = _normal(word)
            if key in owner:
                raise ConfigError(
                    f"background word {word!r} is also class {owner[key]!r} (its name, a synonym or a dataset "
                    "name): CLIP could never label that class; remove the word from the background list"
                )
            if key in seen:
                raise ConfigError(f"background word {word!r} is listed twice")
            seen.add(key)

    @classmethod
    def build(
        cls,
        class_names: Sequence[str],
        synonyms: Mapping[str, str] | None = None,
        background_words: Sequence[str] = (),
        dataset_names: Mapping[str, str] | None = None,
    ) -> ClassVocabulary:
        """Vocabulary whose prompt name is `synonyms[name]` where given, else the name itself."""
        synonyms = dict(synonyms or {})
        unknown = sorted(set(synonyms) - set(class_names))
        if unknown:
            raise ConfigError(f"synonyms given for unknown classes: {unknown}")
        return cls(
            tuple(class_names), tuple(synonyms.get(name, name) for name in class_names), tuple(background_words), tuple((dataset_names or {}).items())
        )

    @property
    def rename(self) -> dict[str, str]:
        """Dataset label name -> class name (what loaders apply to tags)."""
        return dict(self.dataset_names)

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
    """MS COCO 2014 (80 classes, VOC-style spellings) with the reference's 23 background words;
    the official category names ("motorcycle", "tv", ...) map to them through `COCO_DATASET_NAMES`."""
    return ClassVocabulary.build(COCO_CLASS_NAMES, COCO_PROMPT_NAMES, COCO_BACKGROUND_WORDS, COCO_DATASET_NAMES)


def _class_terms_of(vocabulary: ClassVocabulary) -> list[tuple[str, str]]:
    """`(class name, term)` for every term of every class (name, synonyms, dataset names), normalised."""
    aliases = _aliases_by_class(dict(vocabulary.dataset_names))
    return [
        (name, term)
        for name, prompt in zip(vocabulary.class_names, vocabulary.prompt_names, strict=True)
        for term in class_terms(name, prompt, aliases.get(name, ()))
    ]


def background_word_notes(
    vocabulary: ClassVocabulary, derived: bool, reference: Sequence[str] = VOC_BACKGROUND_WORDS
) -> dict[str, list[dict[str, str]]]:
    """What the class list did to the background words: `dropped` (reference words removed because
    they are, or are a word of, a class term; only when the list was `derived` from the reference,
    i.e. a preset or `classes.background: null`) and `near_synonyms` (background words kept that
    share a `NEAR_SYNONYMS` group with a class term). Each entry: `word`, `class`, `reason`."""
    terms = _class_terms_of(vocabulary)
    kept = {_normal(word) for word in vocabulary.background_words}
    dropped: list[dict[str, str]] = []
    for word in reference if derived else ():
        key = _normal(word)
        owner = next(((name, term) for name, term in terms if key == term), None) or next(
            ((name, term) for name, term in terms if key in term.split()), None
        )
        if key not in kept and owner is not None:
            name, term = owner
            how = (
                f"is class {name!r}"
                if term == _normal(name) and key == term
                else (f"is {term!r}, a name of class {name!r}" if key == term else f"is a word of {term!r} (class {name!r})")
            )
            dropped.append({"word": word, "class": name, "reason": how})
    near: list[dict[str, str]] = []
    for word in vocabulary.background_words:
        key = _normal(word)
        group = next((set(g) for g in NEAR_SYNONYMS if key in g), set())
        for name, term in terms:
            match = next((part for part in (term, *term.split()) if part in group and part != key), None)
            if match is not None and not any(n["word"] == word and n["class"] == name for n in near):
                near.append(
                    {
                        "word": word,
                        "class": name,
                        "reason": (
                            f"kept, but a near-synonym of {match!r} (class {name!r}): CLIP may give that class's pixels to "
                            "background; list classes.background without it if it should not"
                        ),
                    }
                )
    return {"dropped": dropped, "near_synonyms": near}


def background_note_lines(notes: dict[str, list[dict[str, str]]]) -> list[str]:
    """One log line per dropped word and per near-synonym (what the prompts stage logs)."""
    return [
        f"classes: background word {n['word']!r} dropped: it {n['reason']} (as a background word it would keep CLIP from ever labelling that class)"
        for n in notes["dropped"]
    ] + [f"classes: background word {n['word']!r} {n['reason']}" for n in notes["near_synonyms"]]


def vocabulary_document(vocabulary: ClassVocabulary, template: str | None, notes: dict[str, list[dict[str, str]]] | None = None) -> dict[str, Any]:
    """What CLIP is asked, as JSON-ready data: label values, names, synonyms, background words and,
    when the template is known, the exact prompt strings (`template.format(prompt name)`); the
    reference's background words the classes dropped and the near-synonyms kept (`notes`, from
    `background_word_notes`; None: computed for a list derived from the reference's)."""
    aliases = _aliases_by_class(dict(vocabulary.dataset_names))

    def prompt(text: str) -> str | None:
        return None if template is None else template.format(text)

    classes = [
        {
            "label": index + 1,
            "name": name,
            "prompt_name": prompt_name,
            "synonyms": [part.strip() for part in prompt_name.split(",") if part.strip()],
            "dataset_names": sorted(aliases.get(name, [])),
            "prompt": prompt(prompt_name),
        }
        for index, (name, prompt_name) in enumerate(zip(vocabulary.class_names, vocabulary.prompt_names, strict=True))
    ]
    notes = notes if notes is not None else background_word_notes(vocabulary, derived=True)
    return {
        "template": template,
        "classes": classes,
        "background_label": 0,
        "ignore_label": 255,
        "background_words": [{"word": word, "prompt": prompt(word)} for word in vocabulary.background_words],
        "background_words_dropped": notes["dropped"],
        "background_near_synonyms": notes["near_synonyms"],
        "dataset_names": dict(vocabulary.dataset_names),
    }
