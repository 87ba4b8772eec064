r"""Unstructured simplicial meshes (DOLFINx): a vertex-centred finite-volume scheme on the
dual cells of a P1 mesh, the mass-lumped P1 discretization of ∂tρ = ∇·(ρ∇F'(ρ)).

Unknowns are vertex values ρ_i of a density; vertex i carries the lumped mass
m_i = ∫φ_i (the measure of its dual cell). With the P1 stiffness matrix
K_ij = ∫∇φ_i·∇φ_j, assembled by DOLFINx, the edge ij has the transmissibility
T_ij = −K_ij, which is ≥ 0 on a Delaunay mesh (for triangles: the two angles opposite the
edge sum to at most π). The mesh may be a closed surface in R³ (:meth:`Mesh.sphere`): there
∇ is the tangential gradient along each triangle, K the P1 Laplace–Beltrami stiffness
(T_ij = ½(cot α + cot β)), m_i areas, and ``dim`` = 3 is the ambient dimension. With
ξ = F'(ρ) at the vertices, the flux from i to j is

    F_ij = T_ij (ξ_i − ξ_j) M_ij,   M_ij = min(½(ρ_up + ρ_down), 2ρ_up),
    m_i dρ_i/dt = −Σ_j F_ij,

where ρ_up is the value at the end the flux leaves (ρ_i if ξ_i > ξ_j, else ρ_j) and
ρ_down the other. The centred mobility ½(ρ_i + ρ_j) makes the scheme second order where
ρ is smooth (for the porous medium, T_ij(ξ_i − ξ_j)(ρ_i + ρ_j)/2 = T_ij(ρ_i² − ρ_j²) is
the lumped P1 Laplacian of ρ²); the limit 2ρ_up keeps it positive where ρ varies fast
from cell to cell (the edge of the support). Measured on the disk, the centred-limited
mobility lowers the Barenblatt and Fokker–Planck L1 errors 12 to 14 times at h = 0.025
against the plain upwind ρ_up, with orders 1.8 and 1.7 instead of 0.84 and 0.93.
M is symmetric in (i, j), so F_ji = −F_ij (mass is conserved to round-off); M ≥ 0, so
dF/dt = Σ_i m_i ξ_i dρ_i/dt = −Σ_edges T_ij (ξ_i − ξ_j)² M_ij ≤ 0 (the energy dissipates);
and M ≤ 2ρ_up, so a forward-Euler step keeps ρ ≥ 0 for dt Σ_j T_ij (ξ_i − ξ_j)⁺ M_ij/ρ_i ≤ m_i
(at most twice as strict as plain upwinding). Edges with T_ij < 0 (non-Delaunay) would
break the last two: on a flat mesh they are reported (a warning) and their transmissibility
set to 0; a surface with one is refused.

:class:`Mesh` is a :class:`~solver.discretization.Discretization`: the energies run
unchanged on its vertices and :func:`solver.timeloop.solve` takes it in place of a grid,
with every scheme. Under MPI (``mpirun -n 2``) each rank owns a part of the vertices (the
cells split by :data:`PARTITIONS`, the vertices owned as DOLFINx assigns them, numbered
along :func:`z_order` on each rank), ghost values come from the neighbouring ranks, and its reductions
(``integrate``, ``minimum``, ``all_finite``, …) are global, so every decision of the time
loop (step size, rejection, stopping on a NaN) is the same on every rank and the answer
is the serial one to round-off. DOLFINx is imported lazily: the rest of the package
works without it.
"""

import functools
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse
from numba import njit, prange

from .discretization import Discretization, checked_out, sampled_kernel
from .kernels.subnormals import flush_to_zero, restore

DEFAULT_PARTITION = "bisection"
"""The split of :data:`PARTITIONS` that :func:`read`, :meth:`Mesh.sphere` and a config's
``[mesh] partition`` take unless told another."""

PAIR_MATRIX_LIMIT = 2**26
"""Most entries of a vertex-pair matrix :meth:`Mesh.kernel_convolution` keeps (512 MiB)."""


def _dolfinx():
    """The DOLFINx modules the mesh solver uses (imported on first use): (dolfinx, ufl, MPI)."""
    from solver import dolfinx_compat

    return dolfinx_compat.load()


def _function_space(dolfinx, mesh):
    """The P1 space (:func:`solver.dolfinx_compat.p1_space`)."""
    from solver import dolfinx_compat

    return dolfinx_compat.p1_space(dolfinx, mesh)


def _cells(dofmap, vertices_per_cell):
    """Cell → vertex (dof) table (:func:`solver.dolfinx_compat.cell_dofs`)."""
    from solver import dolfinx_compat

    return dolfinx_compat.cell_dofs(dofmap, vertices_per_cell)


def _geometry_cells(mesh, vertices_per_cell):
    """Cell → geometry node table (:func:`solver.dolfinx_compat.cell_nodes`)."""
    from solver import dolfinx_compat

    return dolfinx_compat.cell_nodes(mesh, vertices_per_cell)


def read(path, comm=None, partition=DEFAULT_PARTITION):
    """Read a gmsh ``.msh`` file into a :class:`Mesh` (distributed over ``comm``, default
    MPI.COMM_WORLD, split over the ranks by ``partition``: :data:`PARTITIONS`). A missing
    file raises FileNotFoundError, an unreadable one ValueError, on every rank: rank 0 alone
    reads the file (so the ranks cannot read different meshes) and tells the others. A
    triangle mesh whose points leave the plane z = 0 is read as a surface in R³."""
    path = Path(path)

    def merge(gmsh):
        if not path.is_file():
            raise FileNotFoundError(f"mesh file {path} does not exist (meshes/generate.py makes the standard ones)")
        try:
            gmsh.merge(str(path))
            dim = gmsh.model.getDimension()
            if dim < 1 or not any(len(tags) for tags in gmsh.model.mesh.getElements(dim)[1]):
                raise ValueError("no cells")
        except Exception as error:
            raise ValueError(f"mesh file {path} is not a readable gmsh mesh with cells ({error}); "
                             "regenerate it with meshes/generate.py") from error

    return _from_gmsh(merge, path.stem, comm, partition)


def coordinate_bisection(points, parts):
    """The part (0 to ``parts`` − 1) of each of ``points`` (n, d) by recursive coordinate
    bisection: the points are cut by a plane normal to the longest side of their bounding
    box, k = ⌊parts/2⌋ parts' share of them (⌊n k/parts⌋, the lowest along that axis) on one
    side and the rest on the other, and each side is cut again into k and parts − k parts,
    until one part is left. The parts have ⌊n/parts⌋ or ⌈n/parts⌉ points (up to one point's
    rounding per level), and each is a box cut out by straight planes."""
    part = np.zeros(len(points), dtype=np.int32)

    def cut(members, first, count):
        if count == 1 or len(members) == 0:
            part[members] = first
            return
        inside = points[members]
        axis = int(np.argmax(inside.max(axis=0) - inside.min(axis=0)))
        members = members[np.argsort(inside[:, axis], kind="stable")]
        lower = count // 2
        split = len(members) * lower // count
        cut(members[:split], first, lower)
        cut(members[split:], first + lower, count - lower)

    cut(np.arange(len(points)), 0, parts)
    return part


PARTITIONS = {"bisection": coordinate_bisection, "graph": None}
"""How :func:`read` and :meth:`Mesh.sphere` split a mesh's cells over the MPI ranks:
``"bisection"`` by :func:`coordinate_bisection` of the cells' centroids (equal numbers of
cells, straight cuts; the same split in every launch, whatever the MPI or the partitioner
library), ``"graph"`` by DOLFINx's default graph partitioner (PT-SCOTCH, ParMETIS or KaHIP:
the fewest edges cut, parts of any shape)."""


def _from_gmsh(build, name, comm, partition):
    """The :class:`Mesh` of the gmsh model that ``build(gmsh)`` makes in a fresh gmsh
    session on rank 0 of ``comm`` (default MPI.COMM_WORLD), distributed over ``comm`` by
    ``partition`` (:data:`PARTITIONS`).

    The mesh has the model's highest dimension (its cells: triangles or tetrahedra) and as
    many coordinates as that dimension, or 3 if a coordinate beyond it is nonzero (a surface
    in R³). DOLFINx reads the cells of physical groups: one is added if the model has none.
    """
    if partition not in PARTITIONS:
        raise ValueError(f"unknown partition {partition!r}: the mesh's cells are split over the ranks by one of "
                         f"{', '.join(map(repr, PARTITIONS))}")
    dolfinx, _, MPI = _dolfinx()
    import gmsh

    from solver import dolfinx_compat

    comm = MPI.COMM_WORLD if comm is None else comm
    model = gdim = problem = None
    if comm.rank == 0:
        gmsh.initialize(interruptible=False)
        gmsh.option.setNumber("General.Terminal", 0)
        try:
            build(gmsh)
            dim = gmsh.model.getDimension()
            if not gmsh.model.getPhysicalGroups(dim):
                gmsh.model.addPhysicalGroup(dim, [tag for _, tag in gmsh.model.getEntities(dim)], 1)
            coordinates = gmsh.model.mesh.getNodes()[1].reshape(-1, 3)
            gdim = 3 if np.any(coordinates[:, dim:]) else dim
            model = gmsh.model
        except Exception as error:  # noqa: BLE001 -- raised on every rank below
            gmsh.finalize()
            problem = error
    gdim, problem = comm.bcast((gdim, problem), root=0)  # an error ends every rank, none waits for the mesh
    if problem is not None:
        raise problem
    try:
        distributed = dolfinx_compat.mesh_from_gmsh_model(dolfinx, model, comm, 0, gdim, PARTITIONS[partition])
    finally:
        if comm.rank == 0:
            gmsh.finalize()
    return Mesh(distributed, name=name)


def add_sphere(gmsh, size):
    r"""Add to the current gmsh session a model ``"sphere"``: a Delaunay triangulation of the
    unit sphere S² ⊂ R³ with edges of length about ``size``, as a discrete surface.

    1. gmsh's Frontal-Delaunay algorithm (``Mesh.Algorithm = 6``) meshes the surface of the
       OpenCASCADE unit sphere; its vertices are kept, projected onto S² (x ↦ x/|x|: gmsh
       leaves them there to round-off, 2e-16, and the projection makes |x| = 1 exact to it).
    2. The triangles are replaced by the faces of the convex hull of those vertices (Qhull):
       the Delaunay triangulation on the sphere (every face's circumscribed cap holds no other
       vertex). gmsh's own triangles are not Delaunay on its parametrization's seam and poles
       (2 or 3 edges with negative cotangent weight at sizes 0.4 to 0.1).

    The hull's triangles are Delaunay in the sense the scheme needs, T_ij = ½(cot α + cot β)
    ≥ 0 for the angles α, β opposite edge ij in its two flat triangles: in the plane through
    the edge's midpoint M normal to the edge, let u, v be the unit directions from M into the
    two faces. The circumcentre of a face is the foot of the sphere's centre O on its plane,
    so cot α = 2(O − M)·u/|ij| and cot β = 2(O − M)·v/|ij|. O lies inside the hull, hence in
    the wedge spanned by u and v: O − M = a u + b v with a, b ≥ 0, and
    cot α + cot β = 2(a + b)(1 + u·v)/|ij| ≥ 0.

    The triangles are oriented outward (normal · centroid > 0).
    """
    from scipy.spatial import ConvexHull

    gmsh.model.add("sphere-vertices")
    gmsh.model.occ.addSphere(0, 0, 0, 1)
    gmsh.model.occ.synchronize()
    gmsh.option.setNumber("Mesh.MeshSizeMax", size)
    gmsh.option.setNumber("Mesh.MeshSizeMin", size)
    gmsh.option.setNumber("Mesh.Algorithm", 6)  # Frontal-Delaunay: near-equilateral, well spread vertices
    gmsh.model.mesh.generate(2)
    points = gmsh.model.mesh.getNodes()[1].reshape(-1, 3)
    gmsh.model.remove()
    points = points / np.linalg.norm(points, axis=1, keepdims=True)
    triangles = ConvexHull(points).simplices
    if len(np.unique(triangles)) != len(points):
        raise ValueError(f"add_sphere: {len(points) - len(np.unique(triangles))} of gmsh's vertices are not "
                         "vertices of their convex hull (duplicates)")
    a, b, c = (points[triangles[:, k]] for k in range(3))
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    triangles[inward] = triangles[inward][:, ::-1]
    gmsh.model.add("sphere")
    surface = gmsh.model.addDiscreteEntity(2)
    gmsh.model.mesh.addNodes(2, surface, np.arange(1, len(points) + 1), points.ravel())
    gmsh.model.mesh.addElementsByType(surface, 2, [], (triangles + 1).ravel())  # 2: 3-node triangles
    gmsh.model.addPhysicalGroup(2, [surface], 1)


@njit(cache=True)
def edge_mobility(upwind, downwind):
    """M = min(½(ρ_up + ρ_down), 2ρ_up): the centred mobility, limited to twice the upwind value."""
    return min(0.5 * (upwind + downwind), 2.0 * upwind)


BLOCK_ROWS = 32
"""Owned vertices (CSR rows) per task of the edge kernels: tested for mass together, and
the lanes of one vectorized loop (:func:`kernel_rows`)."""

KERNEL_INDEX = np.uint32
"""The integer type of the edge kernels' columns and stencils (their offsets are
``np.uint64``). Unsigned, so Numba skips the wraparound of negative indices (a sign test
and a select per array access), which also keeps the addresses of a block's lanes affine,
as the vectorizer needs."""

ONE, LANES = np.uint64(1), np.uint64(BLOCK_ROWS)  # the unsigned steps of the kernels' loops


def z_order(points, bits=10):
    """The permutation that sorts ``points`` (n, d) along a Z-order (Morton) curve: the bits
    of their coordinates, scaled to integers of ``bits`` bits over the bounding box,
    interleaved. Consecutive points along it make compact patches."""
    low, high = points.min(axis=0, initial=np.inf), points.max(axis=0, initial=-np.inf)
    cells = ((points - low) / np.where(high > low, high - low, 1.0) * (2**bits - 1)).astype(np.int64)
    dim = points.shape[1]
    code = np.zeros(len(points), dtype=np.int64)
    for bit in range(bits):
        for axis in range(dim):
            code |= ((cells[:, axis] >> bit) & 1) << (bit * dim + axis)
    return np.argsort(code, kind="stable")


def kernel_rows(indptr, columns, transmissibility):
    """The arrays of the edge kernels, (slot_start, slot_column, slot_transmissibility,
    stencil_start, stencil), from the CSR rows of the owned vertices (numbered along
    :func:`z_order`, so that a block of ``BLOCK_ROWS`` consecutive rows is a compact patch).

    Block b (rows b·B up to (b + 1)·B, B = ``BLOCK_ROWS``) has w_b slots per row, w_b the
    largest degree of its rows, stored neighbour by neighbour: slot
    slot_start[b] + k·B + r holds the k-th CSR entry of row b·B + r (column j and T_ij), or,
    past the row's degree, the row itself with T = 0, a zero flux (ξ_i − ξ_i = 0). So the
    k-th neighbours of a block's rows are contiguous and the loop over its rows vectorizes
    (ELLPACK by blocks, "SELL-B"), and each row still sums its fluxes in CSR order.

    The stencil of block b, ``stencil[stencil_start[b]:stencil_start[b + 1]]``: the
    positions (in the neighbourhood arrays, increasing) of the vertices of its rows and of
    their neighbours, every vertex whose ρ the block's fluxes depend on."""
    owned = len(indptr) - 1
    blocks = -(-owned // BLOCK_ROWS)
    row_block = np.arange(owned) // BLOCK_ROWS
    degree = np.diff(indptr)
    width = np.zeros(blocks, dtype=np.int64)
    np.maximum.at(width, row_block, degree)
    slot_start = np.concatenate([[0], np.cumsum(width * BLOCK_ROWS)])
    slots = int(slot_start[-1])
    # every slot first holds its own row with T = 0 (rows past the last one: the last row)
    slot_block = np.repeat(np.arange(blocks), width * BLOCK_ROWS)
    lane = (np.arange(slots) - slot_start[slot_block]) % BLOCK_ROWS
    slot_column = np.minimum(slot_block * BLOCK_ROWS + lane, owned - 1)
    slot_transmissibility = np.zeros(slots)
    rows = np.repeat(np.arange(owned), degree)
    entry = slot_start[row_block[rows]] + (np.arange(len(columns)) - indptr[rows]) * BLOCK_ROWS + rows % BLOCK_ROWS
    slot_column[entry], slot_transmissibility[entry] = columns, transmissibility
    size = int(np.max(columns, initial=owned - 1)) + 1
    keys = np.unique(np.concatenate([row_block, row_block[rows]]) * size
                     + np.concatenate([np.arange(owned), columns]))  # by block, then position
    stencil_start = np.searchsorted(keys // size, np.arange(blocks + 1))
    if max(size, len(keys)) > np.iinfo(KERNEL_INDEX).max:
        raise ValueError(f"kernel_rows: indices up to {max(size, len(keys))} do not fit {KERNEL_INDEX.__name__}")
    offsets = functools.partial(np.asarray, dtype=np.uint64)
    return (offsets(slot_start), slot_column.astype(KERNEL_INDEX), slot_transmissibility, offsets(stencil_start),
            (keys % size).astype(KERNEL_INDEX))


# The kernels below are written for LLVM's vectorizer: unsigned indices and while loops,
# and no bool variable. A range loop or a bool in a parallel loop's body makes Numba's
# alias analysis of that body find aliases (its iterator, the bool), and Numba then
# withholds the ``noalias`` attribute from the arrays; without it the flux loop, whose
# gathers of ρ_j and ξ_j have no known bounds, does not vectorize. The arrays written
# share no memory with those read (Mesh._out checks it), as ``noalias`` states. NumPy's
# error model: no division raises (m_i > 0 anyway), so every task restores the MXCSR it set.

@njit(inline="always")
def _stencil_mass(stencil_start, stencil, rho, block):
    """How many vertices of block ``block``'s stencil have ρ ≠ 0."""
    count = 0
    s = stencil_start[block]
    while s < stencil_start[block + ONE]:
        count += 1 if rho[stencil[s]] != 0.0 else 0
        s += ONE
    return count


@njit(inline="always")
def _net_inflows(slot_start, slot_column, slot_transmissibility, stencil_start, stencil, rho, xi, block, owned,
                 total, leaving, outflow):
    """total_i = −Σ_j F_ij, F_ij = T_ij (ξ_i − ξ_j) M_ij, for the rows i of block ``block``
    (0 without mass in its stencil), each row's fluxes added in CSR order, and, if
    ``outflow`` (1; else 0), leaving_i = Σ_j F_ij⁺; returns the block's (first, last) rows."""
    first = block * LANES
    last = min(first + LANES, owned)
    i = first
    while i < last:
        total[i] = 0.0
        if outflow:
            leaving[i] = 0.0
        i += ONE
    if _stencil_mass(stencil_start, stencil, rho, block) > 0:
        neighbour = slot_start[block]
        while neighbour < slot_start[block + ONE]:  # the k-th neighbours of the rows, as lanes
            i, p = first, neighbour
            while i < last:
                j = slot_column[p]
                drop = xi[i] - xi[j]
                upwind = rho[i] if drop > 0.0 else rho[j]  # selects, not branches (and no tuple: an alias)
                downwind = rho[j] if drop > 0.0 else rho[i]
                flux = slot_transmissibility[p] * drop * edge_mobility(upwind, downwind)
                total[i] -= flux
                if outflow:
                    leaving[i] += flux if drop > 0.0 else 0.0
                i += ONE
                p += ONE
            neighbour += LANES
    return first, last


@njit(parallel=True, cache=True, error_model="numpy")
def edge_rate(slot_start, slot_column, slot_transmissibility, masses, stencil_start, stencil, rho, xi, rate):
    """rate_i = −Σ_j F_ij / m_i with F_ij = T_ij (ξ_i − ξ_j) M_ij over the owned vertices,
    into ``rate``. The other arrays are those of :func:`kernel_rows`, ``masses`` the owned
    vertices' m_i; ``rho`` and ``xi`` are the values of the rows' neighbourhood (the owned
    vertices first). ``rate`` shares no memory with them.

    Fluxes only next to mass: one task per block of ``BLOCK_ROWS`` rows (compact patches of
    vertices, numbered along :func:`z_order`), which computes its rows only if ρ ≠ 0
    somewhere in its stencil (the vertices of its rows and their neighbours), and else sets
    their rate to 0. That is exact for a finite ξ (the time loop stops on any other): with
    ρ_i = ρ_j = 0, M_ij = 0 and F_ij = ±0, so a row whose vertex and neighbours are empty
    sums only zeros, rate_i = 0 bit for bit (:func:`edge_rate_reference` computes every
    edge). Under MPI the stencil's values come from the neighbourhood, ghosts included.
    A block's rows are the lanes of a vectorized loop over their k-th neighbours
    (:func:`kernel_rows`), in flush-to-zero mode (:mod:`solver.kernels.subnormals`).
    """
    owned = np.uint64(masses.size)
    for task in prange(stencil_start.size - 1):
        control = flush_to_zero()
        first, last = _net_inflows(slot_start, slot_column, slot_transmissibility, stencil_start, stencil, rho, xi,
                                   np.uint64(task), owned, rate, rate, 0)
        i = first
        while i < last:
            rate[i] /= masses[i]
            i += ONE
        restore(control)


@njit(parallel=True, cache=True, error_model="numpy")
def edge_rate_and_outflow(slot_start, slot_column, slot_transmissibility, masses, stencil_start, stencil, rho, xi,
                          rate, leaving):
    """:func:`edge_rate` (into ``rate``), returning max_i outflow_i too, outflow_i =
    Σ_j T_ij (ξ_i − ξ_j)⁺ M_ij / (m_i ρ_i) (``leaving``: scratch of the owned vertices'
    size, sharing no memory with the others): the Euler positivity limit is
    dt ≤ 1/max outflow (0 without outflow). The time loops ask for it once per step, at the
    state the step starts from; the stages' rates skip it (:func:`edge_rate`).
    """
    owned = np.uint64(masses.size)
    top_outflow = 0.0
    for task in prange(stencil_start.size - 1):
        control = flush_to_zero()
        first, last = _net_inflows(slot_start, slot_column, slot_transmissibility, stencil_start, stencil, rho, xi,
                                   np.uint64(task), owned, rate, leaving, 1)
        block_top = 0.0
        i = first
        while i < last:
            rate[i] /= masses[i]
            # leaving > 0: ρ_i > 0 (M ≤ 2ρ_i), and leaving/ρ_i ≤ 2 Σ_j T_ij (ξ_i − ξ_j)⁺ is finite (m_i ρ_i
            # could flush to 0); max skips a NaN (from ρ_i = ∞, in no state the time loop accepts)
            if leaving[i] > 0.0:
                block_top = max(block_top, leaving[i] / rho[i] / masses[i])
            i += ONE
        top_outflow = max(top_outflow, block_top)
        restore(control)
    return top_outflow


@njit(parallel=True, cache=True, error_model="numpy")
def edge_rkl2_stage(slot_start, slot_column, slot_transmissibility, masses, stencil_start, stencil, rho, xi, previous,
                    start, start_rate, coefficients, out):
    """An RKL2 stage in the pass of :func:`edge_rate`: out_i = μ ρ_i + ν previous_i +
    (1 − μ − ν) start_i + a L_i + b start_rate_i, with L the rate (never stored) and
    (μ, ν, a, b) = ``coefficients``; added in the order of
    :meth:`solver.discretization.Discretization.rkl2_stage`'s NumPy expression, so the same
    numbers bit for bit. ``rho`` and ``xi`` are the neighbourhood's, the other arrays the
    owned vertices'; ``out`` shares no memory with them. Returns the number of negative
    values of ``out``."""
    mu, nu, a, b = coefficients[0], coefficients[1], coefficients[2], coefficients[3]
    rest = 1.0 - mu - nu
    owned = np.uint64(masses.size)
    negatives = 0
    for task in prange(stencil_start.size - 1):
        control = flush_to_zero()
        first, last = _net_inflows(slot_start, slot_column, slot_transmissibility, stencil_start, stencil, rho, xi,
                                   np.uint64(task), owned, out, out, 0)
        i = first
        while i < last:
            out[i] = mu * rho[i] + nu * previous[i] + rest * start[i] + a * (out[i] / masses[i]) + b * start_rate[i]
            negatives += 1 if out[i] < 0.0 else 0
            i += ONE
        restore(control)
    return negatives


@njit(fastmath={"reassoc"}, cache=True)
def weighted_sum(values, weights):
    """Σ_i values_i weights_i in one pass, without a temporary array (the additions
    reassociated, so vectorized: the sum to round-off, the same on every call)."""
    total = 0.0
    for i in range(values.size):
        total += values[i] * weights[i]
    return total


def edge_rate_reference(indptr, columns, transmissibility, rho, xi, masses):
    """NumPy reference of :func:`edge_rate` and :func:`edge_rate_and_outflow`, every edge
    computed: (rate, outflow), the same operations in the same order, so the same numbers
    bit for bit."""
    rows = np.repeat(np.arange(len(masses)), np.diff(indptr))
    rho_own = rho[: len(masses)]  # the owned vertices come first in the neighbourhood
    rho_rows, xi_rows = rho_own[rows], xi[: len(masses)][rows]
    drop = xi_rows - xi[columns]
    upwind, downwind = np.where(drop > 0, rho_rows, rho[columns]), np.where(drop > 0, rho[columns], rho_rows)
    flux = transmissibility * drop * np.minimum(0.5 * (upwind + downwind), 2 * upwind)
    rate = -np.bincount(rows, flux, minlength=len(masses)) / masses
    leaving = np.bincount(rows, np.where(drop > 0, flux, 0.0), minlength=len(masses))
    outflow = np.where(leaving > 0, leaving / np.where(leaving > 0, rho_own, 1.0) / masses, 0.0)
    return rate, outflow


class GhostExchange:
    """The values of a rank's ghosts (vertices other ranks own) from their owners, by
    persistent point-to-point messages with the neighbouring ranks only: one message each
    way per neighbour and call, the pairs (ρ_i, ξ_i) of the vertices it needs.

    A PETSc ``VecScatter`` of the whole neighbourhood did the same with a copy of every
    owned value through index lists and PETSc's call overhead: about 100 µs a call on 2
    ranks (MPICH) against 8 µs for an ``Allgather``, twice per SSP-RK2 step.

    Parameters
    ----------
    comm : mpi4py communicator
    first : int
        The global index of this rank's first vertex (ranks own consecutive ranges, in rank order).
    ghosts : array of int
        The global indices of the ghosts, increasing.
    position : array of int
        Where each owned vertex, by its global index minus ``first``, is in this rank's arrays.
    """

    TAG = 16

    def __init__(self, comm, first, ghosts, position):
        from mpi4py import MPI

        self._MPI = MPI
        starts = np.array(comm.allgather(first))
        owners = np.searchsorted(starts, ghosts, side="right") - 1  # ranks may own no vertex: the last start wins
        wanted = comm.alltoall([ghosts[owners == rank] for rank in range(comm.size)])  # what each rank needs of mine
        self.send_index = position[np.concatenate([np.asarray(indices, dtype=np.int64) - first for indices in wanted])]
        self._send, self._received = np.empty((len(self.send_index), 2)), np.empty((len(ghosts), 2))
        sent = np.concatenate([[0], np.cumsum([len(indices) for indices in wanted])])
        received = np.concatenate([[0], np.cumsum(np.bincount(owners, minlength=comm.size))])
        self._requests = [comm.Recv_init(self._received[received[rank]:received[rank + 1]], rank, self.TAG)
                          for rank in range(comm.size) if received[rank + 1] > received[rank]]
        self._requests += [comm.Send_init(self._send[sent[rank]:sent[rank + 1]], rank, self.TAG)
                           for rank in range(comm.size) if sent[rank + 1] > sent[rank]]

    def exchange(self, rho, xi):
        """(ρ, ξ) at the ghosts, from this rank's owned ``rho`` and ``xi`` sent to the ranks that need them."""
        self._send[:, 0], self._send[:, 1] = rho[self.send_index], xi[self.send_index]
        self._MPI.Prequest.Startall(self._requests)
        self._MPI.Request.Waitall(self._requests)
        return self._received[:, 0], self._received[:, 1]


class Mesh(Discretization):
    """A simplicial mesh as the solver sees it: vertices with lumped masses, and the edge
    transmissibilities T_ij = −K_ij of the P1 stiffness matrix (see the module doc).

    A flat mesh (triangles in R², tetrahedra in R³) or a closed surface in R³ (triangles
    whose vertices have three coordinates, such as :meth:`sphere`). On a surface the
    gradients are tangential (UFL's ∇ on a manifold cell is the gradient along the cell) and
    K_ij = ∫∇φ_i·∇φ_j, m_i = ∫φ_i are integrals over the triangles: the P1 Laplace–Beltrami
    operator, with T_ij = ½(cot α_ij + cot β_ij) for the angles opposite edge ij.

    Attributes
    ----------
    points : array (n, dim)
        The vertices this rank owns (all of them in a serial run), numbered along
        :func:`z_order` (densities are arrays in this order).
    dolfinx_index : array of int
        DOLFINx's local number of each vertex: the owned ones in this order, then the ghosts.
    cells : array (cells, tdim + 1)
        The cells on this rank as rows of vertex positions (owned vertices, then ghosts in
        DOLFINx's order, not that of :meth:`neighbourhood`): the cells it owns first, then
        those it holds as ghosts (DOLFINx 0.5's meshes read from gmsh hold the other ranks'
        cells next to a facet of their own).
    owned_cells : int
        How many of ``cells`` this rank owns (each cell is owned by one rank).
    owned, vertices : int
        The vertices this rank owns, and those of the whole mesh (plain numbers on every
        rank, so that a rank may print them or the mesh's repr alone).
    weights : array (n,)
        Their lumped masses m_i = ∫φ_i (surface areas on a surface).
    on_boundary : bool array (n,)
        Which of them lie on the boundary (a vertex of a facet of one cell only; none on a
        closed surface).
    dim : int
        The ambient dimension: the number of coordinates of a point (3 on a surface in R³).
    tdim : int
        The dimension of the cells (2 for triangles, on a surface too).
    obtuse_angles, non_delaunay_edges, boundary_facets : int
        Counts over the whole mesh (triangles: angles > π/2; edges with T_ij < 0; facets of
        one cell only).

    Raises
    ------
    ValueError
        For a surface that is not closed (``boundary_facets`` > 0: on a surface that mostly
        means a seam whose vertices were not merged) or not Delaunay (``non_delaunay_edges``
        > 0). A flat mesh that is not Delaunay is accepted with a warning (its negative
        transmissibilities set to 0).
    """

    def __init__(self, mesh, name="mesh"):
        dolfinx, ufl, MPI = _dolfinx()
        self.mesh, self.name, self.comm, self._MPI = mesh, name, mesh.comm, MPI
        self.tdim = mesh.topology.dim
        beyond = mesh.geometry.x[:, self.tdim:mesh.geometry.dim]
        self.dim = mesh.geometry.dim if self.global_sum(int(np.any(beyond))) else self.tdim
        self.space = V = _function_space(dolfinx, mesh)
        index_map = V.dofmap.index_map
        self.owned = index_map.size_local
        self.vertices = index_map.size_global  # the whole mesh's: a number, not a collective call on each use
        cells = _cells(V.dofmap, self.tdim + 1)
        self.owned_cells = mesh.topology.index_map(self.tdim).size_local  # first in cells; ghost cells after
        # the vertices' coordinates as read (V.tabulate_dof_coordinates() pushes reference
        # points forward: DOLFINx 0.11 moves some by round-off, differently on different ranks)
        coordinates = np.empty((index_map.size_local + index_map.num_ghosts, self.dim))
        coordinates[cells] = mesh.geometry.x[_geometry_cells(mesh, self.tdim + 1), : self.dim]
        # this rank's vertices numbered along z_order (edge_rate's blocks of consecutive rows
        # are then compact patches, and its arrays are read in order), the ghosts after them:
        # vertex k here is DOLFINx's local vertex dolfinx_index[k], and DOLFINx's v is position[v]
        self.dolfinx_index = np.concatenate([z_order(coordinates[: self.owned]),
                                             np.arange(self.owned, len(coordinates))])
        position = np.empty_like(self.dolfinx_index)
        position[self.dolfinx_index] = np.arange(len(position))
        self.cells, coordinates = position[cells], coordinates[self.dolfinx_index]
        self.points = np.ascontiguousarray(coordinates[: self.owned])
        mesh.topology.create_connectivity(self.tdim - 1, self.tdim)
        exterior = dolfinx.mesh.exterior_facet_indices(mesh.topology)
        self.boundary_facets = self.global_sum(int(np.count_nonzero(
            exterior < mesh.topology.index_map(self.tdim - 1).size_local)))
        on_exterior = position[dolfinx.fem.locate_dofs_topological(V, self.tdim - 1, exterior)]
        self.on_boundary = np.zeros(self.owned, dtype=bool)
        self.on_boundary[on_exterior[on_exterior < self.owned]] = True
        from petsc4py import PETSc

        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        stiffness = dolfinx.fem.petsc.assemble_matrix(dolfinx.fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx))
        stiffness.assemble()
        lumped = dolfinx.fem.petsc.assemble_vector(dolfinx.fem.form(v * ufl.dx))
        lumped.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.weights = lumped.array[self.dolfinx_index[: self.owned]]
        indptr, global_columns, values = stiffness.getValuesCSR()
        first = stiffness.getOwnershipRange()[0]  # the global index of this rank's first vertex
        own_global = first + np.arange(self.owned)
        global_rows = np.repeat(own_global, np.diff(indptr))
        off_diagonal = global_columns != global_rows
        # the values a rank's rows need: its own, then its neighbours' on other ranks (the
        # ghosts, in increasing global index; DOLFINx's ghosts need not hold every neighbour)
        neighbours = global_columns[off_diagonal]
        own_column = (neighbours >= first) & (neighbours < first + self.owned)
        ghosts = np.unique(neighbours[~own_column])
        self._ghosts = GhostExchange(self.comm, first, ghosts, position) if self.comm.size > 1 else None
        transmissibility = -values[off_diagonal]
        negative = transmissibility < -1e-12 * np.abs(transmissibility).max(initial=0.0)
        # an edge appears in the rows of both its ends (on one rank or two): count it once
        self.non_delaunay_edges = self.global_sum(int(np.count_nonzero(
            negative & (global_rows[off_diagonal] < global_columns[off_diagonal]))))
        self.obtuse_angles = self.global_sum(
            _count_obtuse(coordinates, self.cells[: self.owned_cells]))
        if self.surface and self.boundary_facets:
            raise ValueError(f"mesh {name}: the surface is not closed: {self.boundary_facets} of its edges belong to "
                             "one triangle only (a hole, or a seam whose vertices were not merged); the mesh "
                             "solver runs on closed surfaces (Mesh.sphere makes one)")
        if self.non_delaunay_edges:
            why = (f"their two opposite angles sum to more than π; {self.obtuse_angles} obtuse angles in all"
                   if self.tdim == 2 else "the dihedral angles opposite them are too large")
            if self.surface:
                raise ValueError(f"mesh {name}: the surface is not Delaunay: {self.non_delaunay_edges} edges have "
                                 f"negative transmissibilities −K_ij ({why}), which break positivity and energy "
                                 "dissipation; retriangulate its vertices (Mesh.sphere: by their convex hull)")
            warnings.warn(
                f"mesh {name}: {self.non_delaunay_edges} edges are not Delaunay ({why}): their transmissibilities "
                "−K_ij are negative, which would break positivity and energy dissipation, so they are set to 0, "
                "which loses consistency on those edges; regenerate the mesh with a Delaunay algorithm", stacklevel=2)
        rows = position[np.repeat(np.arange(self.owned), np.diff(indptr))[off_diagonal]]
        entries = np.argsort(rows, kind="stable")  # row by row in this numbering
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.owned))]).astype(np.int64)
        self.columns = np.where(own_column, position[np.where(own_column, neighbours - first, 0)],
                                self.owned + np.searchsorted(ghosts, neighbours))[entries].astype(np.int64)
        self.transmissibility = np.maximum(transmissibility, 0.0)[entries]
        rows = rows[entries]
        # max_i Σ_j T_ij/m_i: the forward-Euler limit of linear diffusion is 1/(D · this)
        self.max_connectivity = self.maximum(np.bincount(rows, self.transmissibility, minlength=self.owned)
                                             / self.weights)
        self._boundary = None  # boundary edges, made on first use by particles (see boundary)

    @classmethod
    def sphere(cls, size=0.2, comm=None, partition=DEFAULT_PARTITION):
        """The unit sphere S² ⊂ R³ as a closed Delaunay surface mesh with edges of length about
        ``size`` (:func:`add_sphere`; sizes 0.4, 0.2, 0.1, 0.05 give 101, 412, 1578, 6093
        vertices), made by gmsh in memory on rank 0 and distributed over ``comm`` by
        ``partition`` (:data:`PARTITIONS`).
        ``meshes/generate.py sphere`` writes the same meshes to files."""
        if not 0 < size <= 1:
            raise ValueError(f"Mesh.sphere: size must be in (0, 1] (the unit sphere), got {size}")
        return _from_gmsh(functools.partial(add_sphere, size=size), f"sphere_{size:g}", comm, partition)

    @property
    def surface(self):
        """Whether the mesh is a surface in a higher-dimensional space (dim > tdim)."""
        return self.dim > self.tdim

    def __repr__(self):
        kind = f"{self.tdim}D surface in {self.dim}D" if self.surface else f"{self.dim}D"
        return f"Mesh({self.name!r}, {kind}, {self.vertices} vertices)"

    # -- the discretization protocol --------------------------------------------------
    @property
    def shape(self):
        """The shape of a density on this rank: one value per owned vertex."""
        return (self.owned,)

    @property
    def ranks(self):
        """The number of MPI ranks the vertices are split over."""
        return self.comm.size

    def integrate(self, values):
        """Σ_i m_i values_i over all vertices (all ranks), by :func:`weighted_sum`. Not a
        BLAS dot product: OpenBLAS's threads, waking between the Numba kernels' own, made
        each call tens of times slower on 2 cores."""
        return self.global_sum(self._own_sum(values, "integrate"))

    def _own_sum(self, values, caller):
        """Σ_i m_i values_i over this rank's vertices (:func:`weighted_sum`), after checking
        that ``values`` has one value per owned vertex (Numba does not check the bounds)."""
        values = np.ascontiguousarray(values, dtype=float)
        if values.shape != self.shape:
            raise ValueError(f"mesh {self.name}: {caller} takes values at the {self.owned} owned vertices, "
                             f"got shape {values.shape}")
        return weighted_sum(values, self.weights)

    def minimum(self, values):
        """min_i values_i over all ranks (NaN if one is NaN, the same on every rank; a rank
        without values counts as +∞)."""
        return float(self._each_rank([np.asarray(values, dtype=float).min(initial=np.inf)]).min())

    def maximum(self, values):
        """max_i values_i over all ranks (NaN if one is NaN, the same on every rank; a rank
        without values counts as −∞)."""
        return float(self._each_rank([np.asarray(values, dtype=float).max(initial=-np.inf)]).max())

    def maxima(self, values):
        """The elementwise maxima of a few numbers over all ranks, in one collective (NaN
        where one is NaN, the same on every rank)."""
        return self._each_rank(values).max(axis=0)

    def global_sum(self, number):
        """The sum of a per-rank number (an int or a float, kept) over all ranks."""
        return self._summed([number])[0].item()

    def sums(self, values):
        """The elementwise sums of an array of per-rank partial sums over all ranks, in one
        ``Allreduce`` (a network's output at its data: each rank sums over its own vertices)."""
        return self._summed(np.asarray(values, dtype=float))

    def all_finite(self, values):
        """Whether every value on every rank is finite."""
        return self.global_sum(int(not np.isfinite(values).all())) == 0

    def summary(self, rho, xi, stages=np.inf):
        """(Σ_i m_i ρ_i, min_i ρ_i, whether every ξ_i is finite, min of ``stages``) over all
        ranks in one collective: each rank's (Σ m_i ρ_i, min ρ_i, number of non-finite ξ_i,
        ``stages``) from every rank (:meth:`_each_rank`), reduced in rank order (the same
        numbers everywhere; a NaN in ρ makes the first two NaN). On one process, this
        process's four, without the gathered table's small reductions (a step's fixed cost)."""
        local = (self._own_sum(rho, "summary"), np.asarray(rho).min(initial=np.inf),
                 np.size(xi) - np.count_nonzero(np.isfinite(xi)), stages)
        if self.comm.size == 1:
            mass, lowest, non_finite, stages = local
        else:
            ranks = self._each_rank(local)
            (mass, non_finite), (lowest, stages) = ranks[:, [0, 2]].sum(axis=0), ranks[:, [1, 3]].min(axis=0)
        return float(mass), float(lowest), non_finite == 0, float(stages)

    def _each_rank(self, values):
        """A few per-rank numbers of every rank, one row per rank in rank order: one
        ``Allgather`` (the row itself on one process), for min and max to be taken by NumPy,
        NaN kept and the same on every rank. A buffer ``Allreduce`` of MIN or MAX is neither
        under MPICH: for (NaN, −1) on 2 ranks its MIN answered −1 on rank 0 and NaN on rank 1,
        which would send the ranks down different branches into different collectives."""
        local = np.ascontiguousarray(values, dtype=float)
        if self.comm.size == 1:
            return local[None]
        ranks = np.empty((self.comm.size, len(local)))
        self.comm.Allgather(local, ranks)
        return ranks

    def _summed(self, values):
        """The elementwise sums over all ranks of a short array of per-rank numbers (its
        dtype kept): one buffer ``Allreduce``, nothing on one process. mpi4py's
        ``allreduce`` of Python numbers pickles them and exchanges the pickles point to
        point: medians of 92 µs (MPICH) and 243 µs (Open MPI) a call on 2 ranks against 25
        and 48 µs for ``Allreduce`` (2000 calls, 5 times, under load)."""
        local = np.ascontiguousarray(values)
        if self.comm.size == 1:
            return local
        result = np.empty_like(local)
        self.comm.Allreduce(local, result, op=self._MPI.SUM)
        return result

    def check_density(self, rho, name="rho0"):
        """``rho`` as a float array after checking it is a density on this mesh's vertices."""
        rho = np.asarray(rho, dtype=float)
        if rho.shape != self.shape:
            raise ValueError(f"{name} has shape {rho.shape} but the mesh {self.name} has {self.owned} vertices "
                             f"(on this rank): give one value per vertex (e.g. evaluate on mesh.points)")
        bad = self.global_sum(int(np.count_nonzero(~np.isfinite(rho))))
        if bad:
            raise ValueError(f"{name} has {bad} NaN or infinite values: a density must be finite")
        lowest = self.minimum(rho)
        if lowest < 0:
            raise ValueError(f"{name} has negative values (min {lowest:.3g}): a density must be >= 0")
        if not self.integrate(rho) > 0:
            raise ValueError(f"{name} has zero mass: give a density with a positive integral")
        return rho

    def neighbourhood(self, rho, xi):
        """(ρ, ξ) at every vertex this rank's rows touch: its own vertices, then, under MPI, the
        ghosts (its neighbours on other ranks, in increasing global index) from one exchange of
        the pairs (ρ_i, ξ_i) with the neighbouring ranks (:class:`GhostExchange`); on one
        process ``rho`` and ``xi`` themselves (the rows touch every vertex)."""
        rho, xi = np.ascontiguousarray(rho, dtype=float), np.ascontiguousarray(xi, dtype=float)
        if self._ghosts is None:
            return rho, xi
        ghost_rho, ghost_xi = self._ghosts.exchange(rho, xi)
        return np.concatenate([rho, ghost_rho]), np.concatenate([xi, ghost_xi])

    def initial_density(self, f):
        """The values of ``f`` at the vertices this rank owns."""
        return np.asarray(f(self.points), dtype=float)

    def check_problem(self, energy, jacobian=False, species=None):
        """The species (:meth:`Discretization.check_problem`); under MPI, refuse the terms that
        cannot run on vertices split over ranks (those whose ``distributed`` is False: nonlocal
        terms that sum over all the vertices in one process) and the Newton ``jacobian`` (its
        sparse solve is serial)."""
        super().check_problem(energy, jacobian, species)
        if self.comm.size > 1:
            serial_terms = [term for term in getattr(energy, "terms", [energy]) if not term.distributed]
            if serial_terms:
                raise ValueError(f"{', '.join(map(repr, serial_terms))}: a nonlocal term sums over all the "
                                 f"vertices, which this one does in one process: it cannot run on a mesh split over "
                                 f"ranks; run without mpirun (this run has {self.comm.size} ranks)")
            if jacobian:
                raise ValueError("the implicit mesh scheme runs serially only; use scheme='explicit' or 'rkl2' "
                                 "under MPI")

    def rate_and_outflow(self, rho, xi, rate=None):
        """(dρ/dt at the owned vertices, this rank's max outflow) (the rate into ``rate`` if
        given): a forward-Euler step keeps ρ ≥ 0 for dt ≤ 1/max outflow (see
        :func:`edge_rate_and_outflow`)."""
        arguments = self._kernel_arguments(rho, xi)
        rate = self._out(rate, "rate_and_outflow", arguments[-2:])
        return rate, edge_rate_and_outflow(*arguments, rate, np.empty(self.owned))

    def _out(self, out, caller, inputs):
        """``out`` checked for the kernels (:func:`~solver.discretization.checked_out`), a new
        array if it is None."""
        return checked_out(out, self.shape, f"mesh {self.name}: {caller}", inputs)

    def _kernel_arguments(self, rho, xi):
        """The arguments of :func:`edge_rate` before ``rate``: the mesh's arrays and the
        neighbourhood's (ρ, ξ)."""
        slot_start, slot_column, slot_transmissibility, stencil_start, stencil = self._kernel_rows
        return (slot_start, slot_column, slot_transmissibility, self.weights, stencil_start, stencil,
                *self.neighbourhood(rho, xi))

    @functools.cached_property
    def _kernel_rows(self):
        """The arrays of the edge kernels (:func:`kernel_rows`)."""
        return kernel_rows(self.indptr, self.columns, self.transmissibility)

    def rate(self, rho, xi, second_order=True, out=None):
        """dρ/dt = −(1/m_i) Σ_j F_ij at the owned vertices (:func:`edge_rate`). The
        centred-limited mobility is the mesh's one rate: ``second_order`` changes nothing."""
        arguments = self._kernel_arguments(rho, xi)
        rate = self._out(out, "rate", arguments[-2:])
        edge_rate(*arguments, rate)
        return rate

    def rkl2_stage(self, current, xi, previous, start, start_rate, coefficients, out):
        """The RKL2 stage of :meth:`Discretization.rkl2_stage
        <solver.discretization.Discretization.rkl2_stage>` in the pass of the rate
        (:func:`edge_rkl2_stage`; the same numbers, without the rate's array and the
        expression's five temporaries); ``out`` a float array of the owned vertices' shape
        that shares no memory with the others. The number of negative values over all ranks."""
        inputs = [np.ascontiguousarray(values, dtype=float) for values in (previous, start, start_rate)]
        shapes = [np.shape(values) for values in (current, xi, *inputs)]
        if any(shape != self.shape for shape in shapes):
            raise ValueError(f"mesh {self.name}: rkl2_stage takes values at the {self.owned} owned vertices, got "
                             f"shapes {shapes} (current, xi, previous, start, start_rate)")
        arguments = self._kernel_arguments(current, xi)
        out = self._out(out, "rkl2_stage", [current, xi, *arguments[-2:], *inputs])
        negatives = edge_rkl2_stage(*arguments, *inputs, np.asarray(coefficients, dtype=float), out)
        return self.global_sum(int(negatives))

    def step_limits(self, rho, xi, diffusivity):
        """(transport, parabolic) = (1/max_i outflow_i, 1/(D max_i Σ_j T_ij/m_i)) over all
        ranks; see :meth:`rate_and_step_limits`."""
        return self.rate_and_step_limits(rho, xi, diffusivity)[1]

    def rate_and_step_limits(self, rho, xi, diffusivity):
        """The rate and the forward-Euler limits from one pass of :func:`edge_rate_and_outflow`:
        transport 1/max outflow (positivity) and parabolic 1/(D max_i Σ_j T_ij/m_i) (the
        linearized diffusion D Δρ), both maxima in one global reduction."""
        rate, top_outflow = self.rate_and_outflow(rho, xi)
        top_outflow, diffusivity = self.maxima([top_outflow, np.asarray(diffusivity).max()])
        transport = np.inf if top_outflow == 0 else 1.0 / top_outflow
        parabolic = np.inf if diffusivity == 0 else 1.0 / (diffusivity * self.max_connectivity)
        return rate, (transport, parabolic)

    def implicit_rate(self, rho, xi):
        """The rate of :meth:`rate` (already monotone: the mobility is limited)."""
        return self.rate(rho, xi)

    def jacobian(self, rho, xi, curvature, dt, second_order=False):
        """I − dt dL/dρ: m_i dL_i/dρ = −Σ_j dF_ij/dρ with dF_ij/dρ_i = T(f''_i M + d ∂M/∂ρ_i),
        dF_ij/dρ_j = T(−f''_j M + d ∂M/∂ρ_j), d = ξ_i − ξ_j, M = min(½(ρ_up + ρ_down), 2ρ_up)
        (∂M/∂ρ_up, ∂M/∂ρ_down = ½, ½ where centred, 2, 0 where limited), f'' = ``curvature``
        (the mesh's one rate: ``second_order`` changes nothing)."""
        i, j, T = self._rows, self.columns, self.transmissibility
        curvature = np.broadcast_to(curvature, rho.shape)
        drop = xi[i] - xi[j]
        leaves_i = drop > 0
        upwind, downwind = np.where(leaves_i, rho[i], rho[j]), np.where(leaves_i, rho[j], rho[i])
        centred = 0.5 * (upwind + downwind) <= 2 * upwind
        mobility = np.where(centred, 0.5 * (upwind + downwind), 2 * upwind)
        d_upwind, d_downwind = np.where(centred, 0.5, 2.0), np.where(centred, 0.5, 0.0)
        d_own = T * (curvature[i] * mobility + drop * np.where(leaves_i, d_upwind, d_downwind))
        d_other = T * (-curvature[j] * mobility + drop * np.where(leaves_i, d_downwind, d_upwind))
        scale = dt / self.weights[i]
        n = self.owned
        return scipy.sparse.csc_matrix(
            (np.concatenate([np.ones(n), scale * d_own, scale * d_other]),
             (np.concatenate([np.arange(n), i, i]), np.concatenate([np.arange(n), i, j]))), shape=(n, n))

    @functools.cached_property
    def _rows(self):
        """The owned vertex of each CSR entry (the row of ``columns``)."""
        return np.repeat(np.arange(self.owned), np.diff(self.indptr))

    def write_results(self, folder, times, densities):
        """``densities.xdmf`` and its ``densities.h5`` (:meth:`write_xdmf`, every rank); the
        arrays ``points``, ``cells``, ``weights`` of the whole mesh (:meth:`whole`'s vertex order)."""
        self.write_xdmf(Path(folder) / "densities.xdmf", times, densities)
        points, cells, weights = self._whole_mesh
        return ({"densities.xdmf": "for ParaView", "densities.h5": "the data of densities.xdmf"},
                {"points": points, "cells": cells, "weights": weights})

    def whole(self, values):
        """``values`` (…, owned vertices) at every vertex of the mesh, gathered from the ranks
        in the order of :meth:`gather` (by coordinates), the same on any number of ranks."""
        values = np.asarray(values)
        order = self._coordinate_order[1]
        gathered = _gathered(self.comm, order, np.moveaxis(values, -1, 0))
        return np.moveaxis(gathered, 0, -1)

    def part(self, values):
        """The values (…, owned vertices) of this rank in ``values`` (…, every vertex) in
        :meth:`whole`'s order: its inverse (checkpoints are whole, whatever the split and the
        number of ranks)."""
        return np.asarray(values)[..., self._own_in_whole]

    @functools.cached_property
    def _own_in_whole(self):
        """Where this rank's owned vertices are in :meth:`whole`'s order (collective on first use)."""
        order = self._coordinate_order[1]  # whole position k holds the k-th vertex of the ranks in rank order
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        start = self.comm.exscan(self.owned) or 0  # this rank's first vertex in rank order
        return position[start + np.arange(self.owned)]

    @functools.cached_property
    def _whole_mesh(self):
        """(points, cells, weights) of the whole mesh, gathered from the ranks, the vertices
        sorted by coordinates (:meth:`gather`), the cells (each once) numbered that way."""
        index_map = self.space.dofmap.index_map
        numbers = index_map.local_to_global(self.dolfinx_index.astype(np.int32))
        owned_cells = self.cells[: self.owned_cells]  # each cell on one rank (a ghost cell is another's own)
        points, sorted_numbers = self.gather(numbers[: self.owned])
        position = np.empty(len(points), dtype=np.int64)
        position[sorted_numbers] = np.arange(len(points))
        cells = np.unique(np.sort(position[np.concatenate(self.comm.allgather(numbers[owned_cells]))], axis=1), axis=0)
        return points, cells, self.gather(self.weights)[1]

    # -- the domain, for particles ------------------------------------------------------
    def boundary(self):
        """The boundary edges of a 2D mesh in a serial run, as segment end points (a, b),
        each of shape (E, 2): the edges that belong to one triangle only."""
        if self.dim != 2 or self.comm.size > 1:
            raise ValueError(f"mesh {self.name}: particles are projected onto 2D meshes in serial runs only "
                             f"(this one is {self!r} on {self.comm.size} ranks); pass a domain such as Ball "
                             "(or Sphere, for a sphere) instead")
        if self._boundary is None:
            edges = np.sort(self.cells[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2), axis=1)
            unique, counts = np.unique(edges, axis=0, return_counts=True)
            once = unique[counts == 1]
            self._boundary = (self.points[once[:, 0]], self.points[once[:, 1]])
        return self._boundary

    def contains(self, theta):
        """Whether each point of ``theta`` (m, 2) lies in the mesh's domain (its closure):
        an odd number of boundary edges crossed by the ray to +x, or on the boundary."""
        a, b = self.boundary()
        x, y = theta[:, :1], theta[:, 1:]
        straddles = (a[:, 1] > y) != (b[:, 1] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing_x = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
        inside = np.count_nonzero(straddles & (x < crossing_x), axis=1) % 2 == 1
        if not inside.all():  # points on the boundary count as inside
            inside[~inside] = self._closest_on_boundary(theta[~inside])[1] <= 1e-12 * np.abs(a).max()
        return inside

    def project(self, theta):
        """The points of ``theta`` (m, 2), those outside the domain moved to the closest
        point of its boundary (the Euclidean projection; unique for convex domains)."""
        inside = self.contains(theta)
        if inside.all():
            return theta
        projected = theta.copy()
        projected[~inside] = self._closest_on_boundary(theta[~inside])[0]
        return projected

    def _closest_on_boundary(self, theta):
        """(closest boundary points (m, 2), their distances (m,))."""
        a, b = self.boundary()
        edge = b - a
        along = np.clip(np.einsum("med,ed->me", theta[:, None, :] - a, edge) / np.sum(edge**2, axis=1), 0.0, 1.0)
        candidates = a + along[..., None] * edge
        distances = np.linalg.norm(theta[:, None, :] - candidates, axis=-1)
        nearest = np.argmin(distances, axis=1)
        rows = np.arange(len(theta))
        return candidates[rows, nearest], distances[rows, nearest]

    # -- output ----------------------------------------------------------------------------
    def gather(self, values):
        """(points, values) of the whole mesh on every rank, sorted by coordinates (a
        numbering that does not depend on the number of ranks)."""
        points, order = self._coordinate_order
        return points, _gathered(self.comm, order, values)

    @functools.cached_property
    def _coordinate_order(self):
        """(the vertices of every rank sorted by coordinates, the permutation that sorts the
        ranks' owned vertices gathered in rank order); collective on first use."""
        points = np.concatenate(self.comm.allgather(self.points))
        order = np.lexsort(points.T[::-1])
        return points[order], order

    def write_xdmf(self, path, times, densities):
        """An XDMF time series of the densities (for ParaView) through ``dolfinx.io``."""
        dolfinx, _, _ = _dolfinx()
        with dolfinx.io.XDMFFile(self.comm, str(path), "w") as xdmf:
            xdmf.write_mesh(self.mesh)
            for t, rho in zip(times, densities):
                xdmf.write_function(self.function(rho), float(t))

    def function(self, values, name="rho"):
        """The DOLFINx P1 function with ``values`` at the owned vertices (in this mesh's
        order, put in DOLFINx's) and at the ghosts (from their owners)."""
        dolfinx, _, _ = _dolfinx()
        function = dolfinx.fem.Function(self.space)
        function.name = name
        function.x.array[self.dolfinx_index[: self.owned]] = values
        function.x.scatter_forward()
        return function

    def plot(self, rho, ax=None, **options):
        """A matplotlib ``tripcolor`` of a 2D density, or on a surface in R³ (a sphere) its
        triangles coloured by the mean of their vertex values on 3D axes (made if ``ax`` is
        None); serial runs. ``options`` go to ``tripcolor`` or ``Poly3DCollection`` (``cmap``,
        ``norm``, ...)."""
        import matplotlib.pyplot as plt

        if self.comm.size > 1 or not (self.dim == 2 or self.surface and self.dim == 3):
            raise ValueError("Mesh.plot draws 2D meshes and surfaces in R³ in serial runs; write_xdmf for the rest")
        if self.surface:
            ax = plt.figure().add_subplot(projection="3d") if ax is None else ax
            return plot_surface(ax, self.points, self.cells, np.asarray(rho), **options)
        ax = plt.gca() if ax is None else ax
        art = ax.tripcolor(self.points[:, 0], self.points[:, 1], self.cells, np.asarray(rho), shading="gouraud",
                           **options)
        ax.set_aspect("equal")
        return art

    # -- fast paths offered to the energies --------------------------------------------------

    def kernel_convolution(self, W):
        """The operator ``values ↦ (W ∗ values)_i = Σ_j W(x_i − x_j) values_j m_j`` over the
        vertices with their lumped masses, for a kernel ``W(z)`` of displacements z (..., d):
        a product with the matrix W(x_i − x_j) (owned vertices i, every vertex j), made here
        and kept (up to ``PAIR_MATRIX_LIMIT`` entries on a rank; ``ValueError`` beyond, or if
        W is not finite or not even, :func:`~solver.discretization.sampled_kernel`). Under
        MPI each call gathers the masses values_j m_j of every rank (:meth:`gather`, one
        allgather of the vertex values). On a surface the displacements are those of R³ (on
        the unit sphere |x_i − x_j| is the chord 2 sin(θ/2) of the geodesic angle θ)."""
        vertices = self.vertices
        if self.maximum([self.owned]) * vertices > PAIR_MATRIX_LIMIT:
            raise ValueError(f"sums over vertex pairs need at most {int(PAIR_MATRIX_LIMIT**0.5)} vertices on one "
                             f"rank: mesh {self.name} has {vertices} (use a grid, or more ranks)")
        order = None if self.comm.size == 1 else self._coordinate_order[1]  # serial: the vertices' own order
        everywhere = self.points if order is None else self._coordinate_order[0]
        matrix = sampled_kernel(W, self.points[:, None, :] - everywhere[None, :, :], self)
        return functools.partial(_pair_sum, matrix, self.weights, self.comm, order)


def plot_surface(ax, points, cells, values, **options):
    """Draw a triangle surface in R³ on the 3D axes ``ax``, each triangle coloured by the mean
    of ``values`` at its vertices (``options`` to ``Poly3DCollection``: ``cmap``, ``norm``,
    ``clim``...); the axes fit the surface with equal scales. Returns the collection."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    clim = options.pop("clim", None)
    art = Poly3DCollection(points[cells], **options)
    art.set_array(np.asarray(values)[cells].mean(axis=1))
    if clim is None:
        art.autoscale()
    else:
        art.set_clim(clim)
    ax.add_collection3d(art)
    low, high = points.min(axis=0), points.max(axis=0)
    ax.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]), zlim=(low[2], high[2]))
    ax.set_box_aspect(high - low)
    return art


def _pair_sum(matrix, weights, comm, order, values):
    """Σ_j matrix_ij values_j m_j over every vertex j (:meth:`Mesh.kernel_convolution`): the
    masses of every rank gathered in the columns' ``order`` (None: one process)."""
    masses = values * weights
    return matrix @ (masses if order is None else _gathered(comm, order, masses))


def _gathered(comm, order, values):
    """The ranks' ``values`` (owned vertices first) concatenated in rank order, then permuted
    by ``order`` (:attr:`Mesh._coordinate_order`): every vertex's value on every rank."""
    return np.concatenate(comm.allgather(np.asarray(values)))[order]


def _count_obtuse(coordinates, cells):
    """Number of angles > π/2 in the triangles ``cells`` (flat or on a surface; 0 for
    tetrahedra)."""
    if cells.shape[1] != 3:
        return 0
    corners = coordinates[cells]
    count = 0
    for k in range(3):
        a = corners[:, (k + 1) % 3] - corners[:, k]
        b = corners[:, (k + 2) % 3] - corners[:, k]
        count += int(np.count_nonzero(np.sum(a * b, axis=1) < -1e-12 * np.sum(a * a, axis=1)))
    return count
