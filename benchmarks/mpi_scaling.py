"""The distributed engine on 1 against 2 MPI ranks: the mesh solver (vertices split) and the
network PDE on a grid (data split).

- ``mesh``: the 2D Barenblatt solution (m = 2, C = 0.02) on the unit disk (meshes/, level 4
  by default: about 24000 vertices) from t = 1 to ``--end`` (1.2) with explicit steps; each
  rank owns part of the vertices, split by ``--partition`` (:data:`solver.fem.PARTITIONS`:
  ``bisection``, the default, or DOLFINx's ``graph`` partitioner).
- ``network``: the ``tanh-teacher`` preset with ``--n-data`` (10⁵) data points on a
  ``--cells``² (64²) grid from t = 0 to ``--network-end`` (2, the preset's horizon: 7 steps);
  every rank holds the grid, the data set is split over the ranks
  (:meth:`solver.energies.NetworkRisk.on_ranks`), F' on the cells summed over them in one
  allreduce per evaluation.

Each measurement is one launch of ``mpirun -n 1`` or ``mpirun -n 2`` (one Numba thread per
rank, so the two use one and two cores) that solves once to warm up (Numba, tables) and
then times ``--solves`` (3) solves, its figure the median of them; the launches alternate
1, 2, 1, 2, … ``--repeats`` times (5) per case, so a change of the machine's load hits both.
A 2-rank launch also solves the whole problem on each rank alone after each timed solve,
both ranks at once (the peer at the same moment): the two cores' speeds then, which on a
virtual machine can differ from launch to launch and from each other (two ranks that wait
for each other go at the slower one's pace).
The mesh launches also time the floor of this design's step: the solve's accepted steps
replayed with nothing but what a step must do (the two edge kernels, the stages' NumPy
passes, four communications: the two ghost exchanges, the step limits' Allgather and one
Allgather of the new state's energy, mass and minima; the solve's checks, its fifth
communication, the energy's own reduction, and its Python around the calls left out). Its
densities, energies, masses and minima are checked against the solve's, bit for bit, and the
solve's steps against its step limits (the launch fails otherwise). Its speed-up is what the
solve's could reach with no cost outside the kernels, the NumPy passes and those four
communications.
Prints, per case, the median and the spread (min–max) of the launches' figures and of the
per-pair speed-ups, and the fastest solve of each rank count; the answers of 1 and 2 ranks
are checked to agree to 1e-10. The last line is JSON with ``mesh_speedup`` and
``network_speedup`` = median figure on 1 rank / median figure on 2 ranks (targets on an idle
machine with 2 cores: ≥ 1.6 and ≥ 1.7), ``*_best_speedup`` = fastest solve on 1 rank /
fastest on 2 (the machine's load only ever slows a solve, and stalls two ranks that wait for
each other more than one, so the best times are the code's own, the medians what a user
meets), ``*_same_moment_speedup`` = the mean of the two ranks' solves alone over the 2-rank
solve just before them (median over the solves of a launch, then over the launches) and
``*_core_spread`` = the slower rank's solve alone over the faster's (likewise);
``mesh_floor_speedup`` = the floor's median on 1 rank / on 2.

Run: ``.venv/bin/python benchmarks/mpi_scaling.py [--quick] [--case mesh|network|both]`` (the
environment's own ``mpirun``, with the flags its MPI needs: :func:`solver.mpi.mpirun_command`).
"""

import argparse
import json
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from quick import resolve

from solver.fem import DEFAULT_PARTITION, PARTITIONS
from solver.mpi import mpirun_command

ROOT = Path(__file__).resolve().parent.parent
TIMING = """
seconds, alone_seconds = [], []
for _ in range(int(sys.argv[-1])):
    comm.Barrier()
    start = time.perf_counter()
    solution = run()
    seconds.append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
    if comm.size > 1:  # the whole problem on each rank alone, all at once: each core's speed now
        comm.Barrier()
        start = time.perf_counter()
        alone()
        alone_seconds.append(comm.allgather(time.perf_counter() - start))
"""
MESH = """
import json, sys, time, warnings
import numpy as np
from mpi4py import MPI
from solver import PorousMedium, fem, solve, tune_process
from solver.analytic import barenblatt
tune_process()
with warnings.catch_warnings():  # what fem.read says of the mesh's quality, once per rank
    warnings.simplefilter("ignore", UserWarning)
    disk = fem.read(sys.argv[1], partition=sys.argv[3])
    comm, end = disk.comm, float(sys.argv[2])
    whole = fem.read(sys.argv[1], comm=MPI.COMM_SELF) if comm.size > 1 else disk  # the whole mesh on this rank alone
run = lambda mesh=disk: solve(PorousMedium(2), mesh, barenblatt(mesh.points, 1.0, C=0.02), (1.0, end))
alone = lambda: run(whole)
solution = run()
if comm.size > 1:  # timed only beside a 2-rank solve
    alone()
""" + TIMING + """
def floor(steps):  # the solve's steps with only what a step must do: see the module doc
    slot_start, slot_column, slot_transmissibility, stencil_start, stencil = disk._kernel_rows
    kernel_rows = (slot_start, slot_column, slot_transmissibility, disk.weights, stencil_start, stencil)
    rho = barenblatt(disk.points, 1.0, C=0.02)
    xi = 2.0 * rho  # F' of PorousMedium(2)
    limits, summaries = [], []
    for dt in steps:
        rate = np.empty(disk.owned)
        top_outflow = fem.edge_rate_and_outflow(*kernel_rows, *disk.neighbourhood(rho, xi), rate,
                                                np.empty(disk.owned))
        top_outflow, diffusivity = disk._each_rank([top_outflow, 2.0 * rho.max()]).max(axis=0)
        limits.append(0.9 * min(1.0 / top_outflow, 1.0 / (diffusivity * disk.max_connectivity)))
        stage = dt * rate
        stage += rho
        stage_minimum = stage.min()
        rate_stage = np.empty(disk.owned)
        fem.edge_rate(*kernel_rows, *disk.neighbourhood(stage, 2.0 * stage), rate_stage)
        new = dt * rate_stage
        new += stage
        new += rho
        new *= 0.5
        xi = 2.0 * new
        ranks = disk._each_rank([fem.weighted_sum(new * new, disk.weights), fem.weighted_sum(new, disk.weights),
                                 new.min(), stage_minimum])
        summaries.append((*ranks[:, :2].sum(axis=0), *ranks[:, 2:].min(axis=0)))  # F, mass, min ρ, min ρ¹
        rho = new
    return rho, limits, summaries

steps = solution.history["dt"][1:]
rho, limits, summaries = floor(steps)
summaries, history = np.array(summaries), solution.history
same = (np.array_equal(rho, solution.rho[-1]) and np.all(steps <= limits) and np.all(summaries[:, 3] >= 0)
        and np.array_equal(summaries[:, :3], np.column_stack([history[key][1:] for key in ("energy", "mass", "min")])))
if not all(comm.allgather(same)):  # every rank stops: an error on one alone would leave the others waiting
    raise SystemExit("mpi_scaling: the floor's densities, energies, masses or minima are not the solve's bit for "
                     "bit, or a step is over the floor's limit or made a negative stage")
floor_seconds = []
for _ in range(int(sys.argv[-1])):
    comm.Barrier()
    start = time.perf_counter()
    floor(steps)
    floor_seconds.append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
points, rho = disk.gather(solution.rho[-1])
vertices = disk.vertices  # collective: every rank asks
if comm.rank == 0:
    np.save(sys.argv[4], rho)
    print(json.dumps({"seconds": seconds, "alone": alone_seconds, "floor": floor_seconds, "steps": solution.accepted,
                      "size": vertices}))
"""
NETWORK = """
import json, sys, time
import numpy as np
from mpi4py import MPI
from solver import problems, solve, tune_process
tune_process()
comm = MPI.COMM_WORLD
cells, n_data, end = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
problem = problems.get("tanh-teacher", cells=cells, n_data=n_data)
energy = problem.energy.on_ranks(comm)
run = lambda end=end, energy=energy: solve(energy, problem.grid, problem.rho0, (0.0, end))
alone = lambda end=end: run(end, problem.energy)  # the whole data set on this rank alone
run(end / 10)  # Numba and the per-axis tables (kept per grid)
if comm.size > 1:  # timed only beside a 2-rank solve
    alone(end / 10)
""" + TIMING + """
if comm.rank == 0:
    np.save(sys.argv[4], solution.rho[-1])
    print(json.dumps({"seconds": seconds, "alone": alone_seconds, "steps": solution.accepted, "size": n_data}))
"""


def launch(ranks, script, *arguments):
    """The JSON report of one mpirun of ``script`` on ``ranks`` ranks."""
    command = mpirun_command(ranks, sys.executable, "-c", script, *arguments)
    environment = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        raise SystemExit(f"mpi_scaling: the {ranks}-rank launch failed (exit status {result.returncode}):\n"
                         f"{result.stderr.strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(name, script, arguments, repeats, solves, folder):
    """``repeats`` alternating launches on 1 and 2 ranks, each timing ``solves`` solves: the
    reports and the answers' largest difference relative to the largest value."""
    reports = {1: [], 2: []}
    for _ in range(repeats):
        for ranks in (1, 2):
            out = Path(folder) / f"{name}{ranks}.npy"
            reports[ranks].append(launch(ranks, script, *arguments, out, solves))
    one, two = np.load(Path(folder) / f"{name}1.npy"), np.load(Path(folder) / f"{name}2.npy")
    return reports, float(np.abs(one - two).max() / np.abs(one).max())


def at_the_same_moment(reports):
    """Per 2-rank launch (``reports``), the medians over its solves of the mean of the ranks'
    solves alone over the 2-rank solve before them, and of the slower rank's solve alone over
    the faster's: two lists, a value per launch."""
    speedups, spreads = [], []
    for report in reports:
        solves = list(zip(report["alone"], report["seconds"]))
        speedups.append(statistics.median(statistics.mean(alone) / together for alone, together in solves))
        spreads.append(statistics.median(max(alone) / min(alone) for alone, _ in solves))
    return speedups, spreads


def summary(name, what, reports, difference):
    """Print the table of one case; return its JSON fields."""
    solves = {ranks: [report["seconds"] for report in runs] for ranks, runs in reports.items()}
    times = {ranks: [statistics.median(seconds) for seconds in launches] for ranks, launches in solves.items()}
    best = {ranks: min(min(seconds) for seconds in launches) for ranks, launches in solves.items()}
    pairs = [a / b for a, b in zip(times[1], times[2])]
    speedup = statistics.median(times[1]) / statistics.median(times[2])
    same_moment, core_spread = at_the_same_moment(reports[2])
    print(f"\n{what}, {reports[1][0]['steps']} steps; {len(pairs)} alternating launches per rank count, each the "
          f"median of {len(solves[1][0])} solves; answers agree to {difference:.1e} (relative)")
    print("| ranks | median (s) | min–max (s) | speed-up (median) | per-pair speed-ups min–max | fastest solve (s) | "
          "speed-up (fastest) |")
    print("|---|---|---|---|---|---|---|")
    for ranks, seconds in times.items():
        ratio = f"{speedup:.2f}" if ranks == 2 else "1"
        spread = f"{min(pairs):.2f}–{max(pairs):.2f}" if ranks == 2 else ""
        fastest = f"{best[1] / best[2]:.2f}" if ranks == 2 else "1"
        print(f"| {ranks} | {statistics.median(seconds):.3f} | {min(seconds):.3f}–{max(seconds):.3f} | {ratio} | "
              f"{spread} | {best[ranks]:.3f} | {fastest} |")
    print(f"At the same moment (each 2-rank solve followed by the whole problem on each rank alone, both at once): "
          f"speed-up over their mean {statistics.median(same_moment):.2f} ({min(same_moment):.2f}–"
          f"{max(same_moment):.2f} over the launches), the slower core's time over the faster's "
          f"{statistics.median(core_spread):.2f} ({min(core_spread):.2f}–{max(core_spread):.2f})")
    if "floor" in reports[1][0]:
        floors = {ranks: [statistics.median(report["floor"]) for report in runs] for ranks, runs in reports.items()}
        floor_pairs = [a / b for a, b in zip(floors[1], floors[2])]
        floor_speedup = statistics.median(floors[1]) / statistics.median(floors[2])
        print(f"The floor (the solve's steps with only the kernels, the stages' NumPy passes, the two exchanges "
              f"and two Allgathers; the same numbers): {statistics.median(floors[1]):.3f} s on 1 rank, "
              f"{statistics.median(floors[2]):.3f} s on 2: speed-up {floor_speedup:.2f} (pairs "
              f"{min(floor_pairs):.2f}–{max(floor_pairs):.2f})")
        fields = {f"{name}_floor_speedup": floor_speedup,
                  **{f"{name}_floor_seconds_{ranks}": [report["floor"] for report in runs]
                     for ranks, runs in reports.items()}}
    else:
        fields = {}
    if difference > 1e-10:
        raise SystemExit(f"{name}: the answers on 1 and 2 ranks differ by {difference:.3g} (relative), above 1e-10")
    return fields | {f"{name}_speedup": speedup, f"{name}_best_speedup": best[1] / best[2],
                     f"{name}_same_moment_speedup": statistics.median(same_moment),
                     f"{name}_core_spread": statistics.median(core_spread),
                     f"{name}_alone_seconds_2": [report["alone"] for report in reports[2]],
                     f"{name}_seconds_1": solves[1], f"{name}_seconds_2": solves[2],
                     f"{name}_pair_speedups": pairs, f"{name}_steps": reports[1][0]["steps"],
                     f"{name}_max_difference": difference}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs, one launch per rank count")
    parser.add_argument("--case", choices=("mesh", "network", "both"), default="both")
    parser.add_argument("--level", type=int, help="disk mesh level (default 4, quick 2)")
    parser.add_argument("--end", type=float, help="mesh: end time (default 1.2: about 460 steps; quick 1.05)")
    parser.add_argument("--partition", choices=PARTITIONS, default=DEFAULT_PARTITION,
                        help=f"mesh: how the cells are split over the ranks (solver.fem.PARTITIONS; default "
                             f"{DEFAULT_PARTITION})")
    parser.add_argument("--cells", type=int, help="network: cells per axis (default 64, quick 16)")
    parser.add_argument("--n-data", type=int, help="network: data points (default 10^5, quick 4000)")
    parser.add_argument("--network-end", type=float, help="network: end time (default 2: 7 steps; quick 0.5)")
    parser.add_argument("--repeats", type=int, help="alternating launches per rank count (default 5, quick 1)")
    parser.add_argument("--solves", type=int, help="timed solves per launch (default 3, quick 1)")
    args = parser.parse_args()
    resolve(args, level=(2, 4), end=(1.05, 1.2), cells=(16, 64), n_data=(4000, 100_000), network_end=(0.5, 2.0),
            repeats=(1, 5), solves=(1, 3))
    if args.repeats < 1 or args.solves < 1:
        parser.error(f"--repeats and --solves must be at least 1, got {args.repeats} and {args.solves}")
    fields = {"benchmark": "mpi_scaling", "repeats": args.repeats, "solves": args.solves}
    with tempfile.TemporaryDirectory() as folder:
        if args.case in ("mesh", "both"):
            mesh = runpy.run_path(str(ROOT / "meshes" / "generate.py"))["path"]("disk", args.level)
            reports, difference = measure("mesh", MESH, (mesh, args.end, args.partition), args.repeats, args.solves,
                                          folder)
            fields.update(summary("mesh", f"Barenblatt on the disk, level {args.level} ({reports[1][0]['size']} "
                                  f"vertices, partition {args.partition}), t 1 -> {args.end}", reports, difference),
                          vertices=reports[1][0]["size"], partition=args.partition)
        if args.case in ("network", "both"):
            reports, difference = measure("network", NETWORK, (args.cells, args.n_data, args.network_end),
                                          args.repeats, args.solves, folder)
            fields.update(summary("network", f"tanh-teacher, {args.cells}² cells, {args.n_data} data points, t 0 -> "
                                  f"{args.network_end}", reports, difference), cells=args.cells, n_data=args.n_data)
    print(json.dumps(fields))


if __name__ == "__main__":
    main()
