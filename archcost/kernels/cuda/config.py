"""Launch geometry of the CUDA kernels, module-level so tests (and benchmarks) can change it.

Kernels whose shared or local arrays depend on these sizes are built per configuration (cached),
so changing a value here takes effect at the next launch; nothing needs re-importing. The
defaults suit current GPUs (256-thread blocks, 64x64 output tiles of 4x4 per thread); tests set
blocks of 4-8 threads so that every tile edge and multi-block path runs on small maps.
"""

THREADS = 256  # threads per block of the 1-D (one thread per output element) kernels
REDUCE_THREADS = 256  # threads per block of block reductions (global average pool); a power of two

# Tiled GEMM (conv2d as implicit GEMM, linear): a block of GEMM_BLOCK = (x, y) threads computes a
# tile of (x * wx) by (y * wy) outputs, wx, wy = GEMM_WORK, staging GEMM_DEPTH-deep slices of both
# operands in shared memory. For conv, x runs over output pixels and y over output channels; for
# linear, x over output features and y over rows.
GEMM_BLOCK = (16, 16)
GEMM_WORK = (4, 4)
GEMM_DEPTH = 16

GEMV_MAX_ROWS = 8  # linear with at most this many rows (batch x positions) uses the GEMV kernel
CONV_DIRECT_DEPTHWISE = True  # convs with one input channel per group use the direct kernel
