"""Prefect flows, one per stage: wiring only (load params, call the stage entry in `tasks/`, publish artifacts)."""

from tasks.prefect_home import use_private_prefect_home

use_private_prefect_home()  # before any flow module imports Prefect, which reads its settings once
