"""The documentation site (mkdocs.yml): it builds without a warning, and every code block of its pages
is run by a named test as printed or says why it is not."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hipi_jax import relabel

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # the README is the site's index
MARKER = re.compile(r"<!-- (runs: (?P<test>tests/\w+\.py::\w+)|not run: (?P<why>.+\S)) -->")


def code_blocks(page: Path) -> list[tuple[int, str, str]]:
    """(line number, marker line before the block, the block's code) of each fenced block of a page."""
    lines = page.read_text().splitlines()
    fences = [i for i, line in enumerate(lines) if line.lstrip().startswith("```")]
    assert len(fences) % 2 == 0, f"{page.name}: an unclosed code block"
    blocks = []
    for start, end in zip(fences[::2], fences[1::2], strict=True):
        before = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        blocks.append((start + 1, before.strip(), "\n".join(lines[start + 1 : end]) + "\n"))
    return blocks


def block_run_by(test: str) -> str:
    """The one code block whose marker names `test` (a test of this file's)."""
    found = [code for page in PAGES for _, before, code in code_blocks(page) if before == f"<!-- runs: {test} -->"]
    assert len(found) == 1, f"{len(found)} blocks name {test}"
    return found[0]


def test_the_site_builds_without_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0 and "WARNING" not in result.stderr, result.stderr
    assert "hipi_jax.relabel.inverse_rl_log_probs" in (tmp_path / "site/api/index.html").read_text()
    assert (tmp_path / "site/index.html").read_text().count("hipi-train") > 10  # the README, as the index


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_code_block_is_run_by_a_named_test_or_says_why_not(page):
    for line, before, _ in code_blocks(page):
        marker = MARKER.fullmatch(before)
        assert marker, (
            f"{page.name}:{line}: a code block without <!-- runs: tests/FILE.py::TEST --> or <!-- not run: WHY -->"
        )
        if test := marker["test"]:
            file, name = test.split("::")
            assert re.search(rf"^def {name}\(", (ROOT / file).read_text(), re.M), f"{page.name}:{line}: no {test}"


def test_the_readme_python_api_block_runs_as_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(block_run_by("tests/test_docs.py::test_the_readme_python_api_block_runs_as_printed"), {})
    returns, success = map(float, capsys.readouterr().out.split()[-2:])
    assert -50.0 <= returns <= 0.0 and 0.0 <= success <= 1.0
    assert (tmp_path / "runs/point_goal-py/summary.json").is_file()


def test_the_custom_relabeler_recipe_runs_as_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(relabel, "RULES", dict(relabel.RULES))  # the recipe's rule stays in this test
    exec(block_run_by("tests/test_docs.py::test_the_custom_relabeler_recipe_runs_as_printed"), {})
    success = [float(x) for x in re.findall(r"[\d.]+", capsys.readouterr().out.splitlines()[-1])]
    assert len(success) == 1 and 0.0 <= success[0] <= 1.0
    assert json.loads((tmp_path / "runs/future-or-prior/config.json").read_text())["relabel"]["strategy"] == (
        "future_or_prior"
    )
