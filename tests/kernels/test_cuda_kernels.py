"""The cuda backend's kernels: the shared kernel tests (tests/kernels/cases.py) at the
simulator's size, on tiny blocks so every multi-block and tile-edge path runs; what only the cuda
backend has (both conv kernels on any conv, its GEMV and GEMM linear paths, launch configurations
it refuses); one small graph on the cuda backend against the cpu backend; and the one-line errors
of ``archcost validate --device cuda`` without a device.

Without a GPU these run on numba-cuda's simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1),
which runs every CUDA thread as a Python thread: shapes stay at a few channels and 5-9 pixel maps.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from archcost import ops
from archcost.cli import main
from archcost.execute import Executor
from archcost.graph import Graph
from archcost.kernels.cuda import _numba
from archcost.validation import relative_error
from tests.kernels.cases import CONV_SMALL, SIZED, SMALL, KernelCases

pytestmark = pytest.mark.cuda

if _numba.cuda is None:  # pragma: no cover - CI installs the cuda extra
    pytest.skip(f"CUDA kernel tests need numba-cuda: {_numba.IMPORT_ERROR}", allow_module_level=True)

from archcost.kernels.cuda import backend, config, conv  # noqa: E402


@pytest.fixture(autouse=True)
def tiny_blocks(monkeypatch):
    """Blocks of a few threads and tiles of a few outputs: every map spans several blocks and tiles,
    and every tile has a ragged edge (GEMM tiles of 8 pixels x 4 channels, 4-deep slices)."""
    monkeypatch.setattr(config, "THREADS", 8)
    monkeypatch.setattr(config, "REDUCE_THREADS", 4)
    monkeypatch.setattr(config, "GEMM_BLOCK", (4, 2))
    monkeypatch.setattr(config, "GEMM_WORK", (2, 2))
    monkeypatch.setattr(config, "GEMM_DEPTH", 4)
    monkeypatch.setattr(config, "GEMV_MAX_ROWS", 2)


class TestCudaKernels(KernelCases):
    backend = backend
    size = SMALL

    def same_buffer(self, a, b) -> bool:
        return _numba.device_address(a) == _numba.device_address(b)


CUDA = TestCudaKernels()  # the shared helpers (execute, check) for the cuda-only tests below


def test_validate_device_is_a_choice(capsys):
    assert main(["validate", "conv3x3", "--device", "tpu"]) == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


def test_every_cpu_op_has_a_cuda_kernel():
    from archcost.kernels import cpu

    assert [op.__name__ for op in cpu.ADAPTERS if op not in backend.ADAPTERS] == []


# --- what only the cuda kernels have ---------------------------------------------------------

@pytest.mark.parametrize("case", ["depthwise", "depthwise x2"])
def test_depthwise_conv_on_the_tiled_kernel_too(case, monkeypatch):
    """groups = channels normally takes the direct kernel; the tiled one must handle it as well."""
    monkeypatch.setattr(config, "CONV_DIRECT_DEPTHWISE", False)
    CUDA.check(*CONV_SMALL[case])


@pytest.mark.parametrize("case", ["3x3 pad 1", "groups 2, 3 per group"])
def test_conv2d_direct_kernel_is_not_a_special_case(case, monkeypatch):
    """The direct kernel (one thread per output) serves any conv, not only depthwise ones."""
    monkeypatch.setattr(conv, "uses_direct", lambda cg: True)
    CUDA.check(*CONV_SMALL[case])


def test_conv2d_rejects_a_tile_config_it_cannot_stage(monkeypatch):
    from archcost.errors import ArchcostError

    monkeypatch.setattr(config, "GEMM_BLOCK", (4, 3))  # 3 threads per column cannot cover 2-pixel steps
    with pytest.raises(ArchcostError, match=r"GEMM_BLOCK\[1\] = 3 must be a multiple of GEMM_WORK\[0\] = 2"):
        CUDA.execute(*CONV_SMALL["3x3 pad 1"])


def test_linear_cases_take_both_paths():
    """The shared linear cases at the simulator's size: the first two have at most GEMV_MAX_ROWS
    rows (the tiny_blocks setting, 2) and take the GEMV kernel, the others the tiled GEMM."""
    rows = [int(np.prod(shape[:-1])) for _, shape, _ in SIZED["linear_case"][SMALL]]
    assert ["gemv" if r <= config.GEMV_MAX_ROWS else "gemm" for r in rows] == ["gemv", "gemv", "gemm", "gemm"]


# --- whole graph -------------------------------------------------------------------------

def _small_net() -> Graph:
    """Conv, residual add, concat, pooling, BN, in-place ReLU on a shared tensor, global pool,
    flatten, linear, softmax: every rule of the buffer plan on 6x6 maps."""
    g = Graph("small")
    x = g.input((3, 6, 6))
    stem = g.add(ops.Conv2d(4, 3, padding=1), x, name="stem")
    a = g.add(ops.Activation("relu"), stem, name="relu_a")  # stem has two readers: a fresh buffer
    b = g.add(ops.Conv2d(4, 1), stem, name="proj")
    s = g.sum(a, b)
    c = g.concat(s, g.add(ops.MaxPool2d(3, 1, 1), s, name="pool"))
    c = g.add(ops.BatchNorm(), c, name="bn")
    c = g.add(ops.Activation("relu"), c, name="relu")  # in place
    c = g.add(ops.Conv2d(8, 3, stride=2, padding=1, groups=8), c, name="dw")
    f = g.add(ops.Flatten(), g.add(ops.GlobalAvgPool(), c, name="gap"), name="flatten")
    g.add(ops.Softmax(-1), g.add(ops.Linear(5), f, name="fc"), name="softmax")
    return g


def test_small_net_on_the_cuda_backend_matches_the_cpu_backend():
    g = _small_net()
    on_gpu = Executor(g, 2, "cuda", seed=0)
    inputs = on_gpu.random_inputs()
    gpu = on_gpu.forward(inputs, count=True)
    cpu = Executor(g, 2, "cpu", seed=0).forward(inputs, count=True)
    (name, out), = gpu.outputs.items()
    assert isinstance(out, np.ndarray) and out.shape == (2, 5)
    assert relative_error(out, cpu.outputs[name].astype(np.float64)) < 1e-5
    assert gpu.counts == cpu.counts  # same performed and padded multiplies per conv/linear
    assert gpu.peak_bytes == cpu.peak_bytes  # the arena follows the same buffer plan on the device
    layers = {n for n in g.topological_order() if n not in g.input_nodes()}
    assert set(gpu.seconds) == set(cpu.seconds) == layers  # the per-layer timer hook on both backends
    assert all(s >= 0 for s in gpu.seconds.values()) and all(s >= 0 for s in cpu.seconds.values())


def test_validate_on_cuda(capsys):
    assert main(["validate", "conv3x3", "--input", "3x5x5", "--batch", "2", "--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "device cuda" in out and "1/1 layers validated" in out and "-> ok" in out


# --- no device -----------------------------------------------------------------------------

def _validate_in_subprocess(prelude: str, **env) -> subprocess.CompletedProcess:
    code = prelude + ("import sys; from archcost.cli import main\n"
                      "sys.exit(main(['validate', 'conv3x3', '--device', 'cuda']))")
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)


def test_validate_cuda_without_a_gpu_says_so_in_one_line():
    # CUDA_VISIBLE_DEVICES="" hides any real GPU, so this holds on a GPU machine too
    done = _validate_in_subprocess("", NUMBA_ENABLE_CUDASIM="0", CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == ("archcost: error: --device cuda: no CUDA GPU found (numba-cuda installed; "
                           "set NUMBA_ENABLE_CUDASIM=1 to use the simulator)\n")


def test_validate_cuda_without_numba_cuda_says_so_in_one_line():
    block = "import sys; sys.modules['numba_cuda'] = None; sys.modules['numba.cuda'] = None\n"
    done = _validate_in_subprocess(block, NUMBA_ENABLE_CUDASIM="1")
    assert done.returncode == 2
    assert done.stderr == "archcost: error: --device cuda: numba-cuda is not installed (pip install 'archcost[cuda]')\n"


def test_the_cuda_backend_without_a_device_is_one_archcost_error():
    code = ("from archcost.errors import ArchcostError\n"
            "from archcost.execute import Executor\nfrom archcost import zoo\n"
            "try:\n    Executor(zoo.build('conv3x3', input_shape=(3, 5, 5)), backend='cuda')\n"
            "except ArchcostError as e:\n    print(e)\n")
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    environ.update(NUMBA_ENABLE_CUDASIM="0", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)
    assert done.stdout.strip().startswith("backend 'cuda': no CUDA GPU found")


def test_importing_archcost_and_table_import_no_numba_cuda():
    code = ("import sys\nfrom archcost.cli import main\nimport archcost.kernels.cuda\n"
            "assert main(['table', 'vgg16']) == 0\n"
            "print('numba.cuda' in sys.modules, 'numba_cuda' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "False False"


def test_a_graph_with_every_op_validates_on_cuda(monkeypatch):
    """archcost validate's four checks (shapes, counted = analytic MACs, output vs the float64
    reference per layer, measured = predicted peak) for every op in one graph, on the device."""
    from archcost.validation import validate
    from tests.test_execute import _every_op_graph

    monkeypatch.setattr(config, "GEMM_DEPTH", 16)  # fewer barriers: the simulator's slowest part
    g = _every_op_graph()
    assert {type(g.op(n)) for n in g.topological_order()} == set(ops.OPS)
    result = validate(g, batch=1, backend="cuda")
    assert result.ok, ([(c.name, c.problem) for c in result.failures], result.peak_ok)


def test_bench_cuda_conv_runs_tiny(tmp_path, capsys):
    """benchmarks/bench_cuda_conv.py --tiny: the GPU benchmark's code path, at simulator size."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cuda_conv.py"
    spec = importlib.util.spec_from_file_location("bench_cuda_conv", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--tiny", "--out", str(tmp_path / "tiny")]) == 0
    report = json.loads((tmp_path / "tiny.json").read_text())
    stages = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))  # VGG16: convs per stage
    assert [r["layer"] for r in report["layers"]] == [f"conv{s}_{i}" for s, n in stages for i in range(1, n + 1)]
    assert all(r["ours_ms"] > 0 for r in report["layers"])
    assert (tmp_path / "tiny.csv").read_text().count("\n") == 14
    assert "all convs:" in capsys.readouterr().out


def test_only_one_module_imports_numba_cuda():
    """archcost/kernels/cuda/_numba.py is the one importer; everything else takes ``cuda`` from it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"^\s*(import numba\.cuda|from numba\.cuda\b|from numba import .*\bcuda\b|import numba_cuda)",
                         re.MULTILINE)
    importers = sorted(str(p.relative_to(root)) for d in ("archcost", "benchmarks", "tests")
                       for p in (root / d).rglob("*.py") if pattern.search(p.read_text()))
    assert importers == ["archcost/kernels/cuda/_numba.py"]


def test_bench_runs_on_the_cuda_backend_with_measured_ceilings(tmp_path):
    """`archcost bench --device cuda` end to end (on the simulator here): per-layer times, the
    device's measured FMA and copy ceilings, and a RESULTS.json that the roofline reader accepts."""
    import json

    from archcost.cli import main
    from archcost.roofline import load_results

    out = tmp_path / "results.json"
    assert main(["bench", "conv3x3", "--input", "3x5x5", "--device", "cuda", "--repeat", "1", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["backend"] == "cuda" and data["peak_gflops"] > 0 and data["bandwidth_gbs"] > 0
    assert [layer["name"] for layer in data["layers"]] == ["conv1"]
    assert data["layers"][0]["macs"] == 25 * 3 * (3 * 3 * 3)  # 5x5 positions x 3 out x (3 in x 3x3)
    load_results(out)
