"""Property (issue 14): random sequences of run / interrupt (SIGINT or SIGKILL at a random
moment) / resume / run again / a file of the user's put into the results folder or into
its staging folder, on one ``--out``, never lose a completed result or a user's file, and
always end in a complete results folder, a resumable one or one the user added to."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_configs import barenblatt_config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from solver import cli

ROOT = Path(__file__).resolve().parent.parent
# about 400 steps: a run lasts a few seconds, so that a signal lands in its import, its
# solve, its writing or its final swap
CONFIG = barenblatt_config(end=1.2) + "max_step = 5e-4\n[output]\ncheckpoint_seconds = 0.2\nanimation = false\n"

ACTIONS = st.lists(st.tuples(st.sampled_from(["run", "resume", "user file"]),
                             st.sampled_from([None, signal.SIGINT, signal.SIGKILL]),
                             st.floats(0.0, 4.0)), min_size=2, max_size=3)


def wgf(args, signum, delay):
    """``wgf ARGS`` in a subprocess, sent ``signum`` after ``delay`` seconds (None: not)."""
    process = subprocess.Popen([sys.executable, "-m", "solver", *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if signum is not None:
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signum)
    try:
        process.wait(timeout=300)
    finally:
        process.kill()
    return process.returncode, process.stderr.read()


def complete(folder):
    """Whether ``folder`` is a complete results folder (its manifest lists exactly what it holds)."""
    return folder.is_dir() and cli.foreign_files(folder) == [] and (folder / "summary.md").is_file()


@pytest.mark.slow  # about 60 s
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
@example(actions=[("run", signal.SIGINT, 3.0), ("user file", None, 0.0), ("resume", None, 0.0)])
def test_interruptions_lose_nothing(tmp_path_factory, actions):
    base = tmp_path_factory.mktemp("interrupted")
    config, out, staging = base / "c.toml", base / "results", base / "results.incomplete"
    config.write_text(CONFIG)
    (base / "notes.txt").write_text("beside")
    inside = {}  # the user's files put inside the results folder or its staging folder (which moves into it)

    def kept():
        """Whether every file of the user's is there, unchanged (one put into the staging
        folder in it or in the results folder it became)."""
        return (base / "notes.txt").read_text() == "beside" and all(
            any((folder / name).is_file() and (folder / name).read_text() == text for folder in (out, staging))
            for name, text in inside.items())

    def held():
        """Whether the results folder holds a file of the user's (and so is kept, not complete)."""
        return any((out / name).exists() for name in inside)

    completed = False
    for action, signum, delay in actions:
        if action == "user file":
            for folder, name in ((out, "mine.txt"), (staging, "theirs.txt")):
                if folder.is_dir():
                    inside[name] = folder.name
                    (folder / name).write_text(folder.name)
            continue
        status, err = wgf(["run", "--resume", out] if action == "resume" else ["run", config, "--out", out],
                          signum, delay)
        if signum is None:
            assert status in (0, 2), err  # done, or refused with one line (a folder of the user's, a run to resume)
            assert len(err.strip().splitlines()) <= 1, err
        completed = completed or status == 0
        assert kept(), actions
        if completed:  # a complete result exists: in place, or in a staging folder mid-swap
            assert complete(out) or held() or (staging / cli.MANIFEST).is_file(), actions
        assert not out.exists() or complete(out) or held(), actions
        assert not staging.exists() or (staging / "config.toml").is_file() or not (staging / "metadata.json").exists()
    if staging.exists():  # resumable: the resume completes it
        status, err = wgf(["run", "--resume", out], None, 0)
        assert status == 0 or held(), err
    assert complete(out) or held() or not completed and not staging.exists(), actions
    assert kept(), actions
