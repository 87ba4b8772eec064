"""``wgf run`` under ``mpirun -n 2`` (issue 14, item 9): rank 0 writes the folders, every
rank takes the same decisions, an error ends every rank. Each launch has a timeout, so a
hang fails the test."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_configs import barenblatt_config
from conftest import require

from solver import cli
from solver.mpi import mpirun_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def mpi():
    require("dolfinx")
    require("mpi4py")


def wgf(*args, ranks=2, timeout=300):
    """``wgf ARGS`` on ``ranks`` MPI ranks (1: without mpirun), from the repository root."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "solver", *map(str, args)]
    return subprocess.run(mpirun_command(ranks, *command) if ranks > 1 else command, cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_run_on_two_ranks_writes_one_complete_folder(mpi, tmp_path):
    config = cli.CONFIGS / "disk.toml"
    parallel, serial = tmp_path / "parallel", tmp_path / "serial"
    result = wgf("run", config, "--out", parallel)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("wrote ") == 1  # rank 0 alone speaks
    assert cli.foreign_files(parallel) == [] and not cli.staging_of(parallel).exists()
    assert wgf("run", config, "--out", serial, ranks=1).returncode == 0
    with np.load(parallel / "densities.npz") as a, np.load(serial / "densities.npz") as b:
        order = np.lexsort(b["points"].T[::-1])
        np.testing.assert_allclose(a["points"], b["points"][order], atol=1e-14)
        np.testing.assert_allclose(a["weights"], b["weights"][order], rtol=1e-12)
        np.testing.assert_allclose(a["rho"], b["rho"][:, order], rtol=0, atol=1e-10 * b["rho"].max())
        assert len(a["cells"]) == len(b["cells"])  # every triangle once


def test_a_refusal_on_two_ranks_ends_both(mpi, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = wgf("run", cli.CONFIGS / "disk.toml", "--out", out, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("wgf: error:") == 1 and "is a folder that is not wgf results" in result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and not cli.staging_of(out).exists()


DISK_FULL_ON_RANK_0 = """
import errno, sys
from mpi4py import MPI
import numpy as np
if MPI.COMM_WORLD.rank == 0:  # rank 0 alone writes densities.npz
    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    np.savez_compressed = no_room
from solver.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_error_on_one_rank_ends_both(mpi, tmp_path):
    """A full disk on rank 0 alone, while rank 1 goes on to wait for rank 0's next
    decision: rank 0 says so as a serial run does and ends both (MPI.Abort) rather than
    leave rank 1 waiting (the timeout fails a hang); the solved run stays resumable from
    its final checkpoint."""
    script, config, out = tmp_path / "full.py", tmp_path / "c.toml", tmp_path / "results"
    script.write_text(DISK_FULL_ON_RANK_0)
    config.write_text(barenblatt_config() + "saves = 3\n[output]\nanimation = false\n")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(mpirun_command(2, sys.executable, str(script), "run", str(config), "--out", str(out)),
                            cwd=ROOT, env=environment, capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    assert f"wgf: error on rank 0 of 2: disk full while writing densities.npz; the run can be resumed with `wgf run " \
        f"--resume {out}` once there is room; ending every rank" in result.stderr, result.stderr
    assert cli.load_checkpoint(cli.staging_of(out) / "checkpoint.npz")[0].t == 1.5 and not out.exists()
