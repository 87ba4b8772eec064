"""The DOLFINx compatibility layer: the supported range of versions and its messages."""

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
