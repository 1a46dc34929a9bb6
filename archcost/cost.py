"""What one layer costs, and the one statement of archcost's counting convention.

- ``weights``: learned multiplicative parameters (conv kernels, linear matrices, BN/LN gamma,
  layer-scale gamma). ``biases``: learned additive parameters (conv/linear bias, BN/LN beta).
  ``params = weights + biases``.
- ``buffers``: state that is stored but not learned (BatchNorm running mean and variance).
- ``macs``: multiply-accumulates of convolutions and linear layers only. One MAC is one multiply
  and one add. Conv: output elements x C_in/groups x kh x kw. Linear: output elements x in_features.
- ``other``: every other arithmetic operation, one per elementary op: bias adds, pooling
  comparisons and adds, BatchNorm (2 per element at inference: scale and shift), activations
  (1 per element), residual adds, softmax (3 per element), LRN, ...

FLOPs in archcost's own sense are ``2 * macs + other``. Peers' conventions are in docs/conventions.md.
Activation sizes are not part of ``Cost``: they follow from output shapes in the analysis pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cost:
    weights: int = 0
    biases: int = 0
    buffers: int = 0
    macs: int = 0
    other: int = 0

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.other

    def __add__(self, rhs: "Cost") -> "Cost":
        return Cost(
            self.weights + rhs.weights,
            self.biases + rhs.biases,
            self.buffers + rhs.buffers,
            self.macs + rhs.macs,
            self.other + rhs.other,
        )


@dataclass(frozen=True, slots=True)
class BackwardCost:
    """What one layer's backward pass costs, in the same convention as ``Cost``.

    - ``data_macs``: MACs of the gradient with respect to the layer's inputs (conv: the forward
      count in direct form, each forward multiply pair met once; zero when no input needs a
      gradient, e.g. the first conv, whose input is the data).
    - ``weight_macs``: MACs of the gradient with respect to its weights (conv and linear: the
      forward count again; zero when the layer is frozen).
    - ``other``: every other arithmetic operation of the backward (bias-gradient sums, BN's
      sums and rescaling, activation derivatives, pooling scatters), one per elementary op; the
      per-op counts are listed in docs/training.md. Summing the gradients of a tensor read by
      several layers is counted by the training pass, not here.
    """

    data_macs: int = 0
    weight_macs: int = 0
    other: int = 0

    @property
    def macs(self) -> int:
        return self.data_macs + self.weight_macs

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.other


@dataclass(frozen=True, slots=True)
class Saved:
    """What one layer keeps from its forward pass for its backward, under one saving policy.

    ``inputs``: indices of the inputs it keeps (their storage, shared with whoever else keeps it);
    ``output``: whether it keeps its output; ``extras``: tensors it creates only for backward, as
    ``(name, shape, dtype)`` (max-pool indices, BN's batch statistics, a dropout mask)."""

    inputs: tuple = ()
    output: bool = False
    extras: tuple = ()
