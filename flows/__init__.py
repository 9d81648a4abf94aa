"""Prefect flows: wiring of `tasks/` only, no algorithm code.

The versioned pipeline (prepare -> prompts -> cams -> refine -> pseudo -> train -> evaluate) is
built here by the pipeline issue; until then the core runs through `wsss demo`.
"""
