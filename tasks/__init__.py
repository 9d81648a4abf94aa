"""Prefect task nodes: load typed config (`wsss.config`), call the core, write artifacts, report.

Thin by design (Kedro-style nodes); filled in by the pipeline issue.
"""
