"""The notebooks (jupytext percent-format .py files) run, with small settings."""

import runpy
from pathlib import Path

import pytest
from conftest import require

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch):
    if "from solver import" in path.read_text() and " fem" in path.read_text():
        require("dolfinx")
    monkeypatch.setenv("SOLVER_QUICK", "1")
    runpy.run_path(str(path), run_name="__main__")


README = (Path(__file__).parent.parent / "README.md").read_text()
README_EXAMPLES = [block.split("```", 1)[0] for block in README.split("```python\n")[1:]]


@pytest.mark.parametrize("code", README_EXAMPLES, ids=lambda code: code.splitlines()[0][:40])
def test_readme_example_runs(code, tmp_path, monkeypatch):
    """The README's Python examples are true to the code (run from a scratch folder that
    sees the repository's meshes/)."""
    if "fem." in code:
        require("dolfinx")
    (tmp_path / "meshes").symlink_to(Path(__file__).parent.parent / "meshes")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
