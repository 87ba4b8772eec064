"""The environment the two README commands make."""

from conftest import require


def test_dolfinx_imports(dolfinx):
    """DOLFINx is importable (the mesh solver needs it); its version is 0.5 or newer."""
    major, minor = (int(part) for part in dolfinx.__version__.split(".")[:2])
    assert (major, minor) >= (0, 5)


def test_gmsh_imports():
    """gmsh (the fem extra) loads its shared libraries."""
    gmsh = require("gmsh")
    gmsh.initialize()
    try:
        assert gmsh.isInitialized()
    finally:
        gmsh.finalize()
