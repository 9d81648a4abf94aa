"""The runs of a served deployment carry our name (`relabel | <dataset> | <params hash>`) from the
moment they are scheduled.

Prefect's scheduler (and `prefect deployment run`) creates each run of a deployment under a
random name ("adorable-hippo"); the flow's `flow_run_name` renames it only when it starts, so the
UI's upcoming runs, and every run that never started, read as random names. While the deployment
is served, a thread of the serving process gives every run of it that is still scheduled the
name it will run under.
"""

from __future__ import annotations

import logging
import threading

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound

log = logging.getLogger("wsss")


def name_scheduled_runs(deployment: str, name: str) -> int:
    """Rename the scheduled runs of deployment `<flow>/<name>` that do not carry `name`; how many."""
    with get_client(sync_client=True) as client:
        try:
            deployment_id = client.read_deployment_by_name(deployment).id
        except ObjectNotFound:  # not registered yet
            return 0
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
        )
        renamed = [run for run in runs if run.name != name]
        for run in renamed:
            client.set_flow_run_name(run.id, name)
    return len(renamed)


def keep_scheduled_runs_named(deployment: str, name: str, every_s: float = 5.0) -> threading.Event:
    """Start a daemon thread renaming the deployment's scheduled runs every `every_s` seconds;
    setting the returned event stops it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                name_scheduled_runs(deployment, name)
            except Exception as error:  # noqa: BLE001 (a server hiccup must not end the serving process; the next pass retries)
                log.debug("naming the scheduled runs of %s: %s", deployment, error)

    threading.Thread(target=loop, name="wsss-run-names", daemon=True).start()
    return stop
