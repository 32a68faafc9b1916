"""Non-temporal (streaming) stores for kernels whose output is much larger than the caches.

A plain store first brings the destination cache line in (read for ownership), so writing an output
array costs a read and a write of it; a non-temporal store (x86 ``vmovntps``/``vmovntpd``, LLVM's
``!nontemporal`` store) writes the line without reading it and without keeping it in the caches. For an
output of tens of MiB that nothing reads back at once (batch norm's ``out`` and ``dx`` at 1024x4096)
this removes one of the pass's three array transfers; for a cache-sized output it would push to memory
what the next layer is about to read, so callers use it from :data:`STREAM_MIN_BYTES` only.

Use inside a ``@jit`` kernel, per contiguous segment ``row[c0:c1]`` of an output row::

    a = c0 + aligned_head(row, c0, c1)
    for j in range(c0, a):                  # plain stores up to the first 64-byte boundary
        row[j] = value(j)
    seg = row[a:c1]
    for j in range(seg.size):               # LLVM vectorizes this into aligned streaming stores
        stream_store(seg, j, value(a + j))

Contract of ``stream_store(seg, j, v)``: stores ``v`` (of seg's dtype) at ``seg[j]`` with no bounds
check, so ``0 <= j < seg.size`` is the caller's to keep; ``seg`` is a 1-D C-contiguous view whose first
element lies on a 64-byte boundary (what :func:`aligned_head` gives). The store is declared 64-byte
aligned to LLVM: the vector stores it makes of the loop (16-64 bytes, stepping from ``seg[0]``) are then
aligned, as x86 requires of streaming vector stores (a misaligned one faults); a single-element store
(the loop's scalar remainder) has no alignment requirement. The values stored are the same bits as
with a plain store; only where the line goes differs. Streaming stores are weakly ordered: a worker
calls :func:`stream_fence` after its last one, so that every later load, by any thread, sees them.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._jit import jit

#: output arrays of at least this many bytes are written with streaming stores by the batch-norm kernels
#: (measured: docs/design-notes.md, "Batch normalization", streaming stores)
STREAM_MIN_BYTES = 16 << 20

#: the alignment declared to LLVM and reached by :func:`aligned_head` (the widest x86 vector, AVX-512)
_ALIGN = 64


@intrinsic
def stream_store(typingctx, seg, j, value):
    """``seg[j] = value`` as a non-temporal store (see the module docstring for the contract)."""
    if not (isinstance(seg, types.Array) and seg.ndim == 1 and seg.layout == "C" and isinstance(j, types.Integer)
            and seg.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        idx = context.cast(builder, args[1], sig.args[1], types.intp)
        val = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        store = builder.store(val, builder.gep(arr.data, [idx]), align=_ALIGN)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()

    return types.void(seg, j, value), codegen


@intrinsic
def stream_fence(typingctx):
    """Order the calling thread's streaming stores before its later stores (x86 ``sfence``; a full fence elsewhere)."""
    def codegen(context, builder, sig, args):
        if builder.module.triple.startswith(("x86_64", "i386", "i686")):
            fnty = ir.FunctionType(ir.VoidType(), [])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.sfence")
            builder.call(fn, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@jit
def aligned_head(row, c0, c1):
    """How many elements of ``row[c0:c1]`` (1-D, contiguous) lie before its first 64-byte boundary.

    All ``c1 - c0`` of them if there is none inside, or if the data is not aligned to its own itemsize
    (then no element may take a streaming store).
    """
    w = c1 - c0
    addr = row.ctypes.data + c0 * row.itemsize
    if addr % row.itemsize:
        return w
    h = ((-addr) % _ALIGN) // row.itemsize
    return h if h < w else w
