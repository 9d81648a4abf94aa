"""Prefect flows, one per stage: wiring only (load params, call the stage entry in `tasks/`, publish artifacts)."""
