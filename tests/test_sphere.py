"""The unit sphere S² ⊂ R³: the gmsh surface mesh (Mesh.sphere, meshes/generate.py), the mesh
solver on it (tangential P1 stiffness, lumped areas, the heat equation against the
Laplace–Beltrami eigenvalue 2, MPI), its bad input (open, not Delaunay), and the Sphere
domain for particles."""

import math

import numpy as np
import pytest
from conftest import MESHES, assert_invariants, cotangent_weights, observed_order, serial_and_parallel

from solver import Entropy, solve
from solver.domains import Sphere


@pytest.fixture(scope="module")
def spheres(fem):
    """Mesh.sphere at the sizes the tests use, made once."""
    return {size: fem.Mesh.sphere(size) for size in (0.4, 0.3, 0.2, 0.14, 0.1)}


def edge_table(mesh):
    """(i, j, T_ij) of every edge once (serial: the CSR columns are vertex numbers)."""
    rows = np.repeat(np.arange(mesh.owned), np.diff(mesh.indptr))
    once = rows < mesh.columns
    return rows[once], mesh.columns[once], mesh.transmissibility[once]


def write_msh(path, points, triangles):
    """A gmsh 2.2 ASCII file of a triangle surface (vertices numbered from 1)."""
    nodes = "".join(f"{i + 1} {x:.17g} {y:.17g} {z:.17g}\n" for i, (x, y, z) in enumerate(points))
    elements = "".join(f"{k + 1} 2 2 1 1 {a + 1} {b + 1} {c + 1}\n" for k, (a, b, c) in enumerate(triangles))
    path.write_text(f"$MeshFormat\n2.2 0 8\n$EndMeshFormat\n$Nodes\n{len(points)}\n{nodes}$EndNodes\n"
                    f"$Elements\n{len(triangles)}\n{elements}$EndElements\n")


def test_sphere_mesh_is_a_closed_delaunay_surface_on_the_unit_sphere(spheres):
    """dim 3 (ambient), tdim 2, the points on S² to round-off, Euler characteristic 2, no
    boundary, no negative cotangent weight, and DOLFINx's tangential P1 stiffness equal to
    the cotangent formula ½(cot α + cot β) on every edge."""
    for size, sphere in spheres.items():
        assert sphere.dim == 3 and sphere.tdim == 2 and sphere.surface
        assert sphere.points.shape == (sphere.vertices, 3) and sphere.cells.shape[1] == 3
        assert np.abs(np.linalg.norm(sphere.points, axis=1) - 1).max() <= 4e-16
        edges = np.unique(np.sort(sphere.cells[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2), axis=1), axis=0)
        assert sphere.vertices - len(edges) + len(sphere.cells) == 2  # V − E + F of S²
        assert sphere.boundary_facets == 0 and sphere.non_delaunay_edges == 0
        i, j, T = edge_table(sphere)
        expected = cotangent_weights(sphere.points, sphere.cells)
        assert len(T) == len(expected) == len(edges)
        np.testing.assert_allclose(T, [expected[key] for key in zip(i, j)], rtol=1e-10, atol=1e-13)
        assert T.min() >= 0
    assert spheres[0.2].vertices == 412 and "2D surface in 3D" in repr(spheres[0.2])


def test_lumped_areas_converge_to_4pi(spheres):
    """Σ m_i is the area of the inscribed polyhedron: below 4π, the error O(h²)."""
    sizes = sorted(spheres, reverse=True)
    errors = [4 * math.pi - spheres[size].integrate(np.ones(spheres[size].shape)) for size in sizes]
    assert all(error > 0 for error in errors) and errors[-1] < 0.03, errors  # measured 0.0245 at h = 0.1
    assert 1.8 <= observed_order(sizes, errors) <= 2.3, errors  # measured 2.0
    for sphere in spheres.values():  # the lumped mass of a vertex: a third of its triangles' areas
        corners = sphere.points[sphere.cells]
        areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
        lumped = np.bincount(sphere.cells.ravel(), np.repeat(areas / 3, 3), minlength=sphere.owned)
        np.testing.assert_allclose(sphere.weights, lumped, rtol=1e-12)


def test_rayleigh_quotient_of_the_coordinates_is_two(spheres):
    """x, y, z are Laplace–Beltrami eigenfunctions of eigenvalue 2: the discrete Rayleigh
    quotient Σ_edges T_ij (z_i − z_j)² / Σ m_i z_i² tends to 2 (from above: Ritz values of
    the stiffness against the lumped mass are not bounds, but measured so here)."""
    sizes = sorted(spheres, reverse=True)
    errors = []
    for size in sizes:
        sphere = spheres[size]
        i, j, T = edge_table(sphere)
        quotients = [np.sum(T * (f[i] - f[j]) ** 2) / sphere.integrate(f**2) for f in sphere.points.T]
        errors.append(max(abs(q - 2) for q in quotients))
    assert errors[sizes.index(0.2)] < 1e-3 and errors[-1] < 2e-4, errors  # measured 3.6e-4 and 6.8e-5 for z
    assert observed_order(sizes, errors) >= 2, errors


def test_heat_equation_decays_the_z_mode_at_rate_two(spheres):
    """τ∫ρ log ρ gives ∂tρ = τΔ_S ρ; from ρ = 1 + εz the exact solution is 1 + εz e^(−2τt).
    The amplitude of the mean-free z mode decays at a rate tending to 2τ with refinement
    (measured errors 8.7e-4, 4.1e-4, 2.1e-4 at h = 0.2, 0.14, 0.1: order 2.0); the density
    converges in L1; mass, positivity and energy decrease hold at every step."""
    tau, eps, t_end = 1.0, 0.5, 0.25
    sizes, rate_errors, l1_errors = (0.2, 0.14, 0.1), [], []
    for size in sizes:
        sphere = spheres[size]
        z = sphere.points[:, 2]
        z_free = z - sphere.integrate(z) / sphere.integrate(np.ones(sphere.shape))
        solution = solve(Entropy(tau), sphere, 1 + eps * z, (0, t_end), save_at=np.linspace(0, t_end, 6))
        assert_invariants(solution)
        amplitudes = np.array([sphere.integrate(z_free * rho) / sphere.integrate(z_free**2) for rho in solution.rho])
        rates = -np.diff(np.log(amplitudes)) / np.diff(solution.t) / tau
        assert np.all(np.abs(rates - 2) < 2e-3), rates
        rate_errors.append(abs(-np.log(amplitudes[-1] / amplitudes[0]) / (tau * t_end) - 2))
        exact = 1 + eps * z * np.exp(-2 * tau * t_end)
        l1_errors.append(sphere.integrate(np.abs(solution.rho[-1] - exact)))
    assert rate_errors[-1] < 5e-4, rate_errors
    assert 1.5 <= observed_order(sizes, rate_errors) <= 3.5, rate_errors
    assert l1_errors[-1] < 2e-3 and observed_order(sizes, l1_errors) >= 1.5, l1_errors


def test_heat_equation_from_a_cap_keeps_positivity(spheres):
    """ρ0 = (z − a)⁺, a = 0.8: vacuum next to mass. Every step ρ ≥ 0, mass to round-off,
    entropy decreasing; by t = 1 only the lowest modes are left: ρ ≈ ρ̄(1 + (2 + a) e^(−2t) z)
    (the z coefficient of ρ0/ρ̄ is 3∫z(z − a)⁺/∫(z − a)⁺ = 2 + a; measured within 0.02 ρ̄,
    the rest the l = 2 mode's e^(−6))."""
    sphere, a = spheres[0.2], 0.8
    z = sphere.points[:, 2]
    rho0 = np.maximum(z - a, 0.0)
    solution = solve(Entropy(1.0), sphere, rho0, (0, 1.0), save_at=[0, 0.1, 1.0])
    assert_invariants(solution)
    mean = sphere.integrate(rho0) / sphere.integrate(np.ones(sphere.shape))
    assert np.abs(solution.rho[-1] - mean * (1 + (2 + a) * np.exp(-2.0) * z)).max() < 0.03 * mean


@pytest.mark.parametrize("scheme, options", [("rkl2", {"max_step": 0.01}), ("implicit", {"dt": 0.005})])
def test_heat_equation_with_the_other_schemes(spheres, scheme, options):
    """RKL2 super-steps and backward Euler on the sphere: the z mode's decay rate within the
    time discretization error of 2τ (backward Euler: first order, e^(−2τt) against
    (1 + 2τ dt)^(−t/dt), 1% at dt = 0.005)."""
    sphere, tau, t_end = spheres[0.14], 1.0, 0.25
    z = sphere.points[:, 2]
    z_free = z - sphere.integrate(z) / sphere.integrate(np.ones(sphere.shape))
    solution = solve(Entropy(tau), sphere, 1 + 0.5 * z, (0, t_end), scheme=scheme, **options)
    assert_invariants(solution)
    amplitudes = [sphere.integrate(z_free * rho) / sphere.integrate(z_free**2) for rho in solution.rho]
    rate = -np.log(amplitudes[-1] / amplitudes[0]) / (tau * t_end)
    expected = np.log(1 + 2 * tau * options["dt"]) / options["dt"] if scheme == "implicit" else 2.0
    assert abs(rate - expected) < 2e-3, (rate, expected)


def test_fokker_planck_on_the_sphere_reaches_the_gibbs_density(spheres):
    """V = −κz with τ∫ρ log ρ: the scheme's flux vanishes exactly where V + τ log ρ is
    constant, so from the uniform density the flow tends to ρ ∝ e^(κz/τ) at the vertices
    (the L1 distance falls by about e^(−1.4) per unit time: 6e-3 of the start by t = 4, RKL2)."""
    from solver import Potential

    sphere, kappa, tau = spheres[0.2], 1.0, 0.5
    energy = Potential(lambda x: -kappa * x[..., 2]) + Entropy(tau)
    uniform = np.full(sphere.shape, 1 / (4 * math.pi))
    solution = solve(energy, sphere, uniform, (0, 6.0), save_at=[0, 1, 2, 4, 6], scheme="rkl2", max_step=0.1)
    assert_invariants(solution)
    gibbs = np.exp(kappa * sphere.points[:, 2] / tau)
    gibbs *= sphere.integrate(uniform) / sphere.integrate(gibbs)
    errors = [sphere.integrate(np.abs(rho - gibbs)) for rho in solution.rho]
    assert np.all(np.diff(errors) < 0) and errors[-1] < 1e-3 * errors[0], errors


def test_write_results_on_the_sphere(spheres, tmp_path):
    sphere = spheres[0.3]
    z = sphere.points[:, 2]
    files, arrays = sphere.write_results(tmp_path, [0.0, 1.0], [1 + 0.5 * z, 1 + 0.2 * z])
    assert (tmp_path / "densities.xdmf").stat().st_size > 0 and (tmp_path / "densities.h5").stat().st_size > 0
    assert set(files) == {"densities.xdmf", "densities.h5"}
    assert arrays["points"].shape == (sphere.vertices, 3) and arrays["cells"].shape == (len(sphere.cells), 3)
    assert arrays["weights"].sum() == pytest.approx(sphere.integrate(np.ones(sphere.shape)), rel=1e-14)


def test_plot_on_the_sphere(spheres):
    import matplotlib.pyplot as plt

    sphere = spheres[0.3]
    art = sphere.plot(np.exp(sphere.points[:, 2]))
    colours = art.get_array()
    assert colours.shape == (len(sphere.cells),) and colours.min() > np.exp(-1) and colours.max() < np.e
    plt.close("all")
    with pytest.raises(ValueError, match=r"particles are projected onto 2D meshes in serial runs only .* \(or Sphere, "
                       r"for a sphere\)"):
        sphere.project(np.ones((1, 3)))


SPHERE_CONFIG = """
[mesh]
file = "{file}"

[[energy]]
term = "porous-medium"
m = 2

[initial]
density = "barenblatt"
t = 1.0
m = 2
C = 2.0

[time]
start = 1.0
end = 1.1
"""


@pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")  # main() tunes the test process: OpenMP is loaded
def test_a_config_on_the_sphere_mesh(fem, tmp_path):
    """``[mesh] file`` may name the sphere: it is read as a surface; the Barenblatt profile
    (of R³, cut by S²) is a start there but not the exact solution, so none is reported;
    ``wgf run`` writes its results and draws the sphere in 3D."""
    from solver import config
    from solver.cli import main

    path = tmp_path / "sphere.toml"
    path.write_text(SPHERE_CONFIG.format(file=MESHES["path"]("sphere", 0)))
    run = config.load(path)
    assert run.grid.surface and run.grid.dim == 3 and run.exact is None
    assert run.grid.integrate(run.rho0) > 0
    assert main(["run", str(path), "--out", str(tmp_path / "results")]) == 0
    summary = (tmp_path / "results" / "summary.md").read_text()
    assert "2D surface in 3D" in summary and "exact" not in summary
    assert (tmp_path / "results" / "snapshots.png").stat().st_size > 0


def test_the_mesh_files_are_the_in_memory_meshes(fem):
    """meshes/sphere_<level>.msh (levels 0 and 1 committed: sizes 0.2, 0.1) read back as
    Mesh.sphere of the same size, to the digits gmsh writes."""
    for level, size in ((0, 0.2), (1, 0.1)):
        read = fem.read(MESHES["path"]("sphere", level))
        made = fem.Mesh.sphere(size)
        assert read.dim == 3 and read.tdim == 2 and read.vertices == made.vertices
        order_read, order_made = np.lexsort(read.points.T), np.lexsort(made.points.T)
        np.testing.assert_allclose(read.points[order_read], made.points[order_made], atol=1e-15)
        np.testing.assert_allclose(read.weights[order_read], made.weights[order_made], rtol=1e-12)


def test_an_open_surface_is_refused(fem, spheres, tmp_path):
    """The upper hemisphere: a surface with a boundary; the error names its edge count."""
    sphere = spheres[0.3]
    upper = sphere.cells[sphere.points[sphere.cells].mean(axis=1)[:, 2] > 0]
    used, triangles = np.unique(upper, return_inverse=True)
    edges = np.sort(triangles.reshape(-1, 3)[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2), axis=1)
    boundary = int(np.sum(np.unique(edges, axis=0, return_counts=True)[1] == 1))
    assert boundary > 10
    write_msh(tmp_path / "hemisphere.msh", sphere.points[used], triangles.reshape(-1, 3))
    with pytest.raises(ValueError, match=rf"mesh hemisphere: the surface is not closed: {boundary} of its edges "
                       r"belong to one triangle only"):
        fem.read(tmp_path / "hemisphere.msh")


def test_a_non_delaunay_surface_is_refused(fem, spheres, tmp_path):
    """One vertex moved along the sphere towards a neighbour, past the empty-cap condition:
    some edges get negative cotangent weights; the error names their count."""
    sphere = spheres[0.4]
    cells = sphere.cells
    for a, b, _ in zip(*edge_table(sphere)):  # the first edge along which the move breaks Delaunay
        points = sphere.points.copy()
        points[a] = points[a] + 0.8 * (points[b] - points[a])
        points[a] /= np.linalg.norm(points[a])
        negative = sum(w < 0 for w in cotangent_weights(points, cells).values())
        if negative:
            break
    assert negative >= 1
    corners = points[cells]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert np.all(np.sum(normals * corners.mean(axis=1), axis=1) > 0)  # still a valid surface: no fold
    write_msh(tmp_path / "moved.msh", points, cells)
    with pytest.raises(ValueError, match=rf"mesh moved: the surface is not Delaunay: {negative} edges have negative "
                       r"transmissibilities"):
        fem.read(tmp_path / "moved.msh")
    with pytest.raises(ValueError, match="size must be in"):
        fem.Mesh.sphere(0.0)


MPI_SCRIPT = """
import sys
import numpy as np
from solver import Entropy, solve
from solver.fem import Mesh
sphere = Mesh.sphere(0.2)
rho0 = 1 + 0.5 * sphere.points[:, 2]
solution = solve(Entropy(1.0), sphere, rho0, (0.0, 0.1))
points, rho = sphere.gather(solution.rho[-1])
_, weights = sphere.gather(sphere.weights)
if sphere.comm.rank == 0:
    np.save(sys.argv[1], np.column_stack([points, rho, weights]))
"""


def test_mpi_on_the_sphere_gives_the_serial_answer(fem, tmp_path):
    serial, parallel = map(np.load, serial_and_parallel(MPI_SCRIPT, tmp_path))
    assert serial.shape == (412, 5)
    np.testing.assert_allclose(parallel[:, :3], serial[:, :3], atol=1e-15)
    np.testing.assert_allclose(parallel[:, 4], serial[:, 4], rtol=1e-12)
    np.testing.assert_allclose(parallel[:, 3], serial[:, 3], rtol=0, atol=1e-10 * serial[:, 3].max())


# -- the Sphere domain (no DOLFINx needed) ---------------------------------------------------


def test_sphere_domain_project_contains_sample(rng):
    sphere = Sphere([0.0, 0.0, 0.0])
    assert sphere.dim == 3 and sphere.volume == pytest.approx(4 * math.pi) and not sphere.convex
    theta = 3 * rng.normal(size=(500, 3))
    projected = sphere.project(theta)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1, rtol=1e-15)
    np.testing.assert_allclose(projected, theta / np.linalg.norm(theta, axis=1, keepdims=True), rtol=1e-15)
    assert sphere.contains(projected).all() and not sphere.contains(theta).any()
    np.testing.assert_allclose(sphere.project(projected), projected, rtol=0, atol=4e-16)  # to round-off
    assert sphere.contains(sphere.project(np.zeros((1, 3)))).all()  # the centre goes to some point of S²
    samples = sphere.sample(rng, 40_000)
    assert sphere.contains(samples).all()
    # uniform on S²: mean 0, second moments I/3, z uniform on [−1, 1] (Archimedes)
    assert np.abs(samples.mean(axis=0)).max() < 0.02
    np.testing.assert_allclose(samples.T @ samples / len(samples), np.eye(3) / 3, atol=0.01)
    assert np.abs(np.histogram(samples[:, 2], bins=4, range=(-1, 1))[0] / len(samples) - 0.25).max() < 0.01
    shifted = Sphere([1.0, -2.0], 2.0)
    assert shifted.volume == pytest.approx(4 * math.pi)
    assert shifted.contains(shifted.sample(rng, 100)).all()
    with pytest.raises(ValueError, match="radius must be > 0"):
        Sphere([0.0, 0.0], 0.0)
    with pytest.raises(ValueError, match="at least 2 coordinates"):
        Sphere([0.0])


def test_projected_langevin_particles_are_brownian_motion_on_the_sphere():
    """Noise τ on particles projected onto S² after each step: E z = e^(−2τt) from the north
    pole, as the heat equation's z mode (measured 0.368 against e^(−1) = 0.3679 at m = 4000,
    standard error 0.01)."""
    from solver.particles import simulate

    sphere, tau = Sphere([0.0, 0.0, 0.0]), 1.0
    theta0 = np.tile([0.0, 0.0, 1.0], (4000, 1))
    trajectory = simulate(Entropy(tau), theta0, (0, 0.5), step=1e-3, domain=sphere, save_at=[0, 0.25, 0.5], rng=3)
    assert sphere.contains(trajectory.theta[-1]).all()
    means = trajectory.theta[:, :, 2].mean(axis=1)
    np.testing.assert_allclose(means, np.exp(-2 * tau * trajectory.t), atol=0.03)


@pytest.mark.parametrize("center, radius", [([0.0, 0.0, 0.0], 1.0), ([0.5, -1.0, 2.0], 2.0), ([1.0, 2.0], 1.5)])
def test_sphere_domain_quadrature(center, radius):
    """Exact on polynomials: ∫1 = |S|, ∫(x − c)_k² = r²|S|/d, ∫(z − c_z)⁴ = r⁴|S|·3/15 on S²."""
    sphere = Sphere(center, radius)
    points, weights = sphere.quadrature(0.5)
    assert sphere.contains(points).all()
    assert weights.sum() == pytest.approx(sphere.volume, rel=1e-13)
    offset = points - sphere.center
    np.testing.assert_allclose(weights @ offset**2, radius**2 * sphere.volume / sphere.dim, rtol=1e-13)
    np.testing.assert_allclose(weights @ offset, 0, atol=1e-13 * sphere.volume)
    if sphere.dim == 3:
        assert weights @ offset[:, 2] ** 4 == pytest.approx(radius**4 * sphere.volume / 5, rel=1e-13)
        assert weights @ (offset[:, 0] ** 2 * offset[:, 1] ** 2) == pytest.approx(
            radius**4 * sphere.volume / 15, rel=1e-13)
    with pytest.raises(ValueError, match="quadrature is implemented for circles and 2-spheres"):
        Sphere([0.0] * 4).quadrature(0.5)
