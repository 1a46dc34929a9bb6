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
  wrappers.

Importing this package imports nothing from numba.
"""
