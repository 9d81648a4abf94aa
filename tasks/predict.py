"""predict: the trained segmenter on a batch of new images, as a Prefect flow run (`flows/predict.py`).

The same request `wsss predict` runs (`wsss.inference.predict_request`): the flow's parameters are
checked as the command's options are, before anything is loaded; per-image failures go to the
output's `failures.json`. Not a DVC stage: new images arrive outside the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wsss.inference.predict_request import PredictRequest, predict_images
from wsss.params import Params


def run_predict_images(params: Params, **request: Any) -> dict[str, Any]:
    """Predict the images of a `PredictRequest` given as keywords; the summary plus the label files
    written (for the flow's artifact)."""
    summary = predict_images(PredictRequest(**request), params)
    labels = sorted((Path(summary["out"]) / "labels").glob("*.png"))
    return {**summary, "written_files": [str(path) for path in labels]}
