"""Headless Chromium for the report tests and the review benchmark: `--dump-dom`, `--screenshot`, and a
tiny DevTools-protocol client (websockets) that times a page load. Debian's `chromium`; no downloads."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import stop_process

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
)


def chromium() -> str | None:
    """Path of the Chromium executable, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(arguments: list[str], timeout: int) -> subprocess.CompletedProcess:
    executable = chromium()
    if executable is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="wsss-chromium-") as profile:
        return subprocess.run(
            [executable, *FLAGS, f"--user-data-dir={profile}", *arguments], capture_output=True, text=True, timeout=timeout, check=False
        )


def dump_dom(url: str, budget_ms: int = 15000, window: tuple[int, int] = (1400, 1000), timeout: int = 120) -> str:
    """The DOM after the page ran for `budget_ms` of virtual time (scripts, images, timers)."""
    result = _run([f"--window-size={window[0]},{window[1]}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout)
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"chromium --dump-dom {url} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def screenshot(url: str, path: Path, window: tuple[int, int] = (1400, 1100), budget_ms: int = 15000, timeout: int = 120) -> Path:
    """A PNG of the page as rendered after `budget_ms` of virtual time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    result = _run([f"--window-size={window[0]},{window[1]}", f"--virtual-time-budget={budget_ms}", f"--screenshot={path.resolve()}", url], timeout)
    if result.returncode != 0 or not path.is_file():
        raise RuntimeError(f"chromium --screenshot {url} failed ({result.returncode}): {result.stderr[-2000:]}")
    return path


class DevTools:
    """A minimal Chrome DevTools Protocol session on one page target."""

    def __init__(self, socket: Any) -> None:
        self.socket, self.next_id = socket, 0
        self.events: list[dict[str, Any]] = []  # notifications received while waiting for replies

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=120))
            if "method" in message:
                self.events.append(message)
            elif message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")


@contextmanager
def devtools(window: tuple[int, int] = (1400, 1000)) -> Iterator[DevTools]:
    """Chromium with remote debugging on a free port, and a DevTools session on its blank page."""
    from websockets.sync.client import connect

    executable = chromium()
    if executable is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="wsss-chromium-") as profile:
        process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", f"--window-size={window[0]},{window[1]}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not port_file.is_file() or not port_file.read_text().strip():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.05)
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                page = next(t for t in json.loads(response.read()) if t["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as socket:
                yield DevTools(socket)
        finally:
            stop_process(process, timeout=10)
