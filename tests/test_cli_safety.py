"""What a run keeps and refuses (issue 14): a results folder is replaced only when it holds
exactly what its run wrote; an interrupted run is never lost (a failed resume, a full
disk, Ctrl-C, SIGTERM, a kill during the final swap); a checkpoint resumes only the config
it was computed with; a folder in use is said to be."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_configs import barenblatt_config

from solver import cli
from solver.cli import load_checkpoint, main

pytestmark = pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")  # main() tunes this process late
ROOT = Path(__file__).resolve().parent.parent
CONFIG = barenblatt_config() + "saves = 3\n[output]\nanimation = false\n"


def config_file(tmp_path, text=CONFIG, name="config.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def interrupt(tmp_path, monkeypatch, text=CONFIG, out_name="results", steps=5):
    """A run of ``text`` stopped by Ctrl-C after ``steps`` accepted steps, each checkpointed:
    returns its --out (whose .incomplete folder holds the run)."""
    real = cli.solve

    def stopping(*args, checkpoint, **options):
        def after_each_step(state):
            checkpoint.every = 0
            checkpoint(state)
            if state.accepted >= steps:
                raise KeyboardInterrupt

        return real(*args, checkpoint=after_each_step, **options)

    out = tmp_path / out_name
    with monkeypatch.context() as patch:
        patch.setattr(cli, "solve", stopping)
        assert main(["run", str(config_file(tmp_path, text, f"{out_name}.toml")), "--out", str(out)]) == 130
    assert (cli.staging_of(out) / "checkpoint.npz").is_file() and not out.exists()
    return out


# ---------------------------------------------------------------------------- 1: nothing of the user's is deleted
def test_a_folder_with_a_metadata_file_is_not_ours(tmp_path, capsys):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "metadata.json").write_text("{}")
    (folder / "thesis.tex").write_text("work")
    assert main(["run", str(config_file(tmp_path)), "--out", str(folder)]) == 2
    assert "not wgf results (no manifest.json)" in capsys.readouterr().err
    assert snapshot(folder) == {"metadata.json": b"{}", "thesis.tex": b"work"}


@pytest.mark.parametrize("change", ["add a file", "edit a file", "edit a file, its size kept", "add a folder",
                                    "add an empty folder"])
def test_a_results_folder_the_user_changed_is_kept(tmp_path, capsys, change):
    out = tmp_path / "results"
    config = str(config_file(tmp_path))
    assert main(["run", config, "--out", str(out)]) == 0
    if change == "add a file":
        (out / "notes.txt").write_text("my notes")
    elif change == "edit a file":
        (out / "summary.md").write_text((out / "summary.md").read_text() + "my remark\n")
    elif change == "edit a file, its size kept":  # only the manifest's digest tells
        text = (out / "summary.md").read_text()
        (out / "summary.md").write_text(("X" if text[0] != "X" else "Y") + text[1:])
    elif change == "add a folder":
        (out / "mine").mkdir()
        (out / "mine" / "a.txt").write_text("mine")
    else:
        (out / "mine").mkdir()
    before = snapshot(out)
    assert main(["run", config, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds what its run did not write, or changed since" in err and "move those out of it" in err, err
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "results"]


def test_a_file_put_into_the_staging_folder_is_kept(tmp_path, monkeypatch, capsys):
    """A file of the user's in DIR.incomplete moves with the resumed run into DIR, left out
    of its manifest: DIR is then never replaced (the manifest listed it, and the next run
    deleted it)."""
    out = interrupt(tmp_path, monkeypatch)
    (cli.staging_of(out) / "notes.txt").write_text("mine")
    assert main(["run", "--resume", str(out)]) == 0
    assert cli.foreign_files(out) == ["notes.txt"]
    capsys.readouterr()
    assert main(["run", str(config_file(tmp_path)), "--out", str(out)]) == 2
    assert "holds what its run did not write, or changed since: notes.txt;" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_out_never_names_a_staging_folder(tmp_path, monkeypatch, capsys):
    out = interrupt(tmp_path, monkeypatch)
    staging = cli.staging_of(out)
    before = snapshot(staging)
    assert main(["run", str(config_file(tmp_path)), "--out", str(staging)]) == 2
    err = capsys.readouterr().err
    assert "names ending in .incomplete are staging folders" in err and f"`wgf run --resume {out}` to continue" in err
    assert snapshot(staging) == before


# ------------------------------------------------------------------------- 2, 5: resumes check, keep what they refuse
@pytest.mark.parametrize("edit, keys", [
    (("cells = [16]", "cells = [20]"), "grid.cells"),
    (("end = 1.5", "end = 1.2"), "time.end"),
    (("end = 1.5", "end = 3.0"), "time.end"),
    (("bounds = [[-2, 2], [-2, 2]]", "bounds = [[-3, 3], [-2, 2]]"), "grid.bounds"),
    (("m = 2\n", "m = 3\n"), "energy[0].m"),
], ids=["cells", "shorter end", "longer end", "bounds", "exponent"])
def test_a_resume_of_a_changed_config_is_refused_and_kept(tmp_path, monkeypatch, capsys, edit, keys):
    out = interrupt(tmp_path, monkeypatch)
    staging = cli.staging_of(out)
    stored = staging / "config.toml"
    stored.write_text(stored.read_text().replace(*edit))
    before = snapshot(staging)
    capsys.readouterr()
    assert main(["run", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wgf: error: the config of") and f"differs from the one its checkpoint was computed with, " \
        f"in {keys};" in err, err
    assert snapshot(staging) == before and not out.exists()


def test_a_checkpoint_of_another_run_is_refused_and_kept(tmp_path, monkeypatch, capsys):
    out = interrupt(tmp_path, monkeypatch)
    other = interrupt(tmp_path, monkeypatch, CONFIG.replace("m = 2\n[initial]", "m = 2\n[[energy]]\nterm = "
                                                           '"entropy"\ntau = 0.1\n[initial]'), "other")
    staging = cli.staging_of(out)
    (staging / "checkpoint.npz").write_bytes((cli.staging_of(other) / "checkpoint.npz").read_bytes())
    before = snapshot(staging)
    capsys.readouterr()
    assert main(["run", "--resume", str(out)]) == 2
    assert "computed with, in energy;" in capsys.readouterr().err
    assert snapshot(staging) == before


def test_a_checkpoint_of_another_version_is_refused(tmp_path, monkeypatch, capsys):
    out = interrupt(tmp_path, monkeypatch)
    before = snapshot(cli.staging_of(out))
    monkeypatch.setattr(cli, "__version__", "0.0.1")
    assert main(["run", "--resume", str(out)]) == 2
    assert "checkpoint.npz was written by solver 0.1.0, this is solver 0.0.1" in capsys.readouterr().err
    assert snapshot(cli.staging_of(out)) == before


def test_a_checkpoint_of_another_commit_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "git_commit", lambda: {"commit": "a" * 40, "changed_files": 0})
    out = interrupt(tmp_path, monkeypatch)
    before = snapshot(cli.staging_of(out))
    monkeypatch.setattr(cli, "git_commit", lambda: {"commit": "b" * 40, "changed_files": 0})
    assert main(["run", "--resume", str(out)]) == 2
    assert "checkpoint.npz was written by the solver of commit aaaaaaaaaaaa, this is commit bbbbbbbbbbbb;" \
        in capsys.readouterr().err
    assert snapshot(cli.staging_of(out)) == before


def test_a_resume_that_fails_keeps_its_folder(tmp_path, monkeypatch, capsys):
    out = interrupt(tmp_path, monkeypatch)
    staging = cli.staging_of(out)
    before = snapshot(staging)

    def fail(*args, **kwargs):
        raise RuntimeError("solve: the step fell below 1e-14")

    monkeypatch.setattr(cli, "solve", fail)
    assert main(["run", "--resume", str(out)]) == 1
    assert snapshot(staging) == before


def test_a_resume_continues_the_same_run(tmp_path, monkeypatch):
    out = interrupt(tmp_path, monkeypatch)
    state = load_checkpoint(cli.staging_of(out) / "checkpoint.npz")[0]
    assert 1.25 < state.t < 1.5 and state.saved_at == (1.0, 1.25)  # the saves' times up to t, for check_resume
    assert main(["run", "--resume", str(out)]) == 0
    whole = tmp_path / "whole"
    assert main(["run", str(config_file(tmp_path)), "--out", str(whole)]) == 0
    with np.load(out / "densities.npz") as a, np.load(whole / "densities.npz") as b:
        assert all(np.array_equal(a[key], b[key]) for key in a.files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "results", "results.toml", "whole"]


# ---------------------------------------------------------------------------- 3: a full disk keeps the last checkpoint
def full_disk_for(monkeypatch, name, after):
    """Make the atomic writer fail with ENOSPC on writes to files called ``name``, after
    ``after`` writes of it went through."""
    real, done = cli.write_atomically, []

    def writer(path, write):
        if Path(path).name == name:
            done.append(path)
            if len(done) > after:
                def fill(handle):
                    handle.write(b"partial")
                    raise OSError(errno.ENOSPC, "No space left on device")

                return real(path, fill)
        return real(path, write)

    monkeypatch.setattr(cli, "write_atomically", writer)


@pytest.mark.parametrize("where", ["checkpoint.npz", "densities.npz", "history.csv", "metadata.json"])
def test_a_full_disk_keeps_the_run_resumable(tmp_path, monkeypatch, capsys, where):
    out = tmp_path / "results"
    config = config_file(tmp_path, CONFIG.replace("animation = false", "animation = false\ncheckpoint_seconds = 0"))
    with monkeypatch.context() as patch:
        def no_room(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        if where == "densities.npz":
            patch.setattr(cli.np, "savez_compressed", no_room)
        elif where == "history.csv":
            patch.setattr(cli.csv, "writer", no_room)
        else:
            full_disk_for(patch, where, after=3 if where == "checkpoint.npz" else 1)
        assert main(["run", str(config), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == f"wgf: error: disk full while writing {where}; the run can be resumed with `wgf run --resume " \
        f"{out}` once there is room\n", err
    staging = cli.staging_of(out)
    state, _ = load_checkpoint(staging / "checkpoint.npz")
    assert state.accepted == (3 if where == "checkpoint.npz" else 8)  # the last good one (8 steps in all)
    assert not list(staging.glob("*.tmp")) and not out.exists()
    assert main(["run", "--resume", str(out)]) == 0
    assert not staging.exists() and (out / "summary.md").is_file()


# ---------------------------------------------------------------------------- 4: signals and the final swap
# 5e6 steps of at most 2e-5: still solving when the signal comes, however fast the machine
SLOW = barenblatt_config(end=100) + "max_step = 2e-5\n[output]\ncheckpoint_seconds = 2\nanimation = false\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_writes_a_final_checkpoint(tmp_path, signum):
    config = config_file(tmp_path, SLOW)
    out = tmp_path / "results"
    checkpoint = cli.staging_of(out) / "checkpoint.npz"
    process = subprocess.Popen([sys.executable, "-m", "solver", "run", str(config), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before its first periodic checkpoint"
    first = load_checkpoint(checkpoint)[0].accepted  # the periodic one, after 2 s
    os.kill(process.pid, signum)
    try:
        assert process.wait(timeout=60) == 128 + signum
    finally:
        process.kill()
    assert f"continue with `wgf run --resume {out}`" in process.stderr.read()
    state, stored = load_checkpoint(checkpoint)
    assert state.accepted > first and stored["config"]["time"]["max_step"] == 2e-5
    assert not (cli.staging_of(out) / ".wgf-lock").exists()


KILL_AT_RENAME = """
import os, pathlib, sys
rename, calls = pathlib.Path.rename, []
def rename_then_die(self, target):
    result = rename(self, target)
    calls.append(target)
    if len(calls) == int(sys.argv[1]):
        os._exit(9)
    return result
pathlib.Path.rename = rename_then_die
from solver.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("renames, then", [(2, "resume"), (2, "run"), (3, "run")])
def test_a_kill_during_the_final_swap_is_recovered(tmp_path, capsys, renames, then):
    """Killed after the second rename of the run (the first makes its staging folder; the
    second moves the old results aside) or the third (the new ones in place): the next
    resume or run finishes the swap; nothing is recomputed or left."""
    config = config_file(tmp_path)
    out = tmp_path / "results"
    assert main(["run", str(config), "--out", str(out)]) == 0
    script = tmp_path / "die.py"
    script.write_text(KILL_AT_RENAME)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, str(script), str(renames), "run", str(config), "--out", str(out)],
                            env=environment, capture_output=True, timeout=300)
    assert killed.returncode == 9
    capsys.readouterr()
    if then == "resume":
        assert main(["run", "--resume", str(out)]) == 0
        assert "was complete; moved it to" in capsys.readouterr().err
    else:
        assert main(["run", str(config), "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "die.py", "results"]
    assert cli.foreign_files(out) == []


# ---------------------------------------------------------------------------- 12: a folder in use
@pytest.fixture
def live_process():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def test_a_folder_in_use_is_said_to_be(tmp_path, monkeypatch, capsys, live_process):
    out = interrupt(tmp_path, monkeypatch)
    staging = cli.staging_of(out)
    (staging / ".wgf-lock").write_text(f"{live_process} {os.uname().nodename}\n")
    before = snapshot(staging)
    capsys.readouterr()
    for argv in (["run", "--resume", str(out)], ["run", str(config_file(tmp_path)), "--out", str(out)]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"wgf: error: {out} is in use by process {live_process};") and "\n" == err[-1], err
        assert len(err.splitlines()) == 1
    assert snapshot(staging) == before


def test_a_stale_lock_is_no_obstacle(tmp_path, monkeypatch):
    out = interrupt(tmp_path, monkeypatch)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (cli.staging_of(out) / ".wgf-lock").write_text(f"{dead.pid} {os.uname().nodename}\n")
    assert main(["run", "--resume", str(out)]) == 0
    assert (out / "summary.md").is_file() and not cli.staging_of(out).exists()


# ---------------------------------------------------------------------------- 11: damaged run folders
@pytest.mark.parametrize("damage", ["truncated checkpoint", "checkpoint of zeros", "metadata.json"])
def test_a_damaged_run_folder_is_named_and_kept(tmp_path, monkeypatch, capsys, damage):
    out = interrupt(tmp_path, monkeypatch)
    staging = cli.staging_of(out)
    if damage == "metadata.json":
        (staging / "metadata.json").write_text('{"command": "wgf run')
    else:
        data = (staging / "checkpoint.npz").read_bytes()
        (staging / "checkpoint.npz").write_bytes(data[: len(data) // 2] if "truncated" in damage
                                                 else bytes(len(data)))
    before = snapshot(staging)
    capsys.readouterr()
    assert main(["run", "--resume", str(out)]) == 1
    err = capsys.readouterr().err
    named = staging / ("metadata.json" if damage == "metadata.json" else "checkpoint.npz")
    assert len(err.splitlines()) == 1 and f"{named} cannot be read" in err, err
    assert snapshot(staging) == before


def test_a_resume_given_the_staging_folder_resumes_the_run(tmp_path, monkeypatch):
    """``wgf run --resume results.incomplete`` (the folder the interrupted run left, as the
    user sees it) resumes ``results`` (it catches the .incomplete suffix kept, so the resume
    looks for results.incomplete.incomplete and finds nothing)."""
    out = interrupt(tmp_path, monkeypatch)
    assert cli.main(["run", "--resume", str(cli.staging_of(out))]) == 0
    assert (out / "manifest.json").is_file() and not cli.staging_of(out).exists()
