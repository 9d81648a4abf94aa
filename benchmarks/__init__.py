"""Benchmarks: scripts that print the project's speed, memory and size figures and write them as JSON.

Run each from the repository root as `python -m benchmarks.<name> [--json PATH]` (the GPU check:
`bash benchmarks/device_check.sh`). What they share lives in `benchmarks.common`; the measured
figures are collected in benchmarks/RESULTS.md. Tests may import the builders here
(`benchmarks.review_tree`, `benchmarks.browser`); nothing here imports from tests/.
"""
