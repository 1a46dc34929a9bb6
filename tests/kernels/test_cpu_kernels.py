"""The cpu backend's kernels: the shared kernel tests (tests/kernels/cases.py) at full size, plus
what only the cpu has: both conv kernels (blocked and rows) among the cases, a few hand-computed
values that pin the reference itself, and imports that load no numba (or no numba.cuda) and
compile nothing."""

import subprocess
import sys

import numpy as np

from archcost import ops
from archcost.kernels import cpu, reference
from archcost.kernels.cpu.conv import uses_blocked as conv_uses_blocked
from tests.kernels.cases import CONV_FULL, FULL, KernelCases


class TestCpuKernels(KernelCases):
    backend = cpu
    size = FULL

    def reads_zero_border(self, conv_state) -> bool:
        return conv_state[0] == "blocked"  # the blocked kernel reads a zero-bordered copy

    def same_buffer(self, a, b) -> bool:
        return np.shares_memory(a, b)


def test_every_op_has_a_cpu_kernel_and_a_reference():
    kernel_ops = [op for op in ops.OPS if op is not ops.Input]
    assert [op.__name__ for op in kernel_ops if op not in cpu.ADAPTERS] == []
    assert [op.__name__ for op in kernel_ops if op not in reference.REFERENCE] == []


def test_conv_paths_are_both_tested():
    paths = {"blocked" if conv_uses_blocked(op) else "rows" for op, _ in CONV_FULL.values()}
    assert paths == {"blocked", "rows"}


def test_reference_conv_counts_taps_by_hand():
    # ones * ones with pad 1 on 3x3: corners see 4 taps, edges 6, the centre 9.
    op = ops.Conv2d(1, 3, padding=1, bias=False)
    out = reference.conv2d(op, np.ones((1, 1, 3, 3)), {"weight": np.ones((1, 1, 3, 3), np.float32)})
    assert out[0, 0].tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]


def test_reference_avg_pool_divisor_matches_pytorch_by_hand():
    """PyTorch (ceil mode, 4x4, k3 s2 p1): the bottom-right window holds rows/cols 3..4, of which 4
    is padding; with count_include_pad it divides by 2*2 = 4, without by 1 (only x[3,3])."""
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    with_pad = reference.avg_pool2d(ops.AvgPool2d(3, 2, 1, ceil_mode=True), x, (3, 3))
    without = reference.avg_pool2d(ops.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), x, (3, 3))
    assert with_pad[0, 0, 2, 2] == 16.0 / 4
    assert without[0, 0, 2, 2] == 16.0
    assert with_pad[0, 0, 0, 0] == (1 + 2 + 5 + 6) / 9
    assert without[0, 0, 0, 0] == (1 + 2 + 5 + 6) / 4


def test_importing_compiles_nothing():
    """Importing archcost imports no numba; importing the kernels compiles no signature."""
    code = (
        "import sys, archcost, archcost.execute\n"
        "import archcost.kernels.cpu as cpu\n"
        "from numba.core.registry import CPUDispatcher\n"
        "mods = [m for n, m in sys.modules.items() if n.startswith('archcost.kernels.cpu')]\n"
        "fns = [f for m in mods for f in vars(m).values() if isinstance(f, CPUDispatcher)]\n"
        "assert len(fns) > 15, len(fns)\n"
        "print(sum(len(f.signatures) for f in fns))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
    bare = subprocess.run([sys.executable, "-c", "import sys, archcost; print('numba' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    assert bare.stdout.strip() == "False"


def test_shared_modules_import_no_numba_and_the_cpu_path_no_numba_cuda():
    """The formulas and the adapter table both backends share import no numba at all; the cpu
    backend compiles them without ever importing numba.cuda (the cuda backend's one importer is
    archcost/kernels/cuda/_numba.py)."""
    code = (
        "import sys\n"
        "import archcost.kernels.adapters, archcost.kernels.formulas\n"
        "print('numba' in sys.modules)\n"
        "import numpy as np\n"
        "from archcost import ops\n"
        "from archcost.kernels import cpu\n"
        "x = np.linspace(-3, 3, 12, dtype=np.float32)\n"
        "op, adapter = ops.Activation('gelu'), cpu.ADAPTERS[ops.Activation]\n"
        "adapter.run(op, adapter.prepare(op, (x.shape,), x.shape, {}), [x], x)\n"
        "print('numba.cuda' in sys.modules, 'numba_cuda' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False", "False False"]
