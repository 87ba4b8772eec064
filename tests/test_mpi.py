"""The MPI launcher: the environment's own mpirun with the flags its implementation takes."""

import os
import subprocess
import sys

import pytest
from conftest import require

from solver.mpi import find_launcher, mpirun_command

PRINT_RANK = "from mpi4py import MPI; print(f'rank {MPI.COMM_WORLD.rank} of {MPI.COMM_WORLD.size}')"


def test_two_ranks_print_their_rank():
    require("mpi4py")
    result = subprocess.run(mpirun_command(2, sys.executable, "-c", PRINT_RANK), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split("\n")[:2]) == ["rank 0 of 2", "rank 1 of 2"], result.stdout


def test_flags_follow_the_implementation():
    launcher, implementation = find_launcher()
    command = mpirun_command(3, "prog", "arg")
    assert command[0] == launcher and command[-4:] == ["-n", "3", "prog", "arg"]
    flags = command[1:-4]
    if implementation == "openmpi":
        assert flags == ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    else:
        assert flags == [], (implementation, flags)


@pytest.mark.parametrize("ranks", [0, -1, 1.5, True, "2"])
def test_bad_rank_counts(ranks):
    with pytest.raises(ValueError, match=f"ranks must be an integer >= 1, got {ranks!r}"):
        mpirun_command(ranks, sys.executable, "-c", "pass")


def test_empty_command():
    with pytest.raises(ValueError, match="needs a command"):
        mpirun_command(2)
