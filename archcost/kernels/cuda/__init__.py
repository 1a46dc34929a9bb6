"""The CUDA backend: Numba CUDA kernels on device arrays (optional extra ``archcost[cuda]``).

- ``_numba``: the one module that imports ``numba.cuda`` (numba-cuda, NVIDIA's maintained CUDA
  target); it says whether a GPU or the simulator is usable and why not.
- ``config``: block sizes and tile shapes, module-level so tests can shrink them.
- ``backend``: what ``archcost.execute`` loads for ``backend="cuda"``: ``ADAPTERS`` plus the arena
  and transfer functions and a per-layer timer built on CUDA events. Importing it without a usable
  device raises one ``ArchcostError`` line.
- ``conv``, ``linear``, ``pool``, ``pointwise``, ``tensor``, ``extra`` (the zoo's variant ops:
  channel select, affine, RBF, maxout, affine grid, grid sample): the kernels, one family per
  module, each kernel a bounds-guarded index computation; launch geometry lives in the Python
  wrappers. What is the same on the cpu is not repeated here: the formulas
  (archcost/kernels/formulas.py, compiled as device functions), the op -> adapter table and the
  prepared states that need no device layout (archcost/kernels/adapters.py).
- ``common``: launch helpers, index -> coordinates device functions, ``uploaded`` (a shared
  ``prepare`` whose arrays go to the device), and what the training adapters share.

Training: every adapter also has ``train_forward`` and ``backward`` (conv and linear also
``backward_count``), with the cpu adapters' semantics on device arrays (input gradients +=,
parameter gradients =, a param missing from ``param_grads`` frozen); dropout's training half is
``pointwise.DropoutTrain`` and the loss ``pointwise.SoftmaxCrossEntropy``. The backward kernels
gather: one thread per element of each gradient (per channel for the per-channel sums), the only
writer of it, so no atomics (grid sampling's data gradient, whose grid has no inverse to gather
through, has one thread per input plane instead).

Importing this package imports nothing from numba.
"""
