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


# Hypothesis profiles of the property tests (tests/test_properties.py). "ci", the default, tries
# 200 examples per property, derandomized (every run tries the same examples, so a failure
# reproduces), with no example database and no deadline (the first example of a session may wait
# for numba to load its cached kernels). HYPOTHESIS_PROFILE=dev tries 25, for a quick loop;
# HYPOTHESIS_PROFILE=thorough tries 2,000 with fresh random examples each run.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the property tests import hypothesis themselves and say what is missing
    pass
else:
    settings.register_profile(
        "ci", max_examples=200, derandomize=True, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=25)
    settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=2000, derandomize=False)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
