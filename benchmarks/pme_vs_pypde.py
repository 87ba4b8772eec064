"""The porous-medium equation ∂tρ = Δ(ρ²): our grid solver against py-pde.

Problem: the 2D Barenblatt solution with m = 2, C = 0.1 on the box [−2, 2]² with no-flux
walls, from t = 1 to t = 4, on 64², 128² and 256² cells. Every solver starts from the
same exact cell averages at t = 1 and is compared with the exact cell averages at t = 4.

Solvers:

- ``explicit``: ours, second-order upwind fluxes with SSP-RK2 and adaptive steps;
- ``rkl2``: ours, the same fluxes with RKL2 super-steps (Runge–Kutta–Legendre, up to
  ``solver.timeloop.RKL_MAX_STAGES`` stages per step);
- ``implicit``: ours, backward Euler with Newton (first-order upwind), fixed step
  ``--implicit-dt``;
- ``py-pde``: ``PDE({"c": "laplace(c**2)"})`` with py-pde's adaptive explicit Euler
  solver and its default no-flux (Neumann) boundary, on its own cell-centred grid with
  the same cell centres.

For each size and solver: wall time, the median of ``--repeats`` runs after one warm-up
run (the warm-up absorbs Numba compilation; its time is reported apart as the first
call); py-pde's stepping time (its diagnostics' ``solver_duration``: the wall time
without the compilation that py-pde repeats on every ``solve`` call); the number of steps;
the L1 error against the exact cell averages at t = 4; the relative mass drift
|mass(4) − mass(1)| / mass(1); and the minimum of the final density. A run whose
warm-up takes longer than ``--budget`` seconds is timed by its warm-up alone, which the
table notes.

py-pde's current releases need NumPy 2, which the project's environment cannot have
(Debian's DOLFINx is built against NumPy 1), so there pip resolves an older py-pde. To
time the py-pde a user would install today, give ``--peer-python`` an interpreter of
another environment with py-pde, SciPy, Numba, threadpoolctl, tqdm and POT: the py-pde
rows are then run there (this script, with ``--peer-row``, and the repository on its
``PYTHONPATH``), in the same run, one size after another.

The last line of output is a JSON object for the largest size: ``ours_scheme`` is the
faster of our schemes among those whose L1 error is no larger than py-pde's (else the
more accurate one), ``speedup`` is py-pde's median time over that scheme's; ``matched_*`` compare at equal
accuracy instead: our fastest run at any size whose L1 error is no larger than py-pde's
at the largest size, against py-pde there (``matched_speedup``); ``rows`` holds every
table row.

Run from the repository root::

    .venv/bin/python benchmarks/pme_vs_pypde.py            # 64², 128², 256²; 3 repeats
    .venv/bin/python benchmarks/pme_vs_pypde.py --quick    # 64², 128²; 1 repeat
    .venv/bin/python benchmarks/pme_vs_pypde.py --sizes 64 128 256 --repeats 5
    .venv/bin/python benchmarks/pme_vs_pypde.py --peer-python /tmp/peer/bin/python
"""

import argparse
import json
import os
import statistics
import subprocess
import time
from functools import partial
from pathlib import Path

import numba
import numpy as np
import pde
from quick import resolve

from solver import Grid, PorousMedium, solve, tune_process
from solver.analytic import barenblatt

T0, T1 = 1.0, 4.0
BOX = [(-2.0, 2.0), (-2.0, 2.0)]
EXACT = partial(barenblatt, m=2, C=0.1)
SOLVERS = ("explicit", "rkl2", "implicit", "py-pde")


def run_ours(grid, rho0, scheme, implicit_dt):
    """Solve with our grid solver.

    Parameters
    ----------
    grid : Grid
        Our grid.
    rho0 : array
        Initial cell averages at t = T0.
    scheme : {"explicit", "rkl2", "implicit"}
        Our time-stepping scheme.
    implicit_dt : float
        The step of the implicit scheme (unused by the explicit one).

    Returns
    -------
    rho : array
        The density at t = T1.
    info : dict
        ``steps`` (accepted) and ``rejected``.
    """
    options = {"scheme": "implicit", "dt": implicit_dt} if scheme == "implicit" else {"scheme": scheme}
    solution = solve(PorousMedium(2), grid, rho0, (T0, T1), progress=False, **options)
    return solution.rho[-1], {"steps": solution.accepted, "rejected": solution.rejected}


def run_peer(peer_grid, rho0):
    """Solve with py-pde's adaptive explicit Euler solver.

    Parameters
    ----------
    peer_grid : pde.CartesianGrid
        py-pde's grid, with the same cells as ours.
    rho0 : array
        Initial cell averages at t = T0.

    Returns
    -------
    rho : array
        The density at t = T1.
    info : dict
        ``steps`` and ``stepping_seconds``: the wall time py-pde spent stepping, after
        building (compiling) its stepper.
    """
    equation = pde.PDE({"c": "laplace(c**2)"})  # default boundary: no flux
    state = pde.ScalarField(peer_grid, rho0.copy())
    final, info = equation.solve(state, t_range=(T0, T1), solver="euler", adaptive=True, tracker=None,
                                 ret_info=True)
    hours, minutes, seconds = info["controller"]["solver_duration"].split(":")  # str of a timedelta
    stepping = 3600 * float(hours) + 60 * float(minutes) + float(seconds)
    return final.data, {"steps": info["solver"]["steps"], "stepping_seconds": stepping}


def timed(run, repeats, budget):
    """Time ``run()``: one warm-up call, then ``repeats`` timed calls.

    Parameters
    ----------
    run : callable
        Returns (density, info dict).
    repeats : int
        Number of timed calls after the warm-up.
    budget : float
        If the warm-up takes longer than this (seconds), the timed calls are skipped
        and the warm-up's time stands for the median.

    Returns
    -------
    first : float
        Seconds of the warm-up call (including any compilation).
    times : list of float
        Seconds of each timed call (the warm-up's alone if they were skipped).
    infos : list of dict
        The info of every call after the warm-up (of the warm-up if they were skipped).
    rho : array
        The density of the last call.
    """
    start = time.perf_counter()
    rho, info = run()
    first = time.perf_counter() - start
    if first > budget:
        return first, [first], [info], rho
    times, infos = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        rho, info = run()
        times.append(time.perf_counter() - start)
        infos.append(info)
    return first, times, infos, rho


def measure(n, name, repeats, implicit_dt, budget):
    """Time one solver on n² cells and score its final density.

    Parameters
    ----------
    n : int
        Cells per axis.
    name : {"explicit", "rkl2", "implicit", "py-pde"}
        The solver.
    repeats, budget
        As in :func:`timed`.
    implicit_dt : float
        The step of our implicit scheme.

    Returns
    -------
    dict
        One table row.
    """
    grid = Grid(BOX, n)
    peer_grid = pde.CartesianGrid(grid.bounds.tolist(), [n, n], periodic=False)
    if not all(np.allclose(a, b) for a, b in zip(peer_grid.axes_coords, grid.axes)):
        raise RuntimeError("py-pde's cell centres differ from ours")
    rho0 = grid.cell_averages(partial(EXACT, t=T0))
    exact = grid.cell_averages(partial(EXACT, t=T1))
    run = partial(run_peer, peer_grid, rho0) if name == "py-pde" else partial(run_ours, grid, rho0, name, implicit_dt)
    first, times, infos, rho = timed(run, repeats, budget)
    mass0 = grid.integrate(rho0)
    stepping = [info["stepping_seconds"] for info in infos if "stepping_seconds" in info]
    return {
        "n": n, "solver": name, "version": pde.__version__ if name == "py-pde" else None,
        "seconds": statistics.median(times), "run_seconds": times,
        "first_call_seconds": first,
        "stepping_seconds": statistics.median(stepping) if stepping else None,
        "steps": infos[-1]["steps"], "rejected": infos[-1].get("rejected"),
        "l1": grid.integrate(np.abs(rho - exact)),
        "mass_drift": abs(grid.integrate(rho) - mass0) / mass0,
        "min": float(rho.min()),
        "note": f"warm-up over {budget:g} s: one run, no median" if first > budget else "",
    }


def measure_peer_elsewhere(python, n, repeats, budget):
    """The py-pde row for n² cells, measured by ``python`` running this script with ``--peer-row``."""
    root = Path(__file__).resolve().parent.parent
    command = [python, __file__, "--peer-row", str(n), "--repeats", str(repeats), "--budget", str(budget)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)})
    if result.returncode != 0:
        raise RuntimeError(f"--peer-python {python} failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def best_of_ours(rows, n, peer_l1):
    """Our row to compare with py-pde at size n.

    The faster of our schemes among those whose L1 error is no larger than ``peer_l1``;
    if neither is, the more accurate one.
    """
    ours = [r for r in rows if r["n"] == n and r["solver"] != "py-pde"]
    accurate = [r for r in ours if r["l1"] <= peer_l1]
    return min(accurate, key=lambda r: r["seconds"]) if accurate else min(ours, key=lambda r: r["l1"])


def print_table(rows, repeats, implicit_dt, load, peer_version):
    """Print the rows as a markdown table under a line with the settings and ``load``,
    the 1-minute load average before the runs."""
    print(f"2D Barenblatt, m=2, C=0.1, box [-2,2]^2 with walls, t {T0:g} -> {T1:g}; "
          f"median of {repeats} run(s) after a warm-up; implicit dt = {implicit_dt:g}; "
          f"py-pde {peer_version}, {numba.get_num_threads()} Numba threads ({numba.threading_layer()}), "
          f"load average {load:.2f} at start")
    print("| cells | solver | median (s) | runs (s) | first call (s) | py-pde stepping (s) | steps | L1 error "
          "| mass drift | min | note |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        stepping = "" if r["stepping_seconds"] is None else f"{r['stepping_seconds']:.3f}"
        steps = str(r["steps"]) + (f" (+{r['rejected']} rejected)" if r["rejected"] else "")
        runs = ", ".join(f"{t:.3g}" for t in r["run_seconds"])
        print(f"| {r['n']}² | {r['solver']} | {r['seconds']:.3f} | {runs} | {r['first_call_seconds']:.3f} "
              f"| {stepping} | {steps} | {r['l1']:.3e} | {r['mass_drift']:.1e} | {r['min']:.2e} | {r['note']} |")


def main():
    """Parse the options, run every size and solver, print the table and the JSON line."""
    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64² and 128² with one repeat (a smoke test)")
    parser.add_argument("--sizes", type=int, nargs="+", help="cells per axis (default 64 128 256)")
    parser.add_argument("--repeats", type=int, help="timed runs after the warm-up (default 3)")
    parser.add_argument("--implicit-dt", type=float, default=0.1,
                        help="step of our implicit scheme (default 0.1: at 64² and 128² the L1 error "
                             "is within 10%% of that at dt = 0.02, being dominated by the first-order "
                             "upwind error in space)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds; a solver whose warm-up takes longer is not repeated (default 60)")
    parser.add_argument("--peer-python", help="run the py-pde rows with this interpreter (see above)")
    parser.add_argument("--peer-row", type=int, metavar="N",
                        help="only time py-pde on N² cells and print its row as JSON (what --peer-python runs)")
    args = parser.parse_args()
    resolve(args, sizes=([64, 128], [64, 128, 256]), repeats=(1, 3))
    if args.peer_row:
        print(json.dumps(measure(args.peer_row, "py-pde", args.repeats, args.implicit_dt, args.budget)))
        return
    sizes, repeats = args.sizes, args.repeats

    load = os.getloadavg()[0]  # other work on the machine slows the threaded kernels
    rows = [measure_peer_elsewhere(args.peer_python, n, repeats, args.budget)
            if name == "py-pde" and args.peer_python else measure(n, name, repeats, args.implicit_dt, args.budget)
            for n in sizes for name in SOLVERS]
    peer_version = next(r["version"] for r in rows if r["solver"] == "py-pde")
    print_table(rows, repeats, args.implicit_dt, load, peer_version)

    n = max(sizes)
    peer = next(r for r in rows if r["n"] == n and r["solver"] == "py-pde")
    best = best_of_ours(rows, n, peer["l1"])
    matched = min((r for r in rows if r["solver"] != "py-pde" and r["l1"] <= peer["l1"]),
                  key=lambda r: r["seconds"], default=None)
    print(json.dumps({
        "benchmark": "pme_vs_pypde", "n": n, "ours_scheme": best["solver"],
        "ours_seconds": best["seconds"], "peer_seconds": peer["seconds"],
        "ours_l1": best["l1"], "peer_l1": peer["l1"],
        "speedup": peer["seconds"] / best["seconds"],
        "ours_first_call_seconds": best["first_call_seconds"],
        "peer_first_call_seconds": peer["first_call_seconds"],
        "peer_stepping_seconds": peer["stepping_seconds"],
        "speedup_vs_peer_stepping": peer["stepping_seconds"] / best["seconds"],
        "matched_n": matched and matched["n"], "matched_scheme": matched and matched["solver"],
        "matched_seconds": matched and matched["seconds"], "matched_l1": matched and matched["l1"],
        "matched_speedup": matched and peer["seconds"] / matched["seconds"],
        "repeats": repeats, "implicit_dt": args.implicit_dt, "pypde_version": peer_version,
        "numba_threads": numba.get_num_threads(), "numba_threading_layer": numba.threading_layer(),
        "load_average_at_start": load,
        "rows": rows,
    }))


if __name__ == "__main__":
    main()
