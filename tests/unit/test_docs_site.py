"""The documentation site builds strictly, and what the docs name exists: a broken link or anchor, a page left
out of the nav, a repository path in backticks that is not there, or a module missing from the Layout fails."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Paths in backticks are checked when they start with one of these (data/ and artifacts/ are made by runs).
CHECKED_ROOTS = ("src/", "tests/", "benchmarks/", "scripts/", "flows/", "tasks/", "docs/", "corrections/", ".dvc/", "wsss/", "wsss_mmseg/")
ROOT_FILES = ("params.yaml", "dvc.yaml", "Makefile", "pyproject.toml", "requirements.lock", "mkdocs.yml", "README.md")
# Made by scripts/setup.sh or by a run, never committed.
GENERATED = (".dvc/plots/offline.html", ".dvc/tmp/lock", ".dvc/cache")


def build(root: Path, destination: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(destination)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "method.html").is_file() and (tmp_path / "site" / "parameters.html").is_file()


def test_a_broken_link_an_unknown_anchor_or_a_page_left_out_fails_the_build(tmp_path: Path) -> None:
    def variant(name: str, edit) -> subprocess.CompletedProcess:
        root = tmp_path / name
        shutil.copytree(ROOT / "docs", root / "docs")
        shutil.copy(ROOT / "mkdocs.yml", root / "mkdocs.yml")
        edit(root / "docs")
        return build(root, root / "site")

    broken = variant("link", lambda docs: (docs / "stages.md").write_text((docs / "stages.md").read_text() + "\n[x](no-such-page.md)\n"))
    assert broken.returncode != 0 and "no-such-page.md" in broken.stderr
    anchor = variant("anchor", lambda docs: (docs / "index.md").write_text((docs / "index.md").read_text() + "\n[x](method.md#no-such-heading)\n"))
    assert anchor.returncode != 0 and "no-such-heading" in anchor.stderr
    orphan = variant("orphan", lambda docs: (docs / "orphan.md").write_text("# Not in the nav\n"))
    assert orphan.returncode != 0 and "orphan.md" in orphan.stderr


def inline_code(text: str) -> list[str]:
    """The inline code spans of a markdown text (fenced blocks left out)."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    return re.findall(r"`([^`\n]+)`", prose)


def expand(path: str) -> list[str]:
    """`a/{b,c}.py` -> both; `<id>`, `NNNNN`, `*` -> glob wildcards."""
    match = re.search(r"\{([^{}]*)\}", path)
    if match:
        return list(itertools.chain.from_iterable(expand(path[: match.start()] + option + path[match.end() :]) for option in match[1].split(",")))
    return [re.sub(r"<[^>]*>|N{3,}", "*", path)]


def repository_paths(span: str) -> list[str]:
    """The repository path(s) a code span names, or [] when it names none."""
    span = span.split("::", maxsplit=1)[0].rstrip(".,:;")
    if " " in span or not (span.startswith(CHECKED_ROOTS) or span in ROOT_FILES):
        return []
    if span.startswith(("wsss/", "wsss_mmseg/")):
        span = "src/" + span
    return [path for path in expand(span) if path.rstrip("/") not in GENERATED]


def test_every_repository_path_written_in_backticks_exists() -> None:
    missing = []
    for page in DOCS:
        for span in inline_code(page.read_text()):
            for path in repository_paths(span):
                if not (any(ROOT.glob(path.rstrip("/"))) if "*" in path else (ROOT / path.rstrip("/")).exists()):
                    missing.append(f"{page.relative_to(ROOT)}: `{span}`")
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)


def test_path_check_sees_a_missing_path_and_expands_placeholders() -> None:
    assert repository_paths("tests/unit/test_review_{triage,cli}.py") == ["tests/unit/test_review_triage.py", "tests/unit/test_review_cli.py"]
    assert repository_paths("wsss/io/atomic.py") == ["src/wsss/io/atomic.py"]
    assert repository_paths("artifacts/cams/shard-NNNNN.h5") == [] and repository_paths("python -m flows.cams") == []
    assert repository_paths("benchmarks/no_such.py::test") == ["benchmarks/no_such.py"]
    assert not (ROOT / "benchmarks/no_such.py").exists()


def layout_entries() -> dict[str, str]:
    """The Layout block of docs/architecture.md, by top-level entry (`src/wsss/`, `tasks/`, `benchmarks/`, ...)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text[text.index("## Layout") :]
    block = section[section.index("```\n") + 4 : section.index("\n```", section.index("```\n"))]
    entries: dict[str, str] = {}
    current = ""
    for line in block.splitlines():
        if line and not line[0].isspace():
            current = line.split()[0]
        entries[current] = entries.get(current, "") + line + "\n"
    return entries


def test_the_layout_names_every_module_script_and_benchmark() -> None:
    entries = layout_entries()
    folders = {
        "src/wsss/": (ROOT / "src" / "wsss").rglob("*.py"),
        "src/wsss_mmseg/": (ROOT / "src" / "wsss_mmseg").rglob("*.py"),
        "tasks/": (ROOT / "tasks").glob("*.py"),
        "flows/": (ROOT / "flows").glob("*.py"),
        "benchmarks/": [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "benchmarks").glob("*.sh")],
        "scripts/": (ROOT / "scripts").iterdir(),
    }
    missing = []
    for entry, files in folders.items():
        names = [p.name for p in files if p.name != "__init__.py"]
        if entry == "src/wsss/":
            names += [f"{p.name}/" for p in (ROOT / "src" / "wsss").iterdir() if (p / "__init__.py").is_file()]
        missing += [f"{entry}{name}" for name in sorted(set(names)) if not re.search(rf"(?<![\w.]){re.escape(name)}", entries.get(entry, ""))]
    assert not missing, f"docs/architecture.md's Layout does not name: {missing}"


def test_no_file_points_outside_the_repository() -> None:
    """The method is described in docs/method.md; nothing names a reference folder users do not have,
    and no committed file (benchmark figures included) names a folder of the machine it was made on."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    offenders = []
    for name in filter(None, listed.stdout.split("\0")):
        path = ROOT / name
        if path.suffix in (".md", ".py", ".sh", ".yaml", ".yml", ".toml", ".txt", ".json", "") and path.is_file():
            text = path.read_text(errors="replace")
            if (re.search(r"shared/spec|spec §|/(?:work|root)/", text) or str(ROOT) in text) and path != Path(__file__):
                offenders.append(name)
    assert not offenders, offenders


def test_readme_stays_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
