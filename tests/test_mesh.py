"""The DOLFINx mesh solver: the edge kernel against NumPy, the mesh files, exact solutions
on the disk, grid against mesh, bump networks on the disk, MPI, output and bad input."""

import json
import os
import subprocess
import sys
import warnings
from functools import partial

import numpy as np
import pytest
from conftest import MESHES, ROOT, assert_invariants, cotangent_weights, observed_order, require, serial_and_parallel

from solver import Entropy, Grid, PorousMedium, Potential, solve
from solver.analytic import barenblatt, gaussian, ornstein_uhlenbeck
from solver.domains import Ball, Box
from solver.energies import BumpLimitRisk, BumpRisk
from solver.mpi import mpirun_command
from solver.particles import simulate
from solver.timeloop import BackwardEuler


def mesh(fem, name, level):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the 3D ball is not Delaunay: its own test
        return fem.read(MESHES["path"](name, level))


def every_edge(mesh, fem, rho, xi):
    """(rate, outflow) with every edge computed (:func:`fem.edge_rate_reference`), serial."""
    return fem.edge_rate_reference(mesh.indptr, mesh.columns, mesh.transmissibility, rho, xi,
                                   mesh.weights)


@pytest.mark.parametrize("name, radii", [("disk", [1.0]), ("annulus", [0.5, 1.0]), ("ball", [1.0]), ("sphere", [])])
def test_the_boundary_vertices_are_those_on_the_boundary(fem, name, radii):
    """``on_boundary``: the vertices at the boundary's radii; none on the closed sphere (what
    the run summary checks an exact profile against)."""
    domain = mesh(fem, name, 0)
    distance = np.linalg.norm(domain.points, axis=1)
    np.testing.assert_array_equal(domain.on_boundary, np.isclose(distance[:, None], radii).any(axis=1))
    assert domain.on_boundary.sum() >= 10 * len(radii)


def test_edge_kernel_matches_numpy(fem, rng):
    disk = mesh(fem, "disk", 1)
    rho, xi = np.maximum(rng.random(disk.shape) - 0.3, 0.0), rng.normal(size=disk.shape)  # some vacuum
    rate, top_outflow = disk.rate_and_outflow(rho, xi)
    reference_rate, reference_outflow = every_edge(disk, fem, rho, xi)
    np.testing.assert_array_equal(rate, reference_rate)  # the same operations in the same order
    np.testing.assert_array_equal(disk.rate(rho, xi), reference_rate)  # the kernel without the outflow
    assert top_outflow == reference_outflow.max() > 0
    assert abs(disk.integrate(rate)) < 1e-12 * disk.integrate(np.abs(rate))  # fluxes cancel
    assert disk.integrate(rate * xi) <= 0  # dissipation


@pytest.mark.parametrize("name, level", [("square", 1), ("disk", 1), ("lshape", 1), ("ball", 0), ("sphere", 0)])
@pytest.mark.parametrize("where", ["middle", "boundary"])
def test_edge_kernel_with_compact_support(fem, rng, name, level, where):
    """Mass in a ball amid empty vertices (the kernel skips the blocks of rows whose
    stencil is empty): around the vertex nearest the middle of the mesh's bounding box, or
    around one of its vertices of largest x, on the boundary (on the sphere: two caps).
    The rate and the largest outflow are those of every edge bit for bit, the rate zero
    beyond one edge from the mass, and both zero for an empty density."""
    m = mesh(fem, name, level)
    low, high = m.points.min(axis=0), m.points.max(axis=0)
    centre = m.points[np.argmin(np.linalg.norm(m.points - (low + high) / 2, axis=1)) if where == "middle"
                      else np.argmax(m.points[:, 0])]
    radius = 0.3 * np.max(high - low)
    distance = np.linalg.norm(m.points - centre, axis=1)
    rho = (0.1 + rng.random(m.shape)) * (distance < radius)
    xi = rng.normal(size=m.shape)
    rate, top_outflow = m.rate_and_outflow(rho, xi, np.full(m.shape, np.nan))
    reference_rate, reference_outflow = every_edge(m, fem, rho, xi)
    np.testing.assert_array_equal(rate, reference_rate)
    np.testing.assert_array_equal(m.rate(rho, xi, out=np.full(m.shape, np.nan)), reference_rate)
    assert top_outflow == reference_outflow.max() > 0
    rows = np.repeat(np.arange(m.owned), np.diff(m.indptr))  # serial: a column is a vertex's own index
    longest_edge = np.linalg.norm(m.points[rows] - m.points[m.columns], axis=1).max()
    assert 0 < np.count_nonzero(rho) < m.owned / 2 and not np.any(rate[distance > radius + longest_edge])
    empty_rate, empty_outflow = m.rate_and_outflow(np.zeros(m.shape), xi, np.full(m.shape, np.nan))
    assert not np.any(empty_rate) and empty_outflow == 0
    assert not np.any(m.rate(np.zeros(m.shape), xi, out=np.full(m.shape, np.nan)))
    for wrong in (np.empty(m.owned - 1), np.empty(m.shape, dtype=np.float32), np.empty(2 * m.owned)[::2]):
        with pytest.raises(ValueError, match="C-contiguous float array"):  # the kernels would write past it
            m.rate(rho, xi, out=wrong)
        with pytest.raises(ValueError, match="C-contiguous float array"):
            m.rate_and_outflow(rho, xi, wrong)
    for inputs in (rho, xi):  # the kernels assume their output overlaps no input
        with pytest.raises(ValueError, match="shares memory"):
            m.rate(rho, xi, out=inputs)
        with pytest.raises(ValueError, match="shares memory"):
            m.rate_and_outflow(rho, xi, inputs)


def test_z_order_on_a_lattice_is_the_morton_order(fem):
    """On the 4 × 4 lattice with 2 bits a coordinate: the argsort of the Morton code written
    out, x's bits at the even positions and y's at the odd (the 2 × 2 blocks in Z, recursively)."""
    i, j = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    points = np.stack([i.ravel(), j.ravel()], axis=1)
    morton = [sum(((x >> b) & 1) << (2 * b) | ((y >> b) & 1) << (2 * b + 1) for b in range(2)) for x, y in points]
    np.testing.assert_array_equal(fem.z_order(points.astype(float), bits=2), np.argsort(morton, kind="stable"))


def test_kernel_rows_hold_each_row_in_csr_order(fem):
    """kernel_rows' slots: the k-th slot of a row is its k-th CSR entry (column and T_ij),
    then, up to its block's width, the row itself with T = 0; the padding is small."""
    m = mesh(fem, "disk", 1)
    slot_start, slot_column, slot_transmissibility, _, _ = fem.kernel_rows(m.indptr, m.columns, m.transmissibility)
    slot_start = slot_start.astype(np.int64)  # uint64 + int64 is float64 in NumPy 2
    for i in range(m.owned):
        block, lane = divmod(i, fem.BLOCK_ROWS)
        width = int(slot_start[block + 1] - slot_start[block]) // fem.BLOCK_ROWS
        slots = slot_start[block] + np.arange(width) * fem.BLOCK_ROWS + lane
        row = slice(m.indptr[i], m.indptr[i + 1])
        degree = row.stop - row.start
        assert width >= degree
        np.testing.assert_array_equal(slot_column[slots[:degree]], m.columns[row])
        np.testing.assert_array_equal(slot_transmissibility[slots[:degree]], m.transmissibility[row])
        assert np.all(slot_column[slots[degree:]] == i) and not np.any(slot_transmissibility[slots[degree:]])
    assert slot_start[-1] == slot_column.size < 1.25 * m.columns.size


def test_edge_kernels_vectorize(fem):
    """The flux loop over a block's rows compiles to vector gathers: LLVM vectorized it (the
    kernels are written for that, see solver.fem; a Numba that withheld ``noalias`` from
    their arrays again would fail here, and the kernels would run about a third slower)."""
    from llvmlite import binding
    from numba import njit

    if not binding.get_host_cpu_features().get("avx2"):
        pytest.skip("gathers need AVX2")
    m = mesh(fem, "disk", 0)
    rho, xi = np.ones(m.shape), np.arange(m.owned, dtype=float)
    arguments = m._kernel_arguments(rho, xi)
    stage = (rho.copy(), rho.copy(), rho.copy(), np.ones(4), np.empty(m.owned))
    for kernel, rest in ((fem.edge_rate, (np.empty(m.owned),)),
                         (fem.edge_rate_and_outflow, (np.empty(m.owned), np.empty(m.owned))),
                         (fem.edge_rkl2_stage, stage)):
        uncached = njit(**kernel.targetoptions)(kernel.py_func)  # a cached kernel keeps no LLVM IR to inspect
        uncached(*arguments, *rest)
        assert "llvm.masked.gather" in "".join(uncached.inspect_llvm().values()), kernel.__name__


def test_edge_kernels_flush_subnormals_and_leave_the_mode_as_they_found_it(fem, rng):
    """On x86-64 the kernels read a subnormal ρ as 0 (the rate and outflow of the flushed
    density, bit for bit, which differ from the unflushed reference), and afterwards NumPy
    and a parallel Numba loop still make subnormal numbers (the mode is restored)."""
    from numba import njit, prange

    from solver.kernels import subnormals

    if not subnormals.FLUSHES:
        pytest.skip("flush-to-zero is set on x86-64 only")

    @njit(parallel=True)
    def products(x, y):
        out = np.empty_like(x)
        for i in prange(x.size):
            out[i] = x[i] * y[i]
        return out

    m = mesh(fem, "disk", 1)
    rho = np.where(rng.random(m.shape) < 0.5, 0.5 + rng.random(m.shape), 0.0)
    subnormal = np.where((rho == 0) & (rng.random(m.shape) < 0.3), 5e-320, rho)
    xi = rng.normal(size=m.shape)
    rate, top_outflow = m.rate_and_outflow(subnormal, xi)
    flushed_rate, flushed_outflow = every_edge(m, fem, rho, xi)
    np.testing.assert_array_equal(rate, flushed_rate)
    np.testing.assert_array_equal(m.rate(subnormal, xi), flushed_rate)
    assert top_outflow == flushed_outflow.max()
    assert not np.array_equal(every_edge(m, fem, subnormal, xi)[0], flushed_rate)  # the test data has subnormals
    tiny = np.full(64, 1e-300)
    assert np.all(tiny * 1e-10 > 0) and np.all(products(tiny, np.full(64, 1e-10)) > 0)


def test_outflow_of_a_tiny_density_is_finite(fem):
    """ρ = 1e-307 at one vertex, far above its empty neighbours (ξ = 10⁶, so that its fluxes
    are normal numbers): m_i ρ_i is subnormal (flushed to 0 in the kernel), yet the
    outflow, leaving_i/ρ_i/m_i, is finite and the reference's (a step limit of 0 had
    stopped a run)."""
    m = mesh(fem, "disk", 1)
    vertex = int(np.argmin(m.weights))
    assert m.weights[vertex] * 1e-307 < np.finfo(float).tiny
    rho, xi = np.zeros(m.shape), np.zeros(m.shape)
    rho[vertex], xi[vertex] = 1e-307, 1e6
    _, top_outflow = m.rate_and_outflow(rho, xi)
    assert np.isfinite(top_outflow) and top_outflow == every_edge(m, fem, rho, xi)[1].max() > 0


@pytest.mark.parametrize("name", ["square", "sphere"])
def test_edge_kernel_reaches_into_empty_blocks(fem, name):
    """One vertex with mass, on the edge of its block of rows, and higher ξ: its
    neighbours in other blocks, blocks without mass of their own, receive it (a block's
    stencil holds its rows' neighbours, not its rows only)."""
    m = mesh(fem, name, 0)
    block = np.arange(m.owned) // fem.BLOCK_ROWS
    rows = np.repeat(np.arange(m.owned), np.diff(m.indptr))  # serial: a column is a vertex's own index
    vertex = rows[block[rows] != block[m.columns]][0]
    rho, xi = np.zeros(m.shape), np.zeros(m.shape)
    rho[vertex], xi[vertex] = 1.0, 1.0
    rate = m.rate(rho, xi)
    np.testing.assert_array_equal(rate, every_edge(m, fem, rho, xi)[0])
    outside = m.columns[(rows == vertex) & (block[m.columns] != block[vertex])]
    assert len(outside) and np.all(rate[outside] > 0) and rate[vertex] < 0


def test_edge_kernel_euler_step_at_its_limit_stays_positive(fem, rng):
    """Vacuum next to mass and a steep drift: the limited mobility's outflow bound holds."""
    disk = mesh(fem, "disk", 1)
    rho = np.where(rng.random(disk.shape) < 0.5, 0.0, rng.random(disk.shape) ** 4)
    xi = 10 * rng.normal(size=disk.shape)
    rate, top_outflow = disk.rate_and_outflow(rho, xi)
    limit = 1 / top_outflow
    assert np.isfinite(limit) and (rho + limit * rate).min() >= -1e-14 * rho.max()
    assert (rho + 1.5 * limit * rate).min() < 0  # the bound is not loose by much


def assert_jacobian_is_the_derivative(disk, energy, rho, dt, eps):
    """BackwardEuler's Newton matrix I − dt ∂L/∂ρ against central differences of the residual
    ρ − dt L(ρ), column by column."""
    def residual(r):
        return r - dt * disk.rate(r, energy.first_variation(r, disk))

    jacobian = BackwardEuler(energy, disk, dt).jacobian(rho, energy.first_variation(rho, disk), dt).toarray()
    columns = [(residual(rho + eps * e) - residual(rho - eps * e)) / (2 * eps) for e in np.eye(disk.owned)]
    np.testing.assert_allclose(jacobian, np.array(columns).T, atol=1e-6 * np.abs(jacobian).max())


def test_implicit_jacobian_matches_finite_differences(fem, rng):
    disk = mesh(fem, "disk", 0)
    energy = PorousMedium(2) + Potential(lambda x: x[..., 0])
    rho = 0.5 + rng.random(disk.shape)
    rho[:5] = 1e-3  # nearly empty vertices, downwind of their neighbours: no limited edge (the next test)
    assert_jacobian_is_the_derivative(disk, energy, rho, 0.01, eps=1e-7)


def test_implicit_jacobian_on_limited_edges_matches_finite_differences(fem):
    """The Newton Jacobian where the mobility is limited (M = 2ρ_up: a nearly empty vertex
    upwind of a full one). The test above has none: ξ = 2ρ + x never makes its 1e-3 vertices
    upwind. A steep drift (slope 20) does; this checks there are many, then the derivative."""
    disk = mesh(fem, "disk", 0)
    rng = np.random.default_rng(5)
    energy, dt = PorousMedium(2) + Potential(lambda x: 20 * x[..., 0]), 0.01
    rho = 1 + 0.5 * rng.random(disk.shape)  # full vertices within a ratio 1.5: centred between them
    rho[rng.random(disk.shape) < 0.3] = 1e-3
    xi = energy.first_variation(rho, disk)
    i, j = disk._rows, disk.columns
    drop = xi[i] - xi[j]
    upwind, downwind = np.where(drop > 0, rho[i], rho[j]), np.where(drop > 0, rho[j], rho[i])
    limited = 0.5 * (upwind + downwind) > 2 * upwind
    assert np.count_nonzero(limited & (disk.transmissibility > 0)) >= 20
    assert np.all(np.abs(0.5 * (upwind + downwind) - 2 * upwind) > 0.1 * (upwind + downwind))  # none at M's kink
    assert np.all(np.abs(drop) > 1e-5)  # nor at a change of the upwind end
    assert_jacobian_is_the_derivative(disk, energy, rho, dt, eps=1e-8)


@pytest.mark.parametrize("name", ["disk", "square", "annulus", "lshape"])
def test_committed_meshes_are_delaunay(fem, name):
    for level in (0, 1):
        m = fem.read(ROOT / "meshes" / f"{name}_{level}.msh")
        assert m.non_delaunay_edges == 0 and m.dim == 2
        corners = m.points[m.cells]
        edges = corners[:, 1:] - corners[:, :1]
        area = 0.5 * np.abs(edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0]).sum()
        assert m.integrate(np.ones(m.shape)) == pytest.approx(area, rel=1e-12)  # lumped masses: the area


@pytest.mark.parametrize("name", ["disk", "lshape"])
def test_parabolic_limit_from_the_cotangent_formula(fem, name):
    """The forward-Euler limit of D Δρ, 1/(D max_i Σ_j T_ij/m_i), against the P1 formulas
    written out: T_ij = ½(cot α + cot β) (the angles opposite edge ij), m_i a third of its
    triangles' areas; with ξ = 0 there is no transport limit."""
    m = mesh(fem, name, 1)
    corners = m.points[m.cells]
    area = np.zeros(m.vertices)
    u, v = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    doubled = np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
    np.add.at(area, m.cells, np.repeat(doubled[:, None] / 6, 3, axis=1))
    np.testing.assert_allclose(m.weights, area, rtol=1e-12)
    connectivity = np.zeros(m.vertices)  # Σ_j T_ij: each edge's weight at both its ends
    for (i, j), weight in cotangent_weights(np.column_stack([m.points, np.zeros(m.vertices)]), m.cells).items():
        connectivity[[i, j]] += weight
    diffusivity = 0.7
    transport, parabolic = m.step_limits(np.ones(m.shape), np.zeros(m.shape), np.full(m.shape, diffusivity))
    assert transport == np.inf
    assert parabolic == pytest.approx(1 / (diffusivity * np.max(connectivity / area)), rel=1e-10)


@pytest.mark.slow
def test_barenblatt_on_the_disk(fem):
    """m = 2, C = 0.02 (the support stays inside the unit disk), t from 1 to 2."""
    sizes, errors = (0.1, 0.05, 0.025), []
    for level in (1, 2, 3):
        disk = mesh(fem, "disk", level)
        solution = solve(PorousMedium(2), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, 2.0))
        assert_invariants(solution)
        errors.append(disk.integrate(np.abs(solution.rho[-1] - barenblatt(disk.points, 2.0, C=0.02))))
    # centred-limited mobility: orders 1.78 then 1.86, fitted 1.82 (plain upwinding gave 0.81, 0.86)
    assert 1.5 <= observed_order(sizes, errors) <= 2.3, errors
    assert errors[-1] < 2e-5, errors


def test_barenblatt_on_the_disk_with_rkl2(fem):
    """RKL2 super-steps on the mesh's rate: the same problem, order and invariants as SSP-RK2."""
    sizes, errors = (0.1, 0.05, 0.025), []
    for level in (1, 2, 3):
        disk = mesh(fem, "disk", level)
        solution = solve(PorousMedium(2), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, 2.0), scheme="rkl2")
        assert_invariants(solution)
        errors.append(disk.integrate(np.abs(solution.rho[-1] - barenblatt(disk.points, 2.0, C=0.02))))
    assert 1.5 <= observed_order(sizes, errors) <= 2.3, errors  # measured 1.93
    assert errors[-1] < 2e-5, errors


def test_fokker_planck_on_the_disk(fem):
    """V = |x|²/2, τ = 0.01, from a Gaussian far from the boundary: OU Gaussians."""
    tau, A, b = 0.01, np.eye(2), np.zeros(2)
    mean0, cov0 = np.array([0.2, -0.1]), 0.02 * np.eye(2)
    energy = Potential(lambda x: 0.5 * np.sum(x**2, axis=-1)) + Entropy(tau)
    sizes, errors = (0.1, 0.05, 0.025), []
    for level in (1, 2, 3):
        disk = mesh(fem, "disk", level)
        solution = solve(energy, disk, gaussian(disk.points, mean0, cov0), (0.0, 0.5))
        assert_invariants(solution)
        exact = gaussian(disk.points, *ornstein_uhlenbeck(0.5, A, b, tau, mean0, cov0))
        errors.append(disk.integrate(np.abs(solution.rho[-1] - exact)))
    # drift-dominated (τ small): orders 1.44 then 1.96, fitted 1.70 (plain upwinding gave 0.90, 0.96)
    assert 1.5 <= observed_order(sizes, errors) <= 2.3 and errors[-1] < 5e-3, errors


def test_implicit_on_the_disk(fem):
    """Backward Euler on the mesh approaches SSP-RK2 at first order in dt (L1 differences
    measured 9.7e-5 and 4.9e-5 at dt = 0.1 and 0.05, 0.5% of the mass), and its error
    against the exact profile stays near SSP-RK2's spatial one (2.2e-4 against 1.8e-4)."""
    disk = mesh(fem, "disk", 1)
    start, exact = barenblatt(disk.points, 1.0, C=0.02), barenblatt(disk.points, 2.0, C=0.02)
    explicit = solve(PorousMedium(2), disk, start, (1.0, 2.0)).rho[-1]
    differences = []
    for dt in (0.1, 0.05):
        solution = solve(PorousMedium(2), disk, start, (1.0, 2.0), scheme="implicit", dt=dt)
        assert_invariants(solution)
        differences.append(disk.integrate(np.abs(solution.rho[-1] - explicit)))
    assert 0.85 <= observed_order([0.1, 0.05], differences) <= 1.15 and differences[-1] < 7e-5, differences
    errors = [disk.integrate(np.abs(rho - exact)) for rho in (solution.rho[-1], explicit)]
    assert errors[0] < 1.5 * errors[1] and errors[1] < 2e-4, errors


def test_bdf2_on_the_disk(fem):
    """bdf2 runs on the mesh's rate and Newton matrix as on a grid: the invariants, and the
    L1 error of SSP-RK2 at h = 0.1 (the spatial error; measured 1.767e-4 against 1.773e-4)."""
    disk = mesh(fem, "disk", 1)
    exact = barenblatt(disk.points, 2.0, C=0.02)
    errors = {}
    for scheme in ("explicit", "bdf2"):
        solution = solve(PorousMedium(2), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, 2.0), scheme=scheme)
        assert_invariants(solution)
        errors[scheme] = disk.integrate(np.abs(solution.rho[-1] - exact))
    assert solution.newton_iterations > 0 and errors["bdf2"] < 1.02 * errors["explicit"], errors


def test_grid_and_mesh_agree_on_the_square(fem):
    square = mesh(fem, "square", 2)
    grid = Grid([(-1, 1)] * 2, 64)
    exact = partial(barenblatt, C=0.02)
    on_mesh = solve(PorousMedium(2), square, exact(square.points, 1.0), (1.0, 2.0)).rho[-1]
    on_grid = solve(PorousMedium(2), grid, grid.cell_averages(partial(exact, t=1.0)), (1.0, 2.0)).rho[-1]
    mesh_error = square.integrate(np.abs(on_mesh - exact(square.points, 2.0)))
    grid_error = grid.integrate(np.abs(on_grid - grid.cell_averages(partial(exact, t=2.0))))
    from scipy.interpolate import RegularGridInterpolator

    grid_at_vertices = RegularGridInterpolator(grid.axes, on_grid, bounds_error=False, fill_value=None)(square.points)
    difference = square.integrate(np.abs(on_mesh - grid_at_vertices))
    # measured: difference 4.7e-5, mesh error 5.4e-5, grid error 4.9e-6 (mass 0.010)
    assert difference < 7e-5 and mesh_error < 8e-5 and grid_error < 8e-6, (difference, mesh_error, grid_error)


@pytest.mark.slow
def test_bump_limit_on_the_disk(fem):
    """The bump networks' limit flow fits a concave density on the disk: its risk falls at
    every save and by more than 1000 times by t = 6 (the decay rate against the
    linearization is tested on grids, in tests/test_bump.py)."""
    disk = mesh(fem, "disk", 1)
    target = lambda x: 2 / np.pi * (1 - np.sum(x**2, axis=-1))  # noqa: E731
    energy = BumpLimitRisk(target, Ball([0.0, 0.0], 1.0))
    start = np.where(np.sum((disk.points - [0.2, 0.0]) ** 2, axis=-1) < 0.16, 1.0, 0.0)
    start /= disk.integrate(start)
    times = np.linspace(0, 6, 13)
    solution = solve(energy, disk, start, (0, 6), save_at=times)
    assert_invariants(solution)
    risks = np.array([energy.value(rho, disk) for rho in solution.rho])
    assert np.all(np.diff(risks) < 0) and risks[-1] < 1e-3 * risks[0], risks


def test_weighted_sum_matches_numpy(fem, rng):
    values, weights = rng.normal(size=1001), rng.random(1001)
    assert abs(fem.weighted_sum(values, weights) - np.sum(values * weights)) <= 1e-14 * np.sum(np.abs(values) * weights)
    values[500] = np.nan
    assert np.isnan(fem.weighted_sum(values, weights))
    disk = mesh(fem, "disk", 0)
    assert disk.integrate(np.ones(disk.shape)) == pytest.approx(np.pi, rel=0.02)
    with pytest.raises(ValueError, match="integrate takes values at the"):
        disk.integrate(np.ones(disk.owned + 1))


def test_xdmf_and_plot(fem, tmp_path):
    """The values reach DOLFINx at their vertices (the mesh numbers them along the Z-order
    curve, DOLFINx in its own order), and are written and plotted."""
    disk = mesh(fem, "disk", 0)
    rho = barenblatt(disk.points, 1.0, C=0.02)
    dolfinx_points = disk.space.tabulate_dof_coordinates()[: disk.owned, : disk.dim]
    np.testing.assert_allclose(disk.function(rho).x.array[: disk.owned],
                               barenblatt(dolfinx_points, 1.0, C=0.02), atol=1e-12)
    assert not np.array_equal(disk.dolfinx_index[: disk.owned], np.arange(disk.owned))  # renumbered
    disk.write_xdmf(tmp_path / "rho.xdmf", [0.0, 1.0], [rho, 2 * rho])
    assert (tmp_path / "rho.xdmf").stat().st_size > 0 and (tmp_path / "rho.h5").stat().st_size > 0
    import matplotlib.pyplot as plt

    art = disk.plot(rho)
    assert art.get_array().size > 0
    plt.close("all")


MPI_SCRIPT = """
import json, sys, warnings
import numpy as np
from solver import Energy, fem, PorousMedium, solve
from solver.analytic import barenblatt


class AllVertices(Energy):  # a nonlocal term that does not add the other ranks' parts
    local = False

    def value_and_first_variation(self, rho, grid):
        return 0.0, np.zeros(rho.shape)


disk = fem.read(sys.argv[1])
solution = solve(PorousMedium(2), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, 1.5))
points, rho = disk.gather(solution.rho[-1])
if disk.comm.rank == 0:
    np.save(sys.argv[2], np.column_stack([points, rho]))
if disk.comm.size > 1:  # nonlocal terms that are not distributed refuse to run (tests/test_mpi.py: those that are)
    try:
        solve(PorousMedium(2) + AllVertices(), disk, solution.rho[-1], (0, 1))
    except ValueError as error:
        if disk.comm.rank == 0:
            open(sys.argv[2] + ".error", "w").write(str(error))
"""


def test_mpi_gives_the_serial_answer(fem, tmp_path):
    serial, parallel = map(np.load, serial_and_parallel(MPI_SCRIPT, tmp_path, MESHES["path"]("disk", 1)))
    np.testing.assert_allclose(parallel[:, :2], serial[:, :2], atol=1e-14)
    np.testing.assert_allclose(parallel[:, 2], serial[:, 2], rtol=0, atol=1e-10 * serial[:, 2].max())
    error = (tmp_path / "parallel.npy.error").read_text()
    assert "a nonlocal term sums over all the vertices" in error and "run without mpirun" in error, error


def on_two_ranks(script, tmp_path):
    """Run the Python text ``script`` on 2 MPI ranks with the arguments (level-1 disk mesh,
    OUT); returns the texts of the files OUT.0 and OUT.1 the ranks wrote (OUT.0 only if
    rank 1 writes none). 300 s at most: a rank left waiting in a collective fails the test."""
    require("mpi4py")
    path, out = tmp_path / "script.py", tmp_path / "out"
    path.write_text(script)
    subprocess.run(mpirun_command(2, sys.executable, path, MESHES["path"]("disk", 1), out), check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    return [file.read_text() for file in sorted(tmp_path.glob("out.[01]"))]


MPI_GHOST_MASS_SCRIPT = """
import json, sys
import numpy as np
from solver import fem

disk = fem.read(sys.argv[1])
rng = np.random.default_rng(disk.comm.rank)
rho = (1.0 + rng.random(disk.shape)) * (disk.comm.rank == 0)  # mass on rank 0's vertices only
xi = rho + 0.1 * rng.random(disk.shape)
rate, top_outflow = disk.rate_and_outflow(rho, xi)
near_rho, near_xi = disk.neighbourhood(rho, xi)
expected = fem.edge_rate_reference(disk.indptr, disk.columns, disk.transmissibility, near_rho,
                                   near_xi, disk.weights)
report = {"equal": bool(np.array_equal(rate, expected[0]) and top_outflow == expected[1].max()),
          "receiving": int(np.count_nonzero(rate > 0))}
open(f"{sys.argv[2]}.{disk.comm.rank}", "w").write(json.dumps(report))
"""


def test_mpi_mass_across_the_ranks_boundary(fem, tmp_path):
    """Mass on rank 0's vertices only, flowing out: rank 1's vertices next to them see it
    in their ghosts only, and receive it (a block's stencil holds the ghost neighbours);
    on both ranks the rate and the largest outflow are those of every edge bit for bit."""
    reports = [json.loads(text) for text in on_two_ranks(MPI_GHOST_MASS_SCRIPT, tmp_path)]
    assert all(report["equal"] for report in reports) and reports[1]["receiving"] > 0, reports


MPI_NAN_SCRIPT = """
import json, sys
import numpy as np
from solver import Energy, PorousMedium, fem, solve
from solver.analytic import barenblatt
from solver.timeloop import SimulationError


class NaNOnRankOne(Energy):
    # F = 0, but from the third state on F' is NaN at the vertices rank 1 owns; F and the
    # steppers' own calls of F' stay finite, so only the time loop's check can see it
    states = 0

    def value(self, rho, grid):
        return 0.0

    def first_variation(self, rho, grid):
        return np.zeros(rho.shape)

    def value_and_first_variation(self, rho, grid):
        self.states += 1
        return 0.0, np.full(rho.shape, np.nan if self.states >= 3 and grid.comm.rank == 1 else 0.0)


disk = fem.read(sys.argv[1])
try:
    solve(PorousMedium(2) + NaNOnRankOne(), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, 1.5))
except SimulationError as error:
    report = {"error": str(error), "accepted": error.partial.accepted, "t": error.partial.t.tolist()}
    open(f"{sys.argv[2]}.{disk.comm.rank}", "w").write(json.dumps(report))
"""


def test_mpi_a_nan_on_one_rank_stops_every_rank(fem, tmp_path):
    """Every decision of the time loop is global: a NaN in F' at rank 1's vertices only
    stops both ranks with the same SimulationError (a rank that went on would wait for
    the other in its next reduction: the timeout fails the test)."""
    reports = [json.loads(text) for text in on_two_ranks(MPI_NAN_SCRIPT, tmp_path)]
    assert reports[0] == reports[1], reports
    assert reports[0]["error"].startswith("solve: non-finite density, energy or first variation at step 2 "), reports
    assert reports[0]["accepted"] == 1 and reports[0]["t"][0] == 1.0 and 1.0 < reports[0]["t"][1] < 1.5, reports


MPI_COUNT_SCRIPT = """
import collections, json, sys
from solver import PorousMedium, fem, solve
from solver.analytic import barenblatt

calls = collections.Counter()


class Counting:  # a communicator or a ghost exchange that counts the calls of its methods
    def __init__(self, wrapped):
        self.wrapped = wrapped

    def __getattr__(self, name):
        attribute = getattr(self.wrapped, name)
        if not callable(attribute):
            return attribute

        def counted(*args, **kwargs):
            calls[name] += 1
            return attribute(*args, **kwargs)
        return counted


disk = fem.read(sys.argv[1])
disk.comm, disk._ghosts = Counting(disk.comm), Counting(disk._ghosts)
steps = []
solution = solve(PorousMedium(2), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, 1.1),
                 checkpoint=lambda state: steps.append(dict(calls)))
if disk.comm.rank == 0:
    json.dump({"rejected": solution.rejected, "calls": steps}, open(f"{sys.argv[2]}.0", "w"))
"""


def test_mpi_explicit_step_communicates_in_three_reductions_and_two_exchanges(fem, tmp_path):
    """An accepted SSP-RK2 step on 2 ranks: one ``Allreduce`` of F(ρⁿ⁺¹), one ``Allgather``
    of the step limits, one of the new state's summary (mass, min ρⁿ⁺¹, finiteness of ξ, min
    ρ¹ of the stage), one exchange of (ρ, ξ) and one of (ρ¹, ξ¹) with the neighbouring
    ranks; nothing else (no pickled reduction either)."""
    report = json.loads(on_two_ranks(MPI_COUNT_SCRIPT, tmp_path)[0])
    assert report["rejected"] == 0 and len(report["calls"]) > 3, report
    per_step = [{name: after.get(name, 0) - before.get(name, 0) for name in {*before, *after}}
                for before, after in zip(report["calls"], report["calls"][1:])]
    assert all(step == {"Allreduce": 1, "Allgather": 2, "exchange": 2} for step in per_step), per_step


MPI_EXTREMES_SCRIPT = """
import json, sys
import numpy as np
from solver import fem

disk = fem.read(sys.argv[1])
rank = disk.comm.rank
nan_first, nan_second = (np.nan, -1.0)[rank], (-1.0, np.nan)[rank]  # a NaN on rank 0, then on rank 1
answers = {"min": [disk.minimum([nan_first]), disk.minimum([nan_second])],
           "max": [disk.maximum([-nan_first]), disk.maximum([-nan_second])],
           "maxima": [disk.maxima([-nan_first, rank]).tolist(), disk.maxima([-nan_second, rank]).tolist()],
           "one rank empty": [disk.minimum([] if rank else [3.0, 2.0]), disk.maximum([] if rank else [2, 3])]}
rho, xi = np.full(disk.owned, rank + 1.0), np.zeros(disk.owned)  # ρ = 1 on rank 0, 2 on rank 1
xi[0] = np.inf if rank else 0.0
mass, lowest, finite, stages = disk.summary(rho, xi, np.nan if rank else -1.0)
answers["summary"] = [mass, lowest, bool(finite), stages]
answers["separately"] = [disk.integrate(rho), disk.minimum(rho), disk.all_finite(xi)]
json.dump(answers, open(f"{sys.argv[2]}.{rank}", "w"))
"""


def test_mpi_extremes_are_the_same_on_every_rank_with_a_nan_or_an_empty_rank(fem, tmp_path):
    """A NaN on one rank makes min and max NaN on every rank (MPICH's buffer ``Allreduce``
    MIN answered −1 on one rank and NaN on the other: the ranks would take different
    branches and wait in different collectives); a rank holding no value does not count. A state's
    summary (mass, min, finiteness of ξ) answers what the three reductions answer, and the
    minimum of the stages beside it is NaN on both ranks when one has a NaN."""
    first, second = on_two_ranks(MPI_EXTREMES_SCRIPT, tmp_path)
    assert first == second, (first, second)
    answers = json.loads(first)
    assert np.isnan(answers["min"] + answers["max"]).all(), answers
    assert np.isnan(answers["maxima"]).tolist() == [[True, False]] * 2 and answers["maxima"][0][1] == 1.0, answers
    assert answers["one rank empty"] == [2.0, 3.0], answers
    (mass, lowest, finite, stages), separately = answers["summary"], answers["separately"]
    assert lowest == 1.0 and finite is False and [lowest, finite] == separately[1:], answers
    assert np.isnan(stages), answers  # the stages' minimum of (−1, NaN): NaN on both ranks
    assert mass == pytest.approx(separately[0], rel=1e-14), answers


NON_DELAUNAY = """$MeshFormat
2.2 0 8
$EndMeshFormat
$Nodes
4
1 0 0 0
2 1 0 0
3 0.5 0.1 0
4 0.5 -0.1 0
$EndNodes
$Elements
2
1 2 2 1 1 1 2 3
2 2 2 1 1 2 1 4
$EndElements
"""


def test_non_delaunay_mesh_warns(fem, tmp_path):
    """Two flat triangles on one edge: the angles opposite it sum to about 2 × 169°."""
    path = tmp_path / "flat.msh"
    path.write_text(NON_DELAUNAY)
    with pytest.warns(UserWarning, match=r"mesh flat: 1 edges are not Delaunay \(their two opposite angles sum to "
                      r"more than π; 2 obtuse angles in all\).*would break positivity and energy dissipation"):
        flat = fem.read(path)
    assert flat.non_delaunay_edges == 1 and flat.obtuse_angles == 2
    with pytest.warns(UserWarning, match=r"mesh ball_0: \d+ edges are not Delaunay \(the dihedral angles"):
        fem.read(MESHES["path"]("ball", 0))


def test_bad_mesh_input(fem, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fem.read(tmp_path / "missing.msh")
    corrupt = tmp_path / "corrupt.msh"
    corrupt.write_text("$MeshFormat\nthis is not a mesh\n")
    with pytest.raises(ValueError, match="is not a readable gmsh mesh"):
        fem.read(corrupt)
    disk = mesh(fem, "disk", 0)
    with pytest.raises(ValueError, match=r"rho0 has shape \(5,\) but the mesh disk_0 has"):
        solve(PorousMedium(2), disk, np.ones(5), (0, 1))
    with pytest.raises(ValueError, match="Ω has dimension 1 but the discretization has dimension 2"):
        solve(BumpLimitRisk(lambda x: np.ones(x.shape[:-1]), Box([-1.0], [1.0])), disk, np.ones(disk.shape), (0, 1))


def test_interaction_on_the_disk_is_the_convolution(fem):
    """Gaussians: (W ∗ ρ) of two Gaussians is a Gaussian; the vertex sum with lumped masses
    matches it at the vertices to discretization error."""
    from solver.energies import Interaction

    disk = mesh(fem, "disk", 2)
    s_rho, s_w = 0.15, 0.2
    rho = gaussian(disk.points, np.zeros(2), s_rho**2 * np.eye(2))
    W = Interaction(lambda z: np.exp(-np.sum(z**2, axis=-1) / (2 * s_w**2)))
    variance = s_rho**2 + s_w**2
    exact = 2 * np.pi * s_w**2 * gaussian(disk.points, np.zeros(2), variance * np.eye(2))
    assert np.abs(W.first_variation(rho, disk) - exact).max() < 2e-3 * exact.max()


def test_network_risk_on_the_square_matches_the_grid(fem):
    from solver import problems

    energy = problems.tanh_teacher(cells=8).energy
    square = mesh(fem, "square", 2)
    grid = Grid([(-1, 1)] * 2, 64)
    density = lambda x: 1 + 0.5 * np.sin(2 * x[..., 0]) * np.cos(x[..., 1])  # noqa: E731
    on_mesh = energy.value(density(square.points) / square.integrate(density(square.points)), square)
    rho = grid.cell_averages(density)
    assert on_mesh == pytest.approx(energy.value(rho / grid.integrate(rho), grid), rel=1e-3)


def test_network_risk_flow_on_the_square_matches_the_grid(fem):
    from solver import problems

    energy = problems.tanh_teacher(cells=8, n_data=200).energy
    square, grid = mesh(fem, "square", 2), Grid([(-1, 1)] * 2, 44)
    start = partial(gaussian, mean=np.zeros(2), cov=0.25 * np.eye(2))
    on_mesh = solve(energy, square, start(square.points), (0, 1), save_at=[0, 0.5, 1])
    on_grid = solve(energy, grid, grid.cell_averages(start), (0, 1), save_at=[0, 0.5, 1])
    assert_invariants(on_mesh)
    mesh_risks = np.array([energy.value(rho, square) for rho in on_mesh.rho])
    grid_risks = np.array([energy.value(rho, grid) for rho in on_grid.rho])
    assert np.all(np.diff(mesh_risks) < 0) and mesh_risks[-1] < 0.7 * mesh_risks[0], mesh_risks
    np.testing.assert_allclose(mesh_risks, grid_risks, rtol=2e-3)  # measured 4e-4


def test_mesh_domain_for_particles(fem):
    """The L-shape [−1, 1]² without (0, 1]²: not convex; points outside go to the closest
    boundary point, points inside stay."""
    lshape = mesh(fem, "lshape", 0)
    rng = np.random.default_rng(1)
    points = rng.uniform(-1.5, 1.5, (400, 2))
    exact = np.all(np.abs(points) <= 1, axis=1) & ~np.all(points > 0, axis=1)
    np.testing.assert_array_equal(lshape.contains(points), exact)
    projected = lshape.project(points)
    np.testing.assert_array_equal(projected[exact], points[exact])
    assert np.all(lshape.contains(projected))
    outside = projected[~exact]
    on_boundary = (np.abs(np.abs(outside).max(axis=1) - 1) < 1e-12) | (np.abs(outside).min(axis=1) < 1e-12)
    assert np.all(on_boundary)
    corners = np.array([[-1, -1], [1, -1], [1, 0], [0, 0], [0, 1], [-1, 1], [-1, -1]], dtype=float)
    along = np.linspace(0, 1, 4001)[:, None, None]
    boundary = (corners[:-1] + along * (corners[1:] - corners[:-1])).reshape(-1, 2)  # dense samples
    nearest = np.linalg.norm(points[~exact, None, :] - boundary, axis=-1).min(axis=1)
    moved = np.linalg.norm(outside - points[~exact], axis=1)
    assert np.all(moved <= nearest + 1e-12) and np.all(moved >= nearest - 1e-3)  # the closest boundary point
    with pytest.raises(ValueError, match="particles are projected onto 2D meshes in serial runs only"):
        mesh(fem, "ball", 0).project(np.zeros((1, 3)))


@pytest.mark.slow
def test_bump_risk_on_the_disk_pde_against_sgd_projected_onto_the_mesh(fem):
    """Fixed δ = 0.3 on the disk: the mesh PDE and SGD on N = 400 bumps (projected onto
    the mesh's polygon) give the same risk curve (measured within 6%)."""
    disk = mesh(fem, "disk", 2)
    disc = Ball([0.0, 0.0], 1.0)
    energy = BumpRisk(lambda x: 2 / np.pi * (1 - np.sum(x**2, axis=-1)), 0.3, disc)
    start = (np.sum((disk.points - [0.2, 0.0]) ** 2, axis=-1) < 0.16).astype(float)
    times = [0, 0.5, 1]
    pde = solve(energy, disk, start / disk.integrate(start), (0, 1), save_at=times)
    assert_invariants(pde)
    rng = np.random.default_rng(0)
    theta0 = [0.2, 0.0] + Ball([0.0, 0.0], 0.4).sample(rng, 400)
    sgd = simulate(energy, theta0, (0, 1), step=2e-3, method="sgd", batch_size=20, domain=disk, save_at=times,
                   rng=rng)
    assert np.all(disk.contains(sgd.theta[-1]))
    pde_risks = np.array([energy.value(rho, disk) for rho in pde.rho])
    sgd_risks = np.array([energy.risk(theta, sgd.weights) for theta in sgd.theta])
    assert pde_risks[-1] < 0.1 * pde_risks[0], pde_risks
    np.testing.assert_allclose(sgd_risks, pde_risks, rtol=0.15)


@pytest.mark.parametrize("name", ["square", "sphere"])
def test_rkl2_stage_is_the_numpy_stage(fem, rng, name):
    """The mesh's RKL2 stage in the kernel's pass is Discretization.rkl2_stage's NumPy
    expression bit for bit, negative count included, with vacuum (blocks skipped) and
    values of both signs; bad ``out`` is refused."""
    from solver.discretization import Discretization

    m = mesh(fem, name, 1)
    near = np.linalg.norm(m.points - m.points[0], axis=1) < 0.5 * np.ptp(m.points, axis=0).max()
    current = rng.random(m.shape) * near
    xi, previous, start, start_rate = rng.normal(size=(4,) + m.shape)
    coefficients = np.array([1.3, -0.4, 0.05, -0.02])
    out, expected = np.full(m.shape, np.nan), np.full(m.shape, np.nan)
    negatives = m.rkl2_stage(current, xi, previous, start, start_rate, coefficients, out)
    expected_negatives = Discretization.rkl2_stage(m, current, xi, previous, start, start_rate, coefficients, expected)
    np.testing.assert_array_equal(out, expected)
    assert negatives == expected_negatives == np.count_nonzero(expected < 0) > 0
    assert 0 < np.count_nonzero(current) < m.owned  # some blocks skipped, some computed
    with pytest.raises(ValueError, match="shares memory"):
        m.rkl2_stage(current, xi, previous, start, start_rate, coefficients, current)
    with pytest.raises(ValueError, match="C-contiguous float array"):
        m.rkl2_stage(current, xi, previous, start, start_rate, coefficients, np.empty(m.owned + 1))
    with pytest.raises(ValueError, match="owned vertices"):
        m.rkl2_stage(current, xi, previous[:-1], start, start_rate, coefficients, out)


def test_interaction_kernel_on_a_mesh_must_be_even(fem):
    from solver.energies import Interaction

    disk = mesh(fem, "disk", 0)
    with pytest.raises(ValueError, match=r"Interaction: W must be even"):
        Interaction(lambda z: z[..., 0] + np.sum(z**2, axis=-1)).check(disk)
    Interaction(lambda z: np.sum(z**2, axis=-1)).check(disk)


def test_the_named_partition_reaches_dolfinx(fem, monkeypatch):
    """``fem.read(path, partition=...)`` hands DOLFINx the partition asked for: the bisection
    function by default, None (DOLFINx's graph partitioner) for "graph"."""
    from solver import dolfinx_compat

    asked = []
    original = dolfinx_compat.mesh_from_gmsh_model

    def recording(dolfinx, model, comm, rank, gdim, cell_parts=None):
        asked.append(cell_parts)
        return original(dolfinx, model, comm, rank, gdim, cell_parts)

    monkeypatch.setattr(dolfinx_compat, "mesh_from_gmsh_model", recording)
    path = ROOT / "meshes" / "disk_0.msh"
    fem.read(path)
    fem.read(path, partition="graph")
    fem.read(path, partition="bisection")
    assert asked == [fem.coordinate_bisection, None, fem.coordinate_bisection]


MPI_REFUSALS = """
import sys
import numpy as np
from solver import PorousMedium, fem, solve
from solver.analytic import barenblatt
from solver.energies import Interaction

disk = fem.read(sys.argv[1])
answers = []
try:  # the Newton step's sparse solve is serial: refused on every rank, none left waiting
    solve(PorousMedium(2), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, 1.1), scheme="implicit")
    answers.append("implicit ran")
except ValueError as error:
    answers.append(str(error))
owned = disk.comm.allgather(disk.owned)
fem.PAIR_MATRIX_LIMIT = min(owned) * disk.vertices  # the rank with more vertices is over it, the other not
try:
    Interaction(lambda z: np.sum(z**2, axis=-1)).check(disk)
    answers.append("pair matrix made")
except ValueError as error:
    answers.append(str(error))
answers.append(str(disk.comm.allgather(len(answers))))  # both ranks reach this point together
open(f"{sys.argv[2]}.{disk.comm.rank}", "w").write("\\n".join(answers))
"""


def test_mpi_refusals_are_the_same_on_every_rank(tmp_path):
    """On 2 ranks (disk_1: 205 and 206 owned vertices) the implicit scheme is refused by
    name, and a vertex-pair matrix over the limit on one rank only is refused on both (a rank
    that went on alone would wait in the next collective: the timeout fails the test)."""
    require("dolfinx")
    first, second = on_two_ranks(MPI_REFUSALS, tmp_path)
    assert first == second, (first, second)
    implicit, pairs, _ = first.split("\n")
    assert "the implicit mesh scheme runs serially only" in implicit, implicit
    assert "sums over vertex pairs need at most" in pairs, pairs


EMPTY_SURFACE = """$MeshFormat
4.1 0 8
$EndMeshFormat
$Entities
0 0 1 0
1 0 0 0 1 1 0 0 0
$EndEntities
$Nodes
0 0 0 0
$EndNodes
$Elements
0 0 0 0
$EndElements
"""


def test_a_mesh_file_with_a_surface_but_no_cells_is_refused_by_name(fem, tmp_path):
    """A gmsh file that declares a surface but holds no element (an unmeshed .geo exported):
    the ValueError that names the file, not DOLFINx's bare AssertionError (on several ranks
    rank 0 alone would fail in DOLFINx while the others wait)."""
    path = tmp_path / "unmeshed.msh"
    path.write_text(EMPTY_SURFACE)
    with pytest.raises(ValueError, match=r"unmeshed\.msh is not a readable gmsh mesh with cells \(no cells\)"):
        fem.read(path)
