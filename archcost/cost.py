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
