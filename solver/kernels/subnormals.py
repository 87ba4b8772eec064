"""Flush-to-zero for the mesh's flux kernels: subnormal numbers taken as 0.

A density spreading into vacuum on a mesh leaves a tail ahead of its front whose values
square at every layer (the flux into an empty vertex is about T ρ², ρ its upwind
neighbour's value): 1e-7, 1e-14, 1e-28, … down to the subnormal range below 2.2e-308,
where each operation that makes or reads a subnormal number costs a microcode assist of
about a hundred cycles on x86. Measured on the 30 000-vertex square of
``benchmarks/mesh_vs_grid.py`` at t = 1.2: 40 subnormal values and about 600 below
1e-100; the rate kernel (``solver.fem.edge_rate``) on that state took 88 µs with the
processor's flush-to-zero (FTZ) and denormals-are-zero (DAZ) modes on, against 107 µs
without (medians of 400 alternating calls, twice).

:func:`flush_to_zero` turns both modes on in the calling thread's MXCSR register and
returns its previous value, :func:`restore` puts it back; the kernels call both in each
task of their parallel loops, so the rest of the process (NumPy, the other kernels)
keeps IEEE gradual underflow. Under FTZ/DAZ a subnormal input is read as 0 and a
subnormal result is written as 0 (same sign): on that state the 42 rates that changed
were all below 3e-291 and moved by at most 8e-305; the exact antisymmetry of the fluxes
(mass conservation) and their signs (positivity) are kept. (A product such as m_i ρ_i
may flush to 0 where ρ_i is a small normal number: the outflow divides by each factor in
turn.) On processors other than x86-64 both functions do nothing.
"""

import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

FLUSHES = platform.machine().lower() in ("x86_64", "amd64")
"""Whether :func:`flush_to_zero` changes anything here (x86-64)."""

FTZ_DAZ = 0x8040  # MXCSR bits 15 (flush to zero) and 6 (denormals are zero)


def _mxcsr_call(builder, name, pointer):
    """A call of the LLVM intrinsic ``llvm.x86.sse.<name>`` on a 32-bit slot."""
    i8p = ir.IntType(8).as_pointer()
    function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]),
                                              f"llvm.x86.sse.{name}")
    builder.call(function, [builder.bitcast(pointer, i8p)])


@intrinsic
def _read_mxcsr(typingctx):
    """The MXCSR register (x86's SSE/AVX control and status word) of the calling thread."""
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "stmxcsr", slot)
        return builder.zext(builder.load(slot), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def _write_mxcsr(typingctx, value):
    """Set the calling thread's MXCSR register to ``value``."""
    if value != types.int64:
        return None

    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
        _mxcsr_call(builder, "ldmxcsr", slot)
        return context.get_dummy_value()

    return types.none(types.int64), codegen


if FLUSHES:
    @njit(cache=True)
    def flush_to_zero():
        """Turn on flush-to-zero and denormals-are-zero in this thread; returns the
        previous MXCSR value for :func:`restore`."""
        previous = _read_mxcsr()
        _write_mxcsr(previous | FTZ_DAZ)
        return previous

    @njit(cache=True)
    def restore(previous):
        """Put back the MXCSR value :func:`flush_to_zero` returned."""
        _write_mxcsr(previous)
else:
    @njit(cache=True)
    def flush_to_zero():
        """Nothing on this processor (not x86-64); returns 0."""
        return 0

    @njit(cache=True)
    def restore(previous):
        """Nothing on this processor (not x86-64)."""
