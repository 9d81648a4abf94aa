"""The pipeline's stages, in pipeline order: the one table of what each stage is.

Each `Stage` names the flow module DVC runs, its stage entry (`tasks/<stage>.py`), the core
modules that compute what it stores (their import closure is the code part of every reuse key
the stage makes: `wsss.stage_code`), the params it reads and the non-Python files its code
reads. Everything else is derived from this table or checked against it by a test:

* dvc.yaml: every stage's `cmd`, code `deps` (the import closure of its flow, `wsss.stage_code`)
  and `params` (tests/unit/test_stage_table.py); its artifact paths are the catalog's
  (`ArtifactLayout.dvc_stages`);
* the pipeline flow (`python -m flows.pipeline`) runs the flows in this order; relabel runs the
  stages upstream of `pseudo`, the SemPLeS second pass the stages it `runs`, both in this order;
* lineage lists stages in this order; `wsss lineage --diff` looks at the stages upstream of pseudo.

The core never imports the modules named here (they are in `tasks/` and `flows/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from wsss.catalog import ArtifactLayout


@dataclass(frozen=True)
class Stage:
    """One DVC stage (and Prefect flow) of the pipeline.

    Attributes:
        name: the stage name (dvc.yaml, catalog, flow-run tags).
        flow: the module `python -m <flow>` runs; a module serving several stages takes the name.
        entry: `module:function` of the stage entry, `run_<stage>(...) -> StageResult`.
        computes: core modules whose code decides the stored values; the digest of their import
            closure enters every reuse key of the stage (empty: the stage keeps no reuse keys).
        params: params sections (or dotted keys) the stage reads; DVC reruns it when they change.
        data: non-Python inputs of its code (static files, the mmseg config), as dvc.yaml names them.
        runs: other stages whose entries this one calls, in pipeline order (the second pass).
    """

    name: str
    flow: str
    entry: str
    computes: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()

    @property
    def entry_module(self) -> str:
        return self.entry.split(":")[0]

    @property
    def entry_function(self) -> str:
        return self.entry.split(":")[1]

    @property
    def flow_function(self) -> str:
        """The Prefect flow function of the stage in its flow module (`<stage>_flow`)."""
        return f"{self.name}_flow"


TRAIN_CONFIG = ("${train.config}", "src/wsss_mmseg/configs")  # the recipe file and the configs it may inherit from

STAGES: tuple[Stage, ...] = (
    Stage("sample", "flows.prepare", "tasks.prepare:run_sample"),
    # prepare's reuse keys: the label maps it rasterises from a COCO instances JSON
    Stage("prepare", "flows.prepare", "tasks.prepare:run_prepare", computes=("wsss.datasets.coco_masks",), params=("data", "classes", "reliability")),
    Stage("prompts", "flows.prompts", "tasks.prompts:run_prompts", computes=("wsss.cam.extractor",), params=("clip", "classes", "prompts", "cam")),
    Stage(
        "cams",
        "flows.cams",
        "tasks.cams:run_cams",
        computes=("wsss.cam.extractor", "wsss.cam.streaming", "wsss.cam.stored_output"),
        params=("clip", "classes", "cam", "store"),
    ),
    Stage("refine", "flows.refine", "tasks.refine:run_refine", computes=("wsss.cam.refine_stored",), params=("caa", "store")),
    Stage(
        "pseudo", "flows.pseudo", "tasks.pseudo:run_pseudo", computes=("wsss.pseudo.step", "wsss.io.pseudo_store", "wsss.imaging"), params=("pseudo",)
    ),
    Stage("review", "flows.review", "tasks.review:run_review", data=("src/wsss/review/static",)),
    Stage(
        "train",
        "flows.train",
        "tasks.train:run_train",
        computes=("wsss_mmseg.training", "wsss_mmseg.recipe", "wsss.review.training_labels"),
        params=("train",),
        data=TRAIN_CONFIG,
    ),
    Stage("learn_prompts", "flows.learn_prompts", "tasks.learn_prompts:run_learn_prompts", params=("clip", "classes", "learn_prompts")),
    Stage(
        "learned_cams",
        "flows.learned_cams",
        "tasks.learned_cams:run_learned_cams",
        params=("clip", "classes", "cam", "store", "caa", "pseudo", "learn_prompts"),
        runs=("cams", "refine", "pseudo"),
    ),
    Stage(
        "evaluate",
        "flows.evaluate",
        "tasks.evaluate:run_evaluate",
        params=("evaluate", "pseudo", "train.test_scales", "train.test_crf", "train.config", "train.device"),
        data=TRAIN_CONFIG,
    ),
)

STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)


def stage(name: str) -> Stage:
    """The table entry of a stage (KeyError naming the known ones)."""
    for entry in STAGES:
        if entry.name == name:
            return entry
    raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


def in_pipeline_order(names: set[str] | frozenset[str] | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Stage names sorted by their place in the table."""
    return tuple(name for name in STAGE_NAMES if name in set(names))


def flow_command(entry: Stage) -> str:
    """dvc.yaml's `cmd` of a stage: the stage name follows when its flow module serves several."""
    shared = sum(1 for other in STAGES if other.flow == entry.flow) > 1
    return f"python -m {entry.flow}{f' {entry.name}' if shared else ''}"


@cache
def upstream_of(name: str) -> tuple[str, ...]:
    """The stages whose outputs `name` reads, directly or not, in pipeline order (from the
    catalog's artifact paths: a stage reads another's output when a dep lies at or under it)."""
    paths = ArtifactLayout().dvc_stages()

    def reads(reader: str, writer: str) -> bool:
        return any(dep == out or out in dep.parents or dep in out.parents for dep in paths[reader]["deps"] for out in paths[writer]["outs"])

    found: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        for other in STAGE_NAMES:
            if other not in found and other != current and reads(current, other):
                found.add(other)
                todo.append(other)
    return in_pipeline_order(found)
