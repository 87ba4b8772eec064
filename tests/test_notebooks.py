"""The notebooks (jupytext percent-format .py files) run, with small settings."""

import runpy
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("SOLVER_QUICK", "1")
    runpy.run_path(str(path), run_name="__main__")


@pytest.mark.parametrize("block", range(2))
def test_readme_example_runs(block):
    """The README's Python examples (the API, bring your own energy) are true to the code."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = readme.split("```python\n")[1 + block].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
