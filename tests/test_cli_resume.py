"""Checkpoints: a run resumed from any checkpoint ends bit for bit where an uninterrupted
run ends, in ``solve`` itself and through ``wgf run --resume`` after a SIGKILL."""

import copy
import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_configs import barenblatt_config

from solver import Entropy, Grid, PorousMedium, Potential, solve
from solver.analytic import barenblatt
from solver.cli import load_state, main, save_state

# main() tunes its process first (solver.tune_process); here that is the test process, where OpenMP is loaded
# already, so the spin count cannot be set and it warns
pytestmark = pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")


def identical(a, b):
    """Same save times, densities, histories and step counts, bit for bit."""
    assert np.array_equal(a.t, b.t) and np.array_equal(a.rho, b.rho)
    assert all(np.array_equal(a.history[key], b.history[key]) for key in a.history)
    assert (a.accepted, a.rejected) == (b.accepted, b.rejected)


@pytest.mark.parametrize("scheme, floor", [("explicit", 0.1), ("implicit", 0.0)])
def test_solve_resumes_bit_for_bit(scheme, floor, tmp_path):
    """Resume from up to three states (of every third step), through a checkpoint file.
    From vacuum (``floor`` 0) the implicit steps are often rejected, so the step cap of
    the state matters."""
    grid = Grid([(-2, 2)], 40)
    energy = PorousMedium(2) + Potential(lambda x: x[..., 0] ** 2) + Entropy(0.01)
    rho0 = grid.cell_averages(lambda x: floor + barenblatt(x, t=1.0))
    arguments = (energy, grid, rho0, (0.0, 0.5))
    options = {"save_at": [0, 0.1, 0.3, 0.5], "scheme": scheme, **({"dt": 0.1} if scheme == "implicit" else {})}
    states = []

    def keep_every_third(state):
        if state.accepted % 3 == 1:
            states.append(copy.deepcopy(state))

    whole = solve(*arguments, **options, checkpoint=keep_every_third)
    assert len(states) >= 3 and 0 < states[1].t < 0.5
    if scheme == "implicit":
        assert whole.rejected > 0
    for state in states[:: -(-len(states) // 3)]:
        save_state(state, tmp_path / "state.npz")
        assert load_state(tmp_path / "state.npz").saved_at == state.saved_at  # the saves' times, for check_resume
        identical(solve(*arguments, **options, resume=load_state(tmp_path / "state.npz")), whole)


def test_a_checkpoint_from_before_the_reaction_term_resumes_with_no_source(tmp_path):
    """A checkpoint without ``history_source`` (written before the reaction term) loads with
    a source of 0 at every step and resumes to the uninterrupted run."""
    grid = Grid([(-2, 2)], 40)
    arguments = (PorousMedium(2), grid, grid.cell_averages(lambda x: barenblatt(x, t=1.0)), (0.0, 0.2))
    states = []
    whole = solve(*arguments, checkpoint=lambda state: states.append(copy.deepcopy(state)))
    save_state(states[5], tmp_path / "state.npz")
    with np.load(tmp_path / "state.npz") as data:
        np.savez(tmp_path / "old.npz", **{key: data[key] for key in data.files
                                          if key not in ("history_source", "saved_at")})
    old = load_state(tmp_path / "old.npz")
    assert old.history["source"] == [0.0] * 7 and list(old.history) == list(states[5].history)
    assert old.saved_at is None and states[5].saved_at == (0.0,)  # written before the saves' times were kept
    identical(solve(*arguments, resume=old), whole)
    with pytest.raises(ValueError, match=r"no step of the state's run landed on the save times \[0.001\]"):
        solve(*arguments, save_at=[0.001, 0.2], resume=old)  # as many saves up to t, one at another time


def test_resume_must_belong_to_the_run():
    grid = Grid([(-2, 2)], 20)
    rho0 = grid.cell_averages(lambda x: barenblatt(x, t=1.0))
    states = []
    solve(PorousMedium(2), grid, rho0, (0.0, 0.2), checkpoint=states.append)
    with pytest.raises(ValueError, match="does not belong"):
        solve(PorousMedium(2), grid, rho0, (0.0, 0.1), resume=states[-1])


CONFIG = barenblatt_config(cells=32, end=4.0) + """saves = 7
[output]
checkpoint_seconds = 0
animation = false
"""


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    config = tmp_path / "barenblatt.toml"  # the resumed run names it too (it runs a copy)
    config.write_text(CONFIG)
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    checkpoint = tmp_path / "killed.incomplete" / "checkpoint.npz"
    process = subprocess.Popen([sys.executable, "-m", "solver", "run", str(config), "--out", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if checkpoint.exists() and load_state(checkpoint).accepted >= 20:
            break
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not killed.exists()
    reached = load_state(checkpoint).t
    assert 1.0 < reached < 4.0  # killed mid-way
    assert main(["run", "--resume", str(killed)]) == 0
    assert not (tmp_path / "killed.incomplete").exists()
    assert main(["run", str(config), "--out", str(whole)]) == 0
    with np.load(killed / "densities.npz") as a, np.load(whole / "densities.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[key], b[key]) for key in a.files)
    assert (killed / "history.csv").read_bytes() == (whole / "history.csv").read_bytes()
    assert (killed / "summary.md").read_text() == (whole / "summary.md").read_text()


def test_resume_with_other_save_times_or_a_broken_state_is_refused():
    """Other save times would mislabel the saves (or wait forever for one behind t)."""
    grid = Grid([(-2, 2)], 20)
    rho0 = grid.cell_averages(lambda x: barenblatt(x, t=1.0))
    states = []
    solve(PorousMedium(2), grid, rho0, (0.0, 0.2), save_at=[0.0, 0.1, 0.2], max_step=0.02,
          checkpoint=lambda state: states.append(copy.deepcopy(state)))
    state = next(state for state in states if 0.1 < state.t < 0.2)
    assert len(state.saved) == 2
    for save_at in ([0.15, 0.2], [0.0, 0.05, 0.1, 0.2], [0.2]):
        with pytest.raises(ValueError, match=r"saves does not belong .* of them at or before t"):
            solve(PorousMedium(2), grid, rho0, (0.0, 0.2), save_at=save_at, max_step=0.02, resume=state)
    for broken, message in [({"saved": [state.saved[0], np.ones(7)]}, r"saves \[1\] have shapes other"),
                            ({"history": {**state.history, "source": []}}, "the history's lengths"),
                            ({"accepted": state.accepted + 1}, "the history's lengths")]:
        with pytest.raises(ValueError, match=message):
            solve(PorousMedium(2), grid, rho0, (0.0, 0.2), save_at=[0.0, 0.1, 0.2], max_step=0.02,
                  resume=dataclasses.replace(state, **broken))
    # another start; as many saves up to t, but one at 0.04 (a step's time: the count alone let it pass)
    for t_span, save_at, message in [((0.05, 0.2), [0.05, 0.1, 0.2], r"run started at t = 0.0: it does not belong"),
                                     ((0.0, 0.2), [0.0, 0.04, 0.2], r"saves are at t = \[0.0, 0.1\], not at the save "
                                                                    r"times \[0.0, 0.04\]")]:
        with pytest.raises(ValueError, match=message):
            solve(PorousMedium(2), grid, rho0, t_span, save_at=save_at, max_step=0.02, resume=state)
    assert 0.04 in state.history["t"] and state.saved_at == (0.0, 0.1)
    resumed = solve(PorousMedium(2), grid, rho0, (0.0, 0.2), save_at=[0.0, 0.1, 0.2], max_step=0.02, resume=state)
    assert resumed.t.tolist() == [0.0, 0.1, 0.2]
    kept = []  # the states themselves, not copies: their lists went on growing
    solve(PorousMedium(2), grid, rho0, (0.0, 0.2), save_at=[0.0, 0.1, 0.2], max_step=0.02, checkpoint=kept.append)
    with pytest.raises(ValueError, match=r"keep copy.deepcopy\(state\)"):
        solve(PorousMedium(2), grid, rho0, (0.0, 0.2), save_at=[0.0, 0.1, 0.2], max_step=0.02, resume=kept[3])
