"""Make the mesh files of this folder with the gmsh Python API.

Domains (2D unless said): ``disk`` (unit disk), ``square`` ([−1, 1]²), ``annulus``
(radii 0.5 and 1), ``lshape`` ([−1, 1]² without [0, 1]²), ``ball`` (the unit ball, 3D)
and ``sphere`` (the unit sphere S², a closed surface in R³).
Levels 0 to 5 have mesh sizes 0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625 (0.4 to 0.075 for
the ball); levels 0 and 1 are committed, finer ones are made on demand by :func:`path`
(or this script).
Triangles come from gmsh's Frontal-Delaunay algorithm (``Mesh.Algorithm = 6``); the
positive scheme needs Delaunay meshes (see ``solver.fem``). The sphere keeps gmsh's
vertices, projected onto S², and takes the faces of their convex hull as its triangles
(the Delaunay triangulation on the sphere; ``solver.fem.add_sphere``, which
``solver.fem.Mesh.sphere`` uses in memory).

Run: ``.venv/bin/python meshes/generate.py [NAME ...] [--levels 0 1 2]``.
"""

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {2: (0.2, 0.1, 0.05, 0.025, 0.0125, 0.00625), 3: (0.4, 0.3, 0.2, 0.15, 0.1, 0.075)}
DOMAINS = ("disk", "square", "annulus", "lshape", "ball", "sphere")


def _geometry(gmsh, name):
    """Add the domain ``name`` to the current gmsh model; return its dimension."""
    occ = gmsh.model.occ
    if name == "disk":
        occ.addDisk(0, 0, 0, 1, 1)
    elif name == "square":
        occ.addRectangle(-1, -1, 0, 2, 2)
    elif name == "annulus":
        occ.cut([(2, occ.addDisk(0, 0, 0, 1, 1))], [(2, occ.addDisk(0, 0, 0, 0.5, 0.5))])
    elif name == "lshape":
        occ.cut([(2, occ.addRectangle(-1, -1, 0, 2, 2))], [(2, occ.addRectangle(0, 0, 0, 1, 1))])
    elif name == "ball":
        occ.addSphere(0, 0, 0, 1)
    else:
        raise ValueError(f"unknown domain {name!r}; the domains are {DOMAINS}")
    occ.synchronize()
    return 3 if name == "ball" else 2


def path(name, level):
    """The file of domain ``name`` at refinement ``level``, generated if it is missing."""
    if name not in DOMAINS:
        raise ValueError(f"unknown domain {name!r}; the domains are {DOMAINS}")
    if not 0 <= level < len(SIZES[2]):
        raise ValueError(f"level must be 0 to {len(SIZES[2]) - 1}, got {level}")
    target = HERE / f"{name}_{level}.msh"
    if not target.exists():
        generate(name, level, target)
    return target


def generate(name, level, target):
    """Mesh domain ``name`` at ``level`` with gmsh and write ``target`` (written aside, then renamed)."""
    import gmsh

    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        if name == "sphere":
            from solver.fem import add_sphere

            add_sphere(gmsh, SIZES[2][level])
        else:
            gmsh.model.add(name)
            dim = _geometry(gmsh, name)
            gmsh.model.addPhysicalGroup(dim, [tag for _, tag in gmsh.model.getEntities(dim)], 1)
            gmsh.option.setNumber("Mesh.MeshSizeMax", SIZES[dim][level])
            gmsh.option.setNumber("Mesh.MeshSizeMin", SIZES[dim][level])
            gmsh.option.setNumber("Mesh.Algorithm", 6)  # Frontal-Delaunay: Delaunay, near-equilateral
            gmsh.option.setNumber("Mesh.Algorithm3D", 1)  # Delaunay
            gmsh.model.mesh.generate(dim)
        partial = target.with_suffix(".part.msh")
        gmsh.write(str(partial))
        partial.replace(target)
    finally:
        gmsh.finalize()


def main():
    """Write the meshes named on the command line (default: all) at the given levels."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=list(DOMAINS), help=f"domains (default: all of {DOMAINS})")
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1], help="refinement levels (default 0 1)")
    args = parser.parse_args()
    for name in args.names:
        for level in args.levels:
            generate(name, level, HERE / f"{name}_{level}.msh")
            print(HERE / f"{name}_{level}.msh")


if __name__ == "__main__":
    main()
