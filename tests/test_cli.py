"""The command line: the README's main job, and bad arguments."""

import subprocess
import sys

import pytest

from solver.cli import main


def test_run_writes_results(tmp_path):
    out = tmp_path / "results"
    assert main(["run", "--out", str(out), "--cells", "16"]) == 0
    for name in ("densities.npz", "snapshots.png", "energy.png", "error.png", "summary.md"):
        assert (out / name).stat().st_size > 0, name
    summary = (out / "summary.md").read_text()
    assert "L1 error at t = 4" in summary and "16² cells" in summary


@pytest.mark.parametrize("args", [["run", "--cells", "4"], ["run", "--cells", "x"], ["jump"], []])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, args):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "solver", *args, "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wgf") and ": error:" in last, last
    assert not out.exists()


def test_out_must_be_a_folder(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    assert main(["run", "--out", str(target), "--cells", "16"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"
