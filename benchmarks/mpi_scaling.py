"""The mesh solver on 1 against 2 MPI ranks: a fine disk mesh, the porous-medium equation.

The 2D Barenblatt solution (m = 2, C = 0.02) on the unit disk (meshes/, level 4 by
default: about 24000 vertices) from t = 1 to ``--end`` (1.2) with explicit steps, run by
``mpirun -n 1`` and ``mpirun -n 2`` (one Numba thread per rank, so the two runs use one
and two cores). Each run reports its ``solve`` wall time (median of ``--repeats`` after
a warm-up); the answers are checked to agree to 1e-10. Prints a table, then a JSON line
with ``speedup`` = time on 1 rank / time on 2 ranks (target ≥ 1.6).

Run: ``.venv/bin/python benchmarks/mpi_scaling.py [--quick]`` (the environment's own
``mpirun``, with the flags its MPI needs: :func:`solver.mpi.mpirun_command`).
"""

import argparse
import json
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from solver.mpi import mpirun_command

ROOT = Path(__file__).resolve().parent.parent
RUN = """
import json, statistics, sys, time, warnings
import numpy as np
from solver import PorousMedium, fem, solve, tune_process
from solver.analytic import barenblatt
tune_process()
warnings.simplefilter("ignore", UserWarning)
disk = fem.read(sys.argv[1])
end, repeats = float(sys.argv[2]), int(sys.argv[3])
run = lambda: solve(PorousMedium(2), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, end))
solution = run()
times = []
for _ in range(repeats):
    disk.comm.Barrier()
    start = time.perf_counter()
    solution = run()
    times.append(disk.comm.allreduce(time.perf_counter() - start, op=__import__("mpi4py").MPI.MAX))
points, rho = disk.gather(solution.rho[-1])
vertices = disk.vertices  # collective: every rank asks
if disk.comm.rank == 0:
    np.save(sys.argv[4], rho)
    print(json.dumps({"seconds": statistics.median(times), "steps": solution.accepted, "vertices": vertices}))
"""


def run(ranks, mesh, end, repeats, out):
    """The JSON report of one mpirun of RUN."""
    command = mpirun_command(ranks, sys.executable, "-c", RUN, mesh, end, repeats, out)
    environment = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=environment)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="level 2, a short run, one repeat")
    parser.add_argument("--level", type=int, default=4, help="disk mesh level (default 4)")
    parser.add_argument("--end", type=float, default=1.2, help="end time (default 1.2: about 460 steps)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    level, repeats = (2, 1) if args.quick else (args.level, args.repeats)
    mesh = runpy.run_path(str(ROOT / "meshes" / "generate.py"))["path"]("disk", level)
    with tempfile.TemporaryDirectory() as folder:
        reports = {n: run(n, mesh, args.end, repeats, Path(folder) / f"rho{n}.npy") for n in (1, 2)}
        difference = float(np.abs(np.load(Path(folder) / "rho1.npy") - np.load(Path(folder) / "rho2.npy")).max())
    print(f"Barenblatt on the disk, level {level} ({reports[1]['vertices']} vertices), t 1 -> {args.end}, "
          f"{reports[1]['steps']} steps; one Numba thread per rank")
    print("| ranks | median (s) | speed-up |")
    print("|---|---|---|")
    for n, report in reports.items():
        print(f"| {n} | {report['seconds']:.3f} | {reports[1]['seconds'] / report['seconds']:.2f} |")
    print(json.dumps({"benchmark": "mpi_scaling", "vertices": reports[1]["vertices"], "steps": reports[1]["steps"],
                      "seconds_1": reports[1]["seconds"], "seconds_2": reports[2]["seconds"],
                      "speedup": reports[1]["seconds"] / reports[2]["seconds"], "max_difference": difference}))


if __name__ == "__main__":
    main()
