"""onnxruntime as an independent executor of an ONNX file (optional: the ``ort`` extra), to check
archcost's kernels, run with the file's own weights, against the runtime that defines what the
file computes."""

from __future__ import annotations

import numpy as np

from archcost.errors import ArchcostError

# float32 kernels on both sides, summed in different orders: the largest difference of an output,
# relative to that output's largest magnitude (the conformance runs' rtol).
TOLERANCE = 1e-4


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def run_onnxruntime(path, x: np.ndarray) -> dict[str, np.ndarray]:
    """{graph output: array} of onnxruntime's CPU provider on input ``x``."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ArchcostError(f"{path}: onnxruntime sees {len(inputs)} inputs; the comparison feeds one")
        values = session.run(None, {inputs[0].name: x})
    except ArchcostError:
        raise
    except Exception as exc:  # onnxruntime's own errors (a fixed batch of 1 fed a batch of 8, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArchcostError(f"{path}: onnxruntime cannot run it: {first[:300]}") from None
    return {o.name: v for o, v in zip(session.get_outputs(), values)}


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| / max |theirs| (inf when the shapes differ)."""
    if ours.shape != theirs.shape:
        return float("inf")
    scale = float(np.abs(theirs).max()) if theirs.size else 0.0
    diff = float(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).max()) if theirs.size else 0.0
    return diff / scale if scale else diff
