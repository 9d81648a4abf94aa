"""The Prefect set-up every loop command owns: a private Prefect home in the repository and one
local API server for all the processes of a run.

Without it each stage process DVC starts runs Prefect's temporary server (10-20 s each) on the
user's default database (`~/.prefect`), which another run or server may hold: `sqlite3
OperationalError: database is locked`. The command starts one `prefect server start` on a free
port with the home `<repo>/.prefect` (git-ignored), points every child at it (`PREFECT_API_URL`,
and `PREFECT_UI_API_URL`, without which the UI on any port but 4200 says "Can't connect to
Server API"), and stops it at the end. A server the user runs (`PREFECT_API_URL` set) is used
instead, once it answers.

No Prefect import: the server is a process, its health an HTTP request.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from wsss.errors import LoopError

PREFECT_HOME = ".prefect"
STARTUP_TIMEOUT_S = 120  # `prefect server start` is healthy in ~16 s on a fresh database here


def loop_defaults(root: Path) -> dict[str, str]:
    """What the loop's processes get unless the caller set it: the private Prefect home, no
    analytics (DVC; Prefect's server, whose analytics also hit "database is locked") and a startup
    timeout for Prefect's temporary server that a loaded machine meets."""
    return {
        "PREFECT_HOME": str(root.resolve() / PREFECT_HOME),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(STARTUP_TIMEOUT_S),
        "DVC_NO_ANALYTICS": "1",
    }


def loop_environment(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a loop command's processes: the caller's over `loop_defaults`."""
    return {**loop_defaults(root), **(os.environ if environ is None else environ)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def server_answers(api_url: str, timeout: float = 3.0) -> bool:
    """Whether a Prefect API answers `GET <api_url>/health`."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as response:  # noqa: S310 (http API URL of our server)
            return response.status == 200
    except (OSError, ValueError):
        return False


def no_server_message(api_url: str) -> str:
    return (
        f"no Prefect server answers at {api_url} (PREFECT_API_URL): start it (`prefect server start`), "
        "or unset PREFECT_API_URL and the command starts one for its run"
    )


@contextmanager
def local_server(env: Mapping[str, str], log: Path, port: int | None = None) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 (a free port unless given) with `env`'s Prefect home,
    its output in `log`; yields the API URL once healthy, stops the server at the end."""
    if port and port_in_use(port):
        raise LoopError(
            f"port {port} is taken: if a Prefect server runs there, set PREFECT_API_URL=http://127.0.0.1:{port}/api "
            "to use it, else choose another --port"
        )
    port = port or free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log.parent.mkdir(parents=True, exist_ok=True)
    server_env = {**env, "PREFECT_UI_API_URL": api_url}
    server_env.pop("PREFECT_API_URL", None)
    with open(log, "a", encoding="utf-8") as output:
        process = subprocess.Popen(  # its own session: a Ctrl-C for the run does not stop it before the runs report
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=server_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server_answers(api_url, timeout=2.0):
            if process.poll() is not None:
                raise LoopError(f"the Prefect server stopped at start (exit {process.returncode}); its output: {log}")
            if time.monotonic() > deadline:
                raise LoopError(f"the Prefect server did not answer within {STARTUP_TIMEOUT_S} s; its output: {log}")
            time.sleep(0.5)
        yield api_url
    finally:
        stop_server(process)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (uvicorn and its workers), SIGKILL after 30 s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass


@contextmanager
def prefect_api(env: Mapping[str, str], log: Path, port: int | None = None) -> Iterator[dict[str, str]]:
    """`env` with `PREFECT_API_URL` (and `PREFECT_UI_API_URL`) of a server that answers: the
    user's (`PREFECT_API_URL` set: checked), else a local one for the duration of the block."""
    if env.get("PREFECT_API_URL"):
        if not server_answers(env["PREFECT_API_URL"]):
            raise LoopError(no_server_message(env["PREFECT_API_URL"]))
        yield dict(env)
        return
    print(f"[wsss] starting a Prefect server for this run (home {env['PREFECT_HOME']}; output: {log})", flush=True)
    with local_server(env, log, port) as api_url:
        print(f"[wsss] Prefect UI: {api_url.removesuffix('/api')} (stops when this command ends)", flush=True)
        yield {**env, "PREFECT_API_URL": api_url, "PREFECT_UI_API_URL": api_url}
