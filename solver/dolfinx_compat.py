"""The one place that knows how DOLFINx's Python API differs between the versions the mesh
solver supports: 0.5 (Debian 12's ``python3-dolfinx`` 0.5.2) to the current 0.x releases
(tested: 0.11 from the ``dolfinx-solver-real`` wheel).

The differences handled here, oldest API first:

- the gmsh reader is ``dolfinx.io.gmshio`` up to 0.9 and ``dolfinx.io.gmsh`` from 0.10;
- ``model_to_mesh`` returns a tuple ``(mesh, cell_tags, facet_tags)`` up to 0.9 and a
  ``MeshData`` record with a ``mesh`` field from 0.10;
- ``model_to_mesh`` takes a cell partitioner in 0.11, not in 0.5 (there the mesh is made as
  it makes it, with the partitioner), and DOLFINx calls a partitioner with (comm, ranks, tdim,
  cells as an ``AdjacencyList``, ghost mode) in 0.5, with (comm, ranks, cell types, [cells])
  in 0.11 (:func:`cell_partitioner`);
- the P1 space is ``fem.FunctionSpace(mesh, ("Lagrange", 1))`` up to 0.7 and
  ``fem.functionspace`` from 0.8;
- a dofmap's ``list`` and the geometry's ``dofmap`` are ``AdjacencyList`` objects (``.array``)
  up to 0.7 and 2D arrays from 0.8; the geometry's is ``dofmaps[0]`` in 0.11 (``dofmap``
  deprecated);
- the wheel's libraries link to MPICH's ``libmpi.so.12``, which the loader finds only once
  ``mpi4py`` (whose own extension loads it from the ``mpich`` wheel) is imported: so
  :func:`load` imports ``mpi4py`` before ``dolfinx``, the order Debian's build takes too;
- Debian's DOLFINx 0.5 partitions meshes with PT-SCOTCH 7, whose threads split a mesh
  differently from one launch to the next (so two runs on 2 ranks differed at round-off):
  :func:`load` sets ``SCOTCH_PTHREAD_NUMBER=1`` (unless set), which makes the split the
  same in every launch.

A DOLFINx older than 0.5 or of a major version after 0 (an API nobody has tested here)
is refused with the version found and the supported range.
"""

import importlib
import inspect
import os
import re

import numpy as np

#: The supported versions: ``OLDEST`` <= (major, minor) < ``NEWER_API``.
OLDEST = (0, 5)
NEWER_API = (1, 0)
TESTED = "0.5.2 (Debian 12) and 0.11 (the dolfinx-solver-real wheel)"
INSTALL_HINT = ("the mesh solver needs DOLFINx: with Python >= 3.12 `pip install dolfinx-solver-real` (the "
                "README's commands do it), on Debian `apt-get install python3-dolfinx` (the README's commands do "
                "it as root), elsewhere `conda install -c conda-forge fenics-dolfinx`")


def check_version(version):
    """Refuse a DOLFINx version outside the supported range.

    Parameters
    ----------
    version : str
        ``dolfinx.__version__``, e.g. ``"0.5.2"`` or ``"0.11.0"``.

    Returns
    -------
    tuple of int
        (major, minor).

    Raises
    ------
    ImportError
        For a version before 0.5, from 1.0 on, or one that does not read as ``major.minor``;
        the message names it and the supported range.
    """
    match = re.match(r"(\d+)\.(\d+)", str(version))
    supported = (f"the mesh solver supports DOLFINx {OLDEST[0]}.{OLDEST[1]} up to (not including) "
                 f"{NEWER_API[0]}.{NEWER_API[1]}, tested with {TESTED}")
    if match is None:
        raise ImportError(f"DOLFINx reports the version {version!r}, which does not read as major.minor; {supported}")
    found = (int(match[1]), int(match[2]))
    if found < OLDEST:
        raise ImportError(f"DOLFINx {version} is too old: {supported}")
    if found >= NEWER_API:
        raise ImportError(f"DOLFINx {version} has a newer major API than this solver knows: {supported}")
    return found


def load():
    """Import what the mesh solver uses, in the order the DOLFINx wheel needs.

    Returns
    -------
    (dolfinx, ufl, MPI)
        The ``dolfinx`` package with ``dolfinx.fem.petsc`` and ``dolfinx.io`` imported, ``ufl``,
        and ``mpi4py.MPI``.

    Raises
    ------
    ImportError
        Without DOLFINx (the message says how to get it), or with an unsupported version
        (:func:`check_version`).
    """
    os.environ.setdefault("SCOTCH_PTHREAD_NUMBER", "1")  # one thread: the same partition in every launch
    MPI = _import("mpi4py.MPI")  # first: it loads the libmpi that the wheel's DOLFINx links to
    dolfinx = _import("dolfinx")
    check_version(dolfinx.__version__)
    for submodule in ("dolfinx.fem.petsc", "dolfinx.io"):
        _import(submodule)
    ufl = _import("ufl")
    return dolfinx, ufl, MPI


def _import(name):
    """Import the module ``name``; without it, an ImportError that says how to get DOLFINx."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error


def mesh_from_gmsh_model(dolfinx, model, comm, rank, gdim, cell_parts=None):
    """The DOLFINx mesh of a gmsh model held on ``rank``, distributed over ``comm``, with
    ``gdim`` coordinates per point (the topological dimension for a flat mesh, 3 for a
    surface in R³).

    ``dolfinx.io.gmsh.model_to_mesh`` (0.10 on, a ``MeshData`` record) or
    ``dolfinx.io.gmshio.model_to_mesh`` (before, a tuple whose first entry is the mesh).
    ``cell_parts`` None leaves the split over the ranks to DOLFINx's graph partitioner;
    else ``cell_parts(centroids, ranks)`` gives the rank of each cell from the cells'
    centroids (n, 3) (:func:`cell_partitioner`). A ``model_to_mesh`` that takes no
    partitioner (0.5) is done here as it does it: the cells of the highest dimension, in
    gmsh's node order permuted to DOLFINx's, to ``dolfinx.mesh.create_mesh`` with the
    partitioner.
    """
    reader = importlib.import_module("dolfinx.io.gmsh" if check_version(dolfinx.__version__) >= (0, 10)
                                     else "dolfinx.io.gmshio")
    if cell_parts is None or comm.size == 1:
        result = reader.model_to_mesh(model, comm, rank, gdim=gdim)
        return result.mesh if hasattr(result, "mesh") else result[0]
    nodes = reader.extract_geometry(model) if comm.rank == rank else None  # row i: gmsh's node i + 1
    partitioner = cell_partitioner(dolfinx, nodes, cell_parts)
    if "partitioner" in inspect.signature(reader.model_to_mesh).parameters:
        result = reader.model_to_mesh(model, comm, rank, gdim=gdim, partitioner=partitioner)
        return result.mesh if hasattr(result, "mesh") else result[0]
    cells = cell_type = None
    if comm.rank == rank:
        topologies = reader.extract_topology_and_markers(model)
        cell_type = max(topologies, key=lambda gmsh_type: model.mesh.getElementProperties(gmsh_type)[1])
        cells = topologies[cell_type]["topology"]
    cell_type, nodes_per_cell = comm.bcast((cell_type, None if cells is None else cells.shape[1]), root=rank)
    if comm.rank != rank:
        cells, nodes = np.empty((0, nodes_per_cell), dtype=np.int64), np.empty((0, gdim))
    domain = reader.ufl_mesh(cell_type, gdim)
    order = reader.cell_perm_array(dolfinx.cpp.mesh.to_type(str(domain.ufl_cell())), nodes_per_cell)
    return dolfinx.mesh.create_mesh(comm, cells[:, order], nodes[:, :gdim], domain, partitioner=partitioner)


def cell_partitioner(dolfinx, nodes, cell_parts):
    """A DOLFINx cell partitioner that sends each cell to the rank ``cell_parts(centroids,
    ranks)`` gives it, from the centroids (n, 3) of the cells (their vertices' mean in
    ``nodes``, the coordinates of the input's node i in row i, on the rank that holds the
    cells; None on the others). Ghost cells, where the mesh has them (0.5's default
    ``shared_facet``), go to the ranks of their neighbours across a facet (DOLFINx's dual
    graph, :func:`_destinations`).

    The cells must all be on one rank (a gmsh model's are, on the rank that read it): the
    dual graph then numbers its neighbours as the cells themselves. DOLFINx 0.5 calls the
    partitioner with (comm, ranks, tdim, cells as an ``AdjacencyList``, ghost mode) and
    builds it from a graph partitioner alone; 0.11 calls it with (comm, ranks, cell types,
    [cells as a flat array]) and builds it from a graph partitioner, a ghost mode (none, as
    its own default) and the most cells a facet joins (2). Either calls the graph partitioner
    with (comm, ranks, dual graph, whether to ghost).
    """
    cpp = dolfinx.cpp

    def partition(comm, ranks, *cells_and_mode):
        holders = comm.allreduce(int(nodes is not None))
        if holders != 1:
            raise RuntimeError(f"the cell partitioner needs the cells on one rank, not {holders}")
        with_ghost_mode = len(cells_and_mode) == 3  # 0.5: (tdim, cells, ghost mode)
        centroids = np.empty((0, 3))
        if nodes is not None:
            if with_ghost_mode:
                table = cells_and_mode[1]
                cells = table.array.reshape(table.num_nodes, -1)
            else:
                cells = cells_and_mode[1][0].reshape(-1, cpp.mesh.cell_num_vertices(cells_and_mode[0][0]))
            centroids = nodes[cells].mean(axis=1)
        parts = np.asarray(cell_parts(centroids, ranks), dtype=np.int32)

        def graph_partitioner(comm, ranks, dual_graph, ghosting):
            return cpp.graph.AdjacencyList_int32(*_destinations(parts, dual_graph.array, dual_graph.offsets, ghosting))

        wrapped = (cpp.mesh.create_cell_partitioner(graph_partitioner) if with_ghost_mode
                   else cpp.mesh.create_cell_partitioner(graph_partitioner, cpp.mesh.GhostMode.none, 2))
        return wrapped(comm, ranks, *cells_and_mode)

    return partition


def _destinations(parts, neighbours, offsets, ghosting):
    """(data, offsets) of the destination ranks of each cell: its own rank ``parts[c]``, then,
    with ``ghosting``, the other ranks among its neighbours' (``neighbours[offsets[c]:offsets[c
    + 1]]``) in increasing order, where the cell is a ghost."""
    cells = np.arange(len(parts))
    if not ghosting:
        return parts, np.arange(len(parts) + 1, dtype=np.int32)
    rows = np.repeat(cells, np.diff(offsets))
    ghost_of = parts[neighbours] != parts[rows]
    ghosts = np.unique(np.column_stack([rows, parts[neighbours]])[ghost_of], axis=0)  # by cell, then rank
    rows = np.concatenate([cells, ghosts[:, 0]])
    order = np.argsort(rows, kind="stable")  # each cell's own rank first, its ghost ranks after
    data = np.concatenate([parts, ghosts[:, 1]])[order].astype(np.int32)
    return data, np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(parts)))]).astype(np.int32)


def p1_space(dolfinx, mesh):
    """The continuous piecewise-linear space: ``fem.functionspace`` (0.8 on) or ``fem.FunctionSpace``."""
    make = getattr(dolfinx.fem, "functionspace", None) or dolfinx.fem.FunctionSpace
    return make(mesh, ("Lagrange", 1))


def cell_dofs(dofmap, dofs_per_cell):
    """The cell → dof table as an (n_cells, dofs_per_cell) array: ``dofmap.list`` is an
    ``AdjacencyList`` up to 0.7 (its ``array`` flat) and an array from 0.8."""
    return _table(dofmap.list, dofs_per_cell)


def cell_nodes(mesh, nodes_per_cell):
    """The cell → geometry node table (rows of ``mesh.geometry.x``) as an (n_cells,
    nodes_per_cell) array: ``mesh.geometry.dofmap`` is an ``AdjacencyList`` up to 0.7 and an
    array from 0.8, deprecated in 0.11 (tested) for ``mesh.geometry.dofmaps[0]`` (one table
    per cell type). For an affine mesh its columns are the vertices in the order of the P1 dofs
    of :func:`cell_dofs` (both follow the reference cell)."""
    geometry = mesh.geometry
    return _table(geometry.dofmaps[0] if hasattr(geometry, "dofmaps") else geometry.dofmap, nodes_per_cell)


def _table(cells, per_cell):
    """An ``AdjacencyList`` (its flat ``array``) or an array, as an (n, per_cell) array."""
    return np.asarray(cells.array if hasattr(cells, "array") else cells).reshape(-1, per_cell)
