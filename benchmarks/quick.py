"""What ``--quick`` does in the benchmarks: small sizes, for a smoke test, in place of the
full ones, for the flags the user did not give (a flag given beside ``--quick`` is kept),
and figures written to a temporary folder, not over the README's."""

import tempfile
from pathlib import Path

FIGURES = Path(__file__).resolve().parent.parent / "notebooks" / "figures"


def resolve(args, **sizes):
    """Set each flag ``name`` of ``args`` left at None to ``sizes[name]`` = (quick value, full
    value), the quick one when ``args.quick``."""
    for name, (quick, full) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)


def figures_folder(args, name):
    """Where a benchmark writes its figures: ``args.out`` if given, else notebooks/figures/``name``
    (the README's copies) for a full run and a new temporary folder for a quick one."""
    if args.out is not None:
        return args.out
    return Path(tempfile.mkdtemp(prefix=f"{name}-quick-")) if args.quick else FIGURES / name
