"""The MPI launcher: the environment's own mpirun with the flags its implementation takes."""

import os
import subprocess
import sys

import pytest
from conftest import require

from solver.mpi import find_launcher, mpirun_command

# rank 0 prints the ranks gathered over the world: "[0, 1]" only if the launcher and mpi4py's
# MPI agree (a mismatched pair starts two worlds of one rank each, which print "[0]" twice)
PRINT_RANKS = "from mpi4py import MPI; ranks = MPI.COMM_WORLD.gather(MPI.COMM_WORLD.rank); ranks and print(ranks)"


def test_two_ranks_print_their_rank():
    require("mpi4py")
    # env given: this process may have initialized MPI (DOLFINx in other tests), whose own
    # variables a child would inherit otherwise, and Open MPI's mpiexec exits 1 under them
    result = subprocess.run(mpirun_command(2, sys.executable, "-c", PRINT_RANKS), capture_output=True, text=True,
                            timeout=300, env=dict(os.environ))
    report = f"{result.args}: exit status {result.returncode}, stdout {result.stdout!r}, stderr {result.stderr!r}"
    assert result.returncode == 0, report
    assert result.stdout == "[0, 1]\n", report


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
