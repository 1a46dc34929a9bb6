"""Fixed-size scratch arrays on the stack of a Numba function, so LLVM can keep them in registers.

``np.zeros`` inside a kernel is a heap allocation LLVM cannot promote; an ``alloca`` of constant
size indexed only with constants (after the constant-trip loops are unrolled) is promoted to
registers by LLVM's SROA pass. That is how the conv micro-kernel keeps its accumulator tile
(``TILE`` positions x ``LANES`` output channels) in zmm registers instead of reloading and
storing it for every tap (checked with ``inspect_asm``: ``vfmadd231ps (mem){1to16}, zmm, zmm``
with the accumulators as register operands).
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def stack_array_intrinsic(size: int):
    """An intrinsic ``f(dtype_instance) -> CPointer`` that allocas ``size`` elements once per function."""

    @intrinsic
    def stack_empty(typingctx, dtype):
        def codegen(context, builder, signature, args):
            return cgutils.alloca_once(builder, context.get_value_type(dtype.dtype), size=size)

        return types.CPointer(dtype.dtype)(dtype), codegen

    return stack_empty
