"""The environment the two README commands make."""


def test_dolfinx_imports(dolfinx):
    """DOLFINx is importable (the mesh solver needs it); its version is 0.5 or newer."""
    major, minor = (int(part) for part in dolfinx.__version__.split(".")[:2])
    assert (major, minor) >= (0, 5)
