"""`bash scripts/test.sh` (the README's test command) and `.ci/run` run the same full suite; `--fast`
selects the tests not marked `slow`; Chromium is installed when missing and possible, else a warning
says the browser tests will skip. Run on a copy of both scripts with a stub setup.sh, a stub venv
python that records its arguments, and a PATH holding only the commands the scripts need."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("bash", "env", "id", "dirname", "mktemp", "rm", "date", "sleep", "python3", "cp")
RECORDER = """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/../args"
exit "${STUB_PYTEST_EXIT:-0}"
"""


def stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """scripts/test.sh and .ci/run with a stub setup.sh, a recording venv python, and a bare PATH."""
    repo = tmp_path / "repo"
    for name in ("scripts/test.sh", ".ci/run"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    stub(repo / "scripts/setup.sh", "#!/bin/sh\nexit 0\n")
    stub(repo / ".venv/bin/python", RECORDER)
    for tool in TOOLS:
        (tmp_path / "bin").mkdir(exist_ok=True)
        (tmp_path / "bin" / tool).symlink_to(shutil.which(tool))
    return repo


def run(repo: Path, *command: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = repo.parent / "bin"
    environment = {"PATH": str(bin_dir), "HOME": str(repo.parent), "TMPDIR": str(repo.parent), **env}
    result = subprocess.run(command, cwd=repo, env=environment, capture_output=True, text=True, check=False, timeout=60)
    recorded = repo / ".venv/args"
    return result, recorded.read_text().splitlines() if recorded.is_file() else []


def pytest_arguments(arguments: list[str]) -> list[str]:
    assert arguments[:2] == ["-m", "pytest"], arguments
    return arguments[2:]


def test_the_readme_command_and_ci_run_the_same_full_suite(checkout: Path) -> None:
    readme, by_readme = run(checkout, "bash", "scripts/test.sh")
    ci, by_ci = run(checkout, "bash", ".ci/run")
    assert readme.returncode == ci.returncode == 0, readme.stderr + ci.stderr
    assert pytest_arguments(by_readme) == pytest_arguments(by_ci)
    # One parallel worker per core, at most 4 (2 where the core count cannot be read).
    *default, workers, dist, mode = pytest_arguments(by_readme)
    assert default == ["tests", "-q", "--durations=30", "-n"] and [dist, mode] == ["--dist", "worksteal"]
    assert 1 <= int(workers) <= 4
    _, serial = run(checkout, "bash", "scripts/test.sh", WSSS_TEST_WORKERS="1")
    assert pytest_arguments(serial) == ["tests", "-q", "--durations=30", "-n", "1", "--dist", "worksteal"]


def test_fast_selects_the_tests_not_marked_slow(checkout: Path) -> None:
    result, arguments = run(checkout, "bash", "scripts/test.sh", "--fast", WSSS_TEST_WORKERS="2")
    assert result.returncode == 0, result.stderr
    assert pytest_arguments(arguments) == ["-m", "not slow", "tests", "-q", "--durations=30", "-n", "2", "--dist", "worksteal"]
    _, arguments = run(checkout, "bash", "scripts/test.sh", "--fast", "tests/pipeline", "-x")
    assert pytest_arguments(arguments) == ["-m", "not slow", "tests/pipeline", "-x"]
    _, arguments = run(checkout, "bash", "scripts/test.sh", "tests/unit", "-k", "cam")
    assert pytest_arguments(arguments) == ["tests/unit", "-k", "cam"]


def test_no_tests_collected_is_a_failure(checkout: Path) -> None:
    result, _ = run(checkout, "bash", "scripts/test.sh", "tests/nothing", STUB_PYTEST_EXIT="5")
    assert result.returncode == 1 and "collected no tests" in result.stderr


def test_without_chromium_and_without_a_way_to_install_it_the_skip_is_announced(checkout: Path) -> None:
    result, _ = run(checkout, "bash", "scripts/test.sh")
    assert result.returncode == 0
    assert "chromium is not installed and could not be installed here" in result.stderr
    assert "the browser tests will SKIP" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the install path runs apt-get as root")
def test_a_missing_chromium_is_installed_with_apt_get(checkout: Path) -> None:
    bin_dir, calls, package = checkout.parent / "bin", checkout.parent / "apt-calls", checkout.parent / "chromium-package"
    stub(package, "#!/bin/sh\necho 'Chromium 156.0 stub'\n")
    # apt-get records its calls; `install -y -qq chromium` puts a chromium on PATH.
    stub(
        bin_dir / "apt-get",
        f"""#!/bin/sh
echo "$@" >> {calls}
case "$*" in *install*chromium*) cp {package} {bin_dir}/chromium;; esac
""",
    )
    result, _ = run(checkout, "bash", "scripts/test.sh", "--fast")
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq chromium"]
    assert "[test] installing chromium" in result.stdout and "[test] Chromium 156.0 stub" in result.stdout
    assert "WARNING" not in result.stderr
    calls.unlink()
    run(checkout, "bash", "scripts/test.sh", "--fast")
    assert not calls.exists()  # already there: no apt-get
