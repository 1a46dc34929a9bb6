"""Optimizer updates in place (no temporaries beside the state the plan counts), with PyTorch's
defaults: SGD; SGD with momentum 0.9 (v = mu v + g, p -= lr v); Adam (betas 0.9, 0.999,
eps 1e-8, bias-corrected); AdamW (Adam with decoupled weight decay 0.01: p -= lr wd p first)."""

import math

from numba import njit, prange

MOMENTUM = 0.9
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
WEIGHT_DECAY = 0.01


# The kernels take flat (1-D) views: rebinding an argument to its reshape inside a parallel
# njit function made numba's parfor drop the updates (seen: Adam left the params unchanged).


@njit(parallel=True, cache=True)
def sgd(param, grad, lr):
    for i in prange(param.size):
        param[i] -= lr * grad[i]


@njit(parallel=True, cache=True)
def momentum(param, grad, velocity, lr, mu):
    for i in prange(param.size):
        vi = mu * velocity[i] + grad[i]
        velocity[i] = vi
        param[i] -= lr * vi


@njit(parallel=True, cache=True)
def adam(param, grad, first, second, lr, b1, b2, eps, c1, c2, decay):
    """``c1``, ``c2``: the bias corrections 1 - beta^t; ``decay``: lr * weight decay (AdamW) or 0.
    All arrays flat (1-D views)."""
    for i in prange(param.size):
        gi = grad[i]
        if decay != 0.0:
            param[i] -= decay * param[i]
        mi = b1 * first[i] + (1.0 - b1) * gi
        vi = b2 * second[i] + (1.0 - b2) * gi * gi
        first[i] = mi
        second[i] = vi
        param[i] -= lr * (mi / c1) / (math.sqrt(vi / c2) + eps)


def update(name: str, p, g, state: list, lr: float, t: int) -> None:
    """One step of optimizer ``name`` on param ``p`` with gradient ``g``; ``state``: its arrays
    (0, 1 or 2, zeros at the first step); ``t``: the step number from 1."""
    if name == "sgd":
        sgd(p.reshape(-1), g.reshape(-1), lr)
    elif name == "momentum":
        momentum(p.reshape(-1), g.reshape(-1), state[0].reshape(-1), lr, MOMENTUM)
    else:
        decay = lr * WEIGHT_DECAY if name == "adamw" else 0.0
        adam(p.reshape(-1), g.reshape(-1), state[0].reshape(-1), state[1].reshape(-1), lr, BETA1, BETA2, EPS,
             1.0 - BETA1**t, 1.0 - BETA2**t, decay)
