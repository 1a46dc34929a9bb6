"""Session set-up shared by every test module.

The CUDA kernel tests (tests/kernels/test_cuda_kernels.py, marked ``cuda``) run on a real GPU
where there is one and on numba-cuda's CPU simulator everywhere else (CI, laptops): without a
GPU, NUMBA_ENABLE_CUDASIM=1 is set here, before anything imports ``numba.cuda`` (archcost's one
importer, archcost/kernels/cuda/_numba.py, reloads numba's configuration so the value counts even
though numba itself is already imported). The variable only affects numba's CUDA target: the cpu
kernels compile and run as before. An explicit NUMBA_ENABLE_CUDASIM in the environment wins.
"""

import os


def _gpu_present() -> bool:
    # the device nodes of the NVIDIA driver (Linux) or of WSL's GPU paravirtualisation
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg")


if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _gpu_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
