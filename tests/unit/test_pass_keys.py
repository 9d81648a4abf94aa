"""The SemPLeS second pass derives its content keys exactly as the main pass does.

Before, the learned pass was a hand copy of cams/refine whose attributes lacked the
`core_code_sha256` that the main pass puts into every key: after a core change, a rerun outside
DVC reused stale learned CAMs. Both passes now go through the same attribute and key code.
"""

from __future__ import annotations

import pytest

from tasks import cams, refine
from tests.params_edit import read_params, with_values
from wsss.catalog import ArtifactLayout
from wsss.datasets import ImageRecord, Manifest
from wsss.incremental import content_key, key_identity, record_keys
from wsss.params import Params

CLIP = {"model_name": "ViT-B-16", "weights": "random-init(seed=0)", "checkpoint_sha256": None}


@pytest.fixture
def params() -> Params:
    return Params.from_mapping(with_values(read_params(), {"learn_prompts.enabled": True}))


def manifest(params: Params) -> Manifest:
    records = (ImageRecord("a", "images/a.jpg", ("cat",), None, "1" * 64, 8, 8), ImageRecord("b", "images/b.jpg", ("person",), None, "2" * 64, 8, 8))
    return Manifest("m", records, tuple(params.vocabulary.class_names))


def keys_of_both_passes(params: Params) -> dict[str, dict[str, str]]:
    """CAM keys, then refine keys on top of them, for the main and the learned pass."""
    layout, found = ArtifactLayout(), {}
    for name, pass_layout in (("main", layout), ("learned", layout.learned())):
        cam_attrs = cams.cam_attributes(params, pass_layout, manifest(params), CLIP, "a clean origami {}.", "f" * 64)
        cam_keys = record_keys(manifest(params).records, key_identity(cam_attrs))
        refine_attrs = refine.refine_attributes(params, pass_layout, cam_attrs)
        identity = {k: v for k, v in key_identity(refine_attrs).items() if k != "upstream_cams"}
        found[name] = {
            **{f"cams/{i}": k for i, k in cam_keys.items()},
            **{f"refine/{i}": content_key(identity, cams_key=k) for i, k in cam_keys.items()},
        }
    return found


def test_a_core_code_change_invalidates_both_passes(params: Params, monkeypatch: pytest.MonkeyPatch) -> None:
    before = keys_of_both_passes(params)
    for module in (cams, refine):
        monkeypatch.setattr(module, "code_digest", lambda stage: "changed core code")
    after = keys_of_both_passes(params)
    for name in ("main", "learned"):
        assert set(before[name]) == set(after[name]) and len(before[name]) == 4
        assert all(before[name][k] != after[name][k] for k in before[name]), name


def test_both_passes_record_the_same_identity_fields(params: Params) -> None:
    main = cams.cam_attributes(params, ArtifactLayout(), manifest(params), CLIP, "t {}.")
    learned = cams.cam_attributes(params, ArtifactLayout().learned(), manifest(params), CLIP, "t {}.", "f" * 64)
    assert set(main) <= set(learned) and main["core_code_sha256"] == learned["core_code_sha256"]
    assert set(learned) - set(main) == {"learned_prompts_sha256", "background_mode", "rescore_weight"}
    assert (main["stage"], learned["stage"]) == ("cams", "learned_cams")
    assert learned["params"] == {**main["params"], "learn_prompts": params.section_dict("learn_prompts")}
    refine_main = refine.refine_attributes(params, ArtifactLayout(), main)
    refine_learned = refine.refine_attributes(params, ArtifactLayout().learned(), learned)
    assert set(refine_main) == set(refine_learned) and refine_main["core_code_sha256"] == refine_learned["core_code_sha256"]


def test_how_a_run_goes_is_not_part_of_any_key_and_what_it_computes_is(params: Params) -> None:
    """One rule (`identity=False` on the typed settings) decides what enters a reuse key: worker
    counts, the runner, the codec and the shard layout do not; a storage dtype or a CAA value does."""
    from tasks.pseudo import pseudo_identity
    from wsss.settings import build_section

    def keys(changed: dict) -> tuple:
        edited = params.replace(
            **{name: build_section(type(getattr(params, name)), {**params.section_dict(name), **values}, name) for name, values in changed.items()}
        )
        return keys_of_both_passes(edited)["main"], pseudo_identity(edited)

    base = keys({})
    for how in (
        {"store": {"compression": "lzf", "images_per_shard": 7, "shard_count": 3}},
        {"pseudo": {"jobs": 9}},
        {"runner": {"kind": "dask", "workers": 5, "overlap_io": False, "decode_workers": 7}},
    ):
        assert keys(how) == base, how
    assert keys({"store": {"attention_dtype": "float32"}})[0] != base[0]
    changed_caa = keys({"caa": {"sinkhorn_rounds": 4}})[0]
    assert all(changed_caa[k] != base[0][k] for k in base[0] if k.startswith("refine/"))
    assert keys({"pseudo": {"confidence_threshold": 0.9}})[1] != base[1]
