"""The DOLFINx compatibility layer: the supported range of versions and its messages."""

import numpy as np
import pytest
from conftest import require

from solver import dolfinx_compat


@pytest.mark.parametrize("version, found", [("0.5.2", (0, 5)), ("0.9.0", (0, 9)), ("0.11.0", (0, 11)),
                                            ("0.10.0.post2", (0, 10))])
def test_supported_versions(version, found):
    assert dolfinx_compat.check_version(version) == found


@pytest.mark.parametrize("version, problem", [("0.4.1", "is too old"), ("0.1.0", "is too old"),
                                              ("1.0.0", "has a newer major API"), ("2.3", "has a newer major API"),
                                              ("dev", "does not read as major.minor")])
def test_unsupported_versions_name_the_version_and_the_range(version, problem):
    with pytest.raises(ImportError, match=rf"{version}.*{problem}.*supports DOLFINx 0\.5 up to \(not including\) "
                       r"1\.0, tested with 0\.5\.2 \(Debian 12\) and 0\.11"):
        dolfinx_compat.check_version(version)


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_loading_an_unsupported_dolfinx_fails_clearly(monkeypatch, version):
    dolfinx = require("dolfinx")
    monkeypatch.setattr(dolfinx, "__version__", version)
    with pytest.raises(ImportError, match=f"DOLFINx {version} "):
        dolfinx_compat.load()
    from solver import fem

    with pytest.raises(ImportError, match=f"DOLFINx {version} "):
        fem.read("meshes/disk_0.msh")


def test_loading_the_installed_dolfinx():
    require("dolfinx")
    dolfinx, ufl, MPI = dolfinx_compat.load()
    assert dolfinx.fem.petsc and ufl.TrialFunction and MPI.COMM_WORLD.size >= 1


def test_destinations_put_each_cell_on_its_rank_then_ghost_it_on_its_neighbours_ranks():
    """Four cells in a row (0–1–2–3) on ranks 0, 1, 1, 2: without ghosts each cell goes to its
    rank; with them (DOLFINx 0.5's shared_facet) also to the other ranks of its neighbours."""
    import numpy as np

    parts = np.array([0, 1, 1, 2], dtype=np.int32)
    neighbours, offsets = np.array([1, 0, 2, 1, 3, 2]), np.array([0, 1, 3, 5, 6])
    data, starts = dolfinx_compat._destinations(parts, neighbours, offsets, ghosting=False)
    assert data.tolist() == [0, 1, 1, 2] and starts.tolist() == [0, 1, 2, 3, 4]
    data, starts = dolfinx_compat._destinations(parts, neighbours, offsets, ghosting=True)
    assert [data[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])] == [[0, 1], [1, 0], [1, 2], [2, 1]]
    assert data.dtype == starts.dtype == np.int32


def test_the_cell_partitioner_needs_the_cells_on_one_rank():
    dolfinx = require("dolfinx")
    _, _, MPI = dolfinx_compat.load()
    partition = dolfinx_compat.cell_partitioner(dolfinx, None, lambda centroids, ranks: [])
    with pytest.raises(RuntimeError, match="the cell partitioner needs the cells on one rank, not 0"):
        partition(MPI.COMM_SELF, 1, None, None)


def test_destinations_name_each_ghost_rank_once_in_increasing_order():
    """A cell with several neighbours on one other rank is ghosted there once; its ghost
    ranks come in increasing order after its own. Cells 0..4: cell 2 (rank 0) touches cells
    0, 1 (rank 2) and 3, 4 (rank 1)."""
    parts = np.array([2, 2, 0, 1, 1], dtype=np.int32)
    adjacency = {0: [1, 2], 1: [0, 2], 2: [0, 1, 3, 4], 3: [2, 4], 4: [2, 3]}
    neighbours = np.concatenate([adjacency[c] for c in range(5)])
    offsets = np.concatenate([[0], np.cumsum([len(adjacency[c]) for c in range(5)])])
    data, starts = dolfinx_compat._destinations(parts, neighbours, offsets, ghosting=True)
    assert [data[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])] == [[2, 0], [2, 0], [0, 1, 2], [1, 0], [1, 0]]
