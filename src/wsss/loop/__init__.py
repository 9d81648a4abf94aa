"""The daily loop's commands: `wsss run|relabel|serve|status|metrics` (core: no Prefect or DVC
import; they start `dvc`, `prefect server` and the flows as processes)."""
