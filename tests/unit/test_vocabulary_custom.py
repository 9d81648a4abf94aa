"""Custom class lists: default background words, collisions refused, dataset-name tables, what CLIP is asked."""

from __future__ import annotations

import pytest

from benchmarks.common import MSRC_CLASSES
from wsss.errors import ConfigError
from wsss.settings import build_section
from wsss.text import vocabulary as vocab
from wsss.text.classes import ClassesSettings
from wsss.text.vocabulary import (
    COCO_BACKGROUND_WORDS,
    COCO_CLASS_NAMES,
    COCO_PROMPT_NAMES,
    REFERENCE_TEMPLATE,
    VOC_BACKGROUND_WORDS,
    ClassVocabulary,
    coco_vocabulary,
)


def vocabulary_from_mapping(section: dict) -> ClassVocabulary:
    """The vocabulary a params.yaml `classes` section builds (the params builder's road)."""
    return build_section(ClassesSettings, section, "classes").vocabulary()


# Looked up at use, so that each test (not the module import) shows what older code lacks.
COCO_DATASET_NAMES = getattr(vocab, "COCO_DATASET_NAMES", {})


def test_custom_classes_get_the_reference_background_minus_their_own_words() -> None:
    vocabulary = vocabulary_from_mapping({"names": ["grass", "cat", "stop sign"], "synonyms": {"cat": "cat,kitten"}})
    assert vocabulary.background_words == tuple(w for w in VOC_BACKGROUND_WORDS if w not in ("grass", "sign"))
    assert vocabulary_from_mapping({"names": ["cat"], "background": []}).background_words == ()


def test_the_default_rule_reproduces_the_reference_coco_list() -> None:
    """The reference dropped keyboard (a class) and sign (a word of "stop sign") from the VOC list."""
    prompts = [COCO_PROMPT_NAMES.get(name, name) for name in COCO_CLASS_NAMES]
    assert vocab.default_background_words(COCO_CLASS_NAMES, prompts, COCO_DATASET_NAMES) == COCO_BACKGROUND_WORDS


@pytest.mark.parametrize(
    ("classes", "word", "owner"),
    [
        ({"names": ["grass", "cat"], "background": ["sky", "grass"]}, "grass", "grass"),
        ({"names": ["cat", "person"], "synonyms": {"person": "person,people"}, "background": ["People"]}, "People", "person"),
        ({"names": ["tvmonitor"], "dataset_names": {"tv": "tvmonitor"}, "background": ["tv"]}, "tv", "tvmonitor"),
    ],
)
def test_a_background_word_that_is_a_class_is_refused_naming_it(classes: dict, word: str, owner: str) -> None:
    with pytest.raises(ConfigError, match=rf"classes: background word '{word}' is also class '{owner}'"):
        vocabulary_from_mapping(classes)


def test_repeated_background_word_is_refused() -> None:
    with pytest.raises(ConfigError, match="background word 'Sky' is listed twice"):
        ClassVocabulary.build(["cat"], None, ["sky", "Sky"])


def test_coco_preset_maps_official_names_and_params_can_extend_the_table() -> None:
    assert COCO_DATASET_NAMES and coco_vocabulary().rename == dict(COCO_DATASET_NAMES)
    vocabulary = vocabulary_from_mapping({"preset": "coco", "dataset_names": {"television": "tvmonitor"}})
    assert vocabulary.rename == {**COCO_DATASET_NAMES, "television": "tvmonitor"}
    assert vocabulary.class_names == COCO_CLASS_NAMES and vocabulary.background_words == COCO_BACKGROUND_WORDS
    with pytest.raises(ConfigError, match=r"classes: dataset name 'telly' maps to 'tv set', which is not a class name"):
        vocabulary_from_mapping({"preset": "coco", "dataset_names": {"telly": "tv set"}})
    with pytest.raises(ConfigError, match=r"classes\.preset cannot be combined"):
        vocabulary_from_mapping({"preset": "coco", "background": ["sky"]})


def test_the_resolved_vocabulary_shows_every_prompt() -> None:
    document = vocab.vocabulary_document(coco_vocabulary(), REFERENCE_TEMPLATE)
    person = document["classes"][0]
    assert person == {"label": 1, "name": "person", "prompt_name": "person with clothes,people,human",
                      "synonyms": ["person with clothes", "people", "human"], "dataset_names": [],
                      "prompt": "a clean origami person with clothes,people,human."}  # fmt: skip
    tv = next(entry for entry in document["classes"] if entry["name"] == "tvmonitor")
    assert tv["dataset_names"] == ["tv"] and tv["prompt"] == "a clean origami tvmonitor screen."
    assert len(document["classes"]) == 80 and document["ignore_label"] == 255 and document["background_label"] == 0
    assert [b["prompt"] for b in document["background_words"]][:2] == ["a clean origami ground.", "a clean origami land."]
    assert [(entry["word"], entry["class"]) for entry in document["background_words_dropped"]] == [("keyboard", "keyboard"), ("sign", "stop sign")]
    assert vocab.vocabulary_document(coco_vocabulary(), None)["classes"][0]["prompt"] is None


MSRC = list(MSRC_CLASSES)


def test_stuff_classes_say_which_background_words_they_drop_and_which_near_synonyms_stay() -> None:
    """7 reference words equal MSRC classes and were dropped without a word; lake/river/sea/ocean,
    house, street and cloud stayed next to water, building, road and sky, unmentioned."""
    settings = build_section(ClassesSettings, {"names": MSRC}, "classes")
    notes = vocab.background_word_notes(settings.vocabulary(), settings.background_derived)
    assert {(n["word"], n["class"]) for n in notes["dropped"]} == {(w, w) for w in ("building", "grass", "road", "sign", "sky", "tree", "water")}
    assert {(n["word"], n["class"]) for n in notes["near_synonyms"]} == {
        ("lake", "water"),
        ("river", "water"),
        ("sea", "water"),
        ("ocean", "water"),
        ("house", "building"),
        ("street", "road"),
        ("cloud", "sky"),
    }
    lines = vocab.background_note_lines(notes)
    assert any(line.startswith("classes: background word 'water' dropped: it is class 'water'") for line in lines)
    assert (
        any(line.startswith("classes: background word 'lake' kept, but a near-synonym of 'water' (class 'water')") for line in lines)
        and len(lines) == 14
    )
    document = vocab.vocabulary_document(settings.vocabulary(), REFERENCE_TEMPLATE, notes)
    assert document["background_words_dropped"] == notes["dropped"]
    assert document["background_near_synonyms"] == notes["near_synonyms"]

    # A list the user wrote drops nothing of theirs; its near-synonyms are still named.
    written = build_section(ClassesSettings, {"names": MSRC, "background": ["lake", "wall"]}, "classes")
    notes = vocab.background_word_notes(written.vocabulary(), written.background_derived)
    assert notes["dropped"] == [] and [(n["word"], n["class"]) for n in notes["near_synonyms"]] == [("lake", "water")]
    # The reference presets meet none of it (their runs stay as they were).
    for preset in ("voc", "sample"):
        settings = build_section(ClassesSettings, {"preset": preset}, "classes")
        assert vocab.background_word_notes(settings.vocabulary(), True) == {"dropped": [], "near_synonyms": []}
