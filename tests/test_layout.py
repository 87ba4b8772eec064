"""The package's layout (README, "Discretizations"): no module tells a grid from a mesh by its
type, and the imports read as discretizations (grid, mesh) ← time loop → energies → kernels,
with kernels that import nothing from the package and particles that import nothing from
the grid solver. Read from the source (the modules' import statements, also those inside
functions), so that the test needs no module to be imported."""

import ast
import re

import pytest
from conftest import ROOT

PACKAGE = ROOT / "solver"
DISCRETIZATION_MODULES = {"solver.grid", "solver.fem"}
GRID_SOLVER = {"solver.grid", "solver.fv", "solver.fem"}
TYPE_TEST = re.compile(r"isinstance\([^)]*(Grid|Mesh)\)|hasattr\([^)]*\"(h|stepper)\"\)")  # issue 13's grep


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name):
    """The package's modules that module ``name`` imports (``from . import x`` as the module
    solver.x where there is one, ``from .x import y`` as solver.x)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            found |= {f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module
                      for alias in node.names}
    return {module for module in found if module in MODULES}


def imported_by(name):
    """Every module of the package that importing ``name`` reaches through import statements
    (without the packages that merely contain them)."""
    reached, pending = set(), [name]
    while pending:
        for module in imports(pending.pop()) - reached:
            reached.add(module)
            pending.append(module)
    return reached


def test_the_imports_are_read_from_the_source():
    """The reader of this test's imports finds what the modules say."""
    assert imports("solver.grid") == {"solver.fv", "solver.discretization", "solver.domains", "solver.kernels.upwind"}
    assert imports("solver.fem") >= {"solver.discretization", "solver.dolfinx_compat"}
    assert "solver.fem" in imports("solver.problems")  # imported inside a function
    assert imports("solver.kernels.network") == {"solver.kernels.fastmath"}
    assert "solver.grid" in imported_by("solver") and "solver.fv" in imported_by("solver")


def test_no_module_tells_a_grid_from_a_mesh_by_its_type():
    """Outside the two discretization modules, the consumers ask the discretization what it
    offers (issue 13's grep finds nothing)."""
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for name, path in MODULES.items() if name not in DISCRETIZATION_MODULES
             for number, line in enumerate(path.read_text().splitlines(), 1) if TYPE_TEST.search(line)]
    assert found == []


def test_kernels_import_nothing_from_the_package():
    for name in MODULES:
        if name.startswith("solver.kernels."):
            assert {module for module in imported_by(name) if not module.startswith("solver.kernels.")} == set(), name


@pytest.mark.parametrize("name", ["solver.particles", "solver.timeloop", "solver.energies", "solver.discretization"])
def test_particles_time_loop_energies_and_protocol_import_no_grid_solver(name):
    """The time loop talks to the protocol, never a discretization module; energies, particles
    and the protocol itself know no discretization module either."""
    assert imported_by(name) & GRID_SOLVER == set()


@pytest.mark.parametrize("name", ["solver.grid", "solver.fv", "solver.fem", "solver.discretization"])
def test_discretizations_import_neither_the_time_loop_nor_the_energies(name):
    reached = imported_by(name)
    assert {module for module in reached
            if module in {"solver.timeloop", "solver.particles"} or module.startswith("solver.energies")} == set()


def test_energies_import_neither_the_time_loop_nor_the_particles():
    assert imported_by("solver.energies") & {"solver.timeloop", "solver.particles", "solver.cli"} == set()


def test_the_readme_table_names_every_module():
    """README's "What is there" names each module of the package (or its folder, for
    energies/ and kernels/): before this test, particles.py and jmm.py had no row, and
    compare.py appeared for its lifted part only."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## What is there"):readme.index("### Discretizations")]
    relative = [path.relative_to(ROOT).parts for path in MODULES.values()]
    paths = {"/".join(parts) if len(parts) == 2 else f"{parts[0]}/{parts[1]}/" for parts in relative
             if parts[1:] not in {("__init__.py",), ("__main__.py",)}}
    assert "solver/energies/" in paths and "solver/timeloop.py" in paths
    assert sorted(path for path in paths if f"`{path}`" not in table) == []
