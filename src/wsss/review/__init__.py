"""Human review of pseudo masks: triage score, static HTML report, exports, human corrections.

No prefect, dvc or mmseg imports: the `review` stage (tasks/review.py, flows/review.py) and the
`wsss review|export|import-corrections` commands (`wsss.review.cli`) are thin callers.
"""
