"""FractalNet (Larsson, Maire & Shakhnarovich, ICLR 2017), the CIFAR networks of Section 4.

A fractal block with C columns follows the expansion rule (Eq. 1 and Fig. 1)
``f_1(z) = conv(z)``, ``f_{C+1}(z) = join(f_C(f_C(z)), conv(z))``: column i holds 2^(i-1) convs,
the deepest column 2^(C-1). As in Fig. 1, consecutive joins are merged into one join over every
column that ends at that depth (the last join of a 4-column block averages 4 inputs), and a join
is the elementwise mean (``Mean``). Each conv is 3x3/1 pad 1 -> BatchNorm -> ReLU. B blocks,
each followed by a 2x2/2 max pool (Fig. 1 right: join, then pool), then the prediction layer.

Choices and departures (docs/zoo/fractalnet.md):
- CIFAR: B = 5 blocks of 64, 128, 256, 512, 512 filters (Sec. 4.1), so five pools take 32x32 to
  1x1 and the prediction layer is a single linear layer on 512 features.
- The convs have no bias: BatchNorm follows each (its beta is the bias). The paper (Caffe) does
  not say; this changes the count by one number per conv.
- Dropout (0%, 10%, ..., 40% per block) is an identity at inference and is left out.
- ``fractalnet20`` (C=3) is the network of Table 1 (20 layers, stated 38.6M params); this exact
  layout gives 33.7M, as the independent reimplementation khanrc/pt.fractalnet also reports.
  ``fractalnet40`` (C=4, 40 layers) uses the same widths.

``expected_training_macs`` gives the expected MACs of one training forward pass under the
paper's drop-path mixture; its docstring defines the mixture exactly.
"""

from __future__ import annotations

from itertools import combinations

from archcost.errors import ArchcostError
from archcost.graph import Graph, max_layers
from archcost.ops import Flatten, Linear, MaxPool2d, Mean
from archcost.registry import register
from archcost.zoo._blocks import conv_relu

CIFAR_WIDTHS = (64, 128, 256, 512, 512)  # Sec. 4.1: filters of blocks 1 to 5


def column_span(columns: int, column: int) -> int:
    """Depth (in units of the deepest column's convs) that one conv of ``column`` spans:
    column 1 (the shallowest, one conv) spans the whole block, column C spans 1."""
    return 2 ** (columns - column)


def block_convs(columns: int) -> list[tuple[int, int, int]]:
    """The convs of one block as (column, end depth, start depth), in build order: by end depth,
    then from the deepest column out. Depth 0 is the block input; the block ends at 2^(C-1)."""
    depth = 2 ** (columns - 1)
    convs = []
    for end in range(1, depth + 1):
        for column in range(columns, 0, -1):
            span = column_span(columns, column)
            if end % span == 0:
                convs.append((column, end, end - span))
    return convs


def fractal_block(g: Graph, x: str, columns: int, width: int) -> str:
    node_at = {0: x}  # depth -> the node every conv starting at that depth reads
    ends: dict[int, list[str]] = {}
    for column, end, start in block_convs(columns):
        index = end // column_span(columns, column)  # the conv's position within its column
        out = conv_relu(g, node_at[start], width, 3, padding=1, bn=True, name=f"col{column}_conv{index}")
        ends.setdefault(end, []).append(out)
        if column == 1 or end % column_span(columns, column - 1):  # the last column ending here
            node_at[end] = g.add(Mean(), *ends[end], name=f"join{end}") if len(ends[end]) > 1 else out
    return node_at[2 ** (columns - 1)]


def fractalnet(columns: int = 3, blocks: int = 5, widths: tuple = CIFAR_WIDTHS, num_classes: int = 10,
               input_shape=(3, 32, 32)) -> Graph:
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ArchcostError(f"fractalnet: columns must be a positive int, got {columns!r}")
    widths = tuple(widths)
    if len(widths) != blocks:
        raise ArchcostError(f"fractalnet: widths has {len(widths)} entries but blocks is {blocks}")
    g = Graph(f"fractalnet-C{columns}-B{blocks}")
    # A block has 2^C - 1 conv-BN-ReLU triples and 2^(C-1) joins: refuse a C past the layer
    # limit before 2^C is even enumerated.
    if columns > 64:
        raise ArchcostError(f"fractalnet: {columns} columns give 2^{columns} - 1 convs per block, "
                            f"far past the limit of {max_layers():,} layers")
    g.expect_layers(blocks * (3 * (2**columns - 1) + 2 ** (columns - 1)), f"{blocks} blocks of {columns} columns")
    x = g.input(input_shape)
    for b, width in enumerate(widths, start=1):
        with g.scope(f"block{b}"):
            x = fractal_block(g, x, columns, width)
            x = g.add(MaxPool2d(2, 2), x, name="pool")  # -> H/2 (CIFAR: 16, 8, 4, 2, 1)
    x = g.add(Flatten(), x, name="flatten")
    g.add(Linear(num_classes), x, name="fc")
    return g


# --- drop-path: expected training cost ---------------------------------------------------------


def _survivors(k: int, p: float):
    """(surviving inputs, probability) of one join with k inputs under local drop-path: each input
    is dropped independently with probability p; when all k are dropped, one input chosen
    uniformly at random is kept instead (the paper only says "at least one survives")."""
    if k == 1:
        yield (0,), 1.0
        return
    for size in range(1, k + 1):
        for kept in combinations(range(k), size):
            prob = (1 - p) ** size * p ** (k - size)
            if size == 1:
                prob += p**k / k
            yield kept, prob


def _block_local_macs(columns: int, conv_macs: dict, p: float) -> float:
    """Expected MACs of one block under local drop-path, exact, by a backward pass over depths
    whose state is the set of depths whose node some running conv still needs."""
    depth = 2 ** (columns - 1)
    by_end: dict[int, list[tuple[int, int]]] = {}
    for column, end, start in block_convs(columns):
        by_end.setdefault(end, []).append((column, start))
    states = {frozenset({depth}): 1.0}
    expected = 0.0
    for end in range(depth, 0, -1):
        nxt: dict[frozenset, float] = {}
        for needed, prob in states.items():
            if end not in needed:
                nxt[needed] = nxt.get(needed, 0.0) + prob
                continue
            convs = by_end[end]
            for kept, q in _survivors(len(convs), p):
                run = [convs[i] for i in kept]
                expected += prob * q * sum(conv_macs[(column, end)] for column, _ in run)
                state = (needed - {end}) | {start for _, start in run}
                nxt[state] = nxt.get(state, 0.0) + prob * q
        states = nxt
    return expected


def expected_training_macs(graph: Graph, columns: int, local_drop: float = 0.15,
                           global_fraction: float = 0.5, skip_dropped: bool = True) -> float:
    """Expected MACs of one training forward pass (per sample) of a FractalNet built by
    ``fractalnet(columns=...)``, under the paper's drop-path mixture (Sec. 3.1 and 4.1).

    The mixture, per mini-batch:
    - with probability ``global_fraction`` (0.5, "50% of batches"), global drop-path: one column
      i is chosen uniformly from 1..C and only the convs of column i run, in every block;
    - otherwise local drop-path: every join independently drops each of its k inputs with
      probability ``local_drop`` (0.15), keeping one input chosen uniformly at random when all k
      would be dropped. Joins in different blocks and depths are independent.

    Which convs run under local drop: with ``skip_dropped=True`` a conv runs only when its output
    reaches the block output through surviving join inputs (what an implementation that skips
    dead paths executes); with ``skip_dropped=False`` every conv runs and the join just ignores
    dropped inputs, as in the authors' Caffe FractalJoin, so local batches cost the full forward.
    Layers outside the blocks (the prediction layer) always run.

    Derivation. By linearity of expectation,
    ``E = g * E_global + (1 - g) * E_local + M_fixed``, with
    ``E_global = (1/C) * sum_i sum_blocks M(column i)`` and ``E_local = sum_blocks E_block``.
    ``E_block`` is computed exactly by a pass from the block output back to its input, whose
    state is the set of depths whose node a running conv still reads; a conv runs when its
    end-depth node is needed and it survives that depth's join. For C=2 (convs a: z->h,
    b: h->out in column 2, c: z->out in column 1; one join of 2 inputs) this gives
    ``E_block = (a + b + c) * (1 - p + p^2 / 2)`` and ``E_global = (a + b + c) / 2`` per block.
    """
    if not 0.0 <= local_drop < 1.0 or not 0.0 <= global_fraction <= 1.0:
        raise ArchcostError(
            f"expected_training_macs: need 0 <= local_drop < 1 and 0 <= global_fraction <= 1, "
            f"got {local_drop!r}, {global_fraction!r}"
        )
    from archcost.analysis import analyze

    records = {r.name: r for r in analyze(graph).records}
    blocks = sorted({name.split(".")[0] for name in records if name.startswith("block")},
                    key=lambda s: int(s[5:]))
    convs_in_blocks = {name for name in records if name.startswith("block") and records[name].op == "conv"}
    fixed = sum(r.macs for name, r in records.items() if name not in convs_in_blocks)
    local = global_ = 0.0
    for block in blocks:
        conv_macs = {}
        for column, end, _ in block_convs(columns):
            index = end // column_span(columns, column)
            name = f"{block}.col{column}_conv{index}"
            if name not in records:
                raise ArchcostError(f"expected_training_macs: graph has no conv {name!r}; columns={columns}?")
            conv_macs[(column, end)] = records[name].macs
        full = sum(conv_macs.values())
        local += _block_local_macs(columns, conv_macs, local_drop) if skip_dropped else full
        global_ += sum(
            sum(m for (column, _), m in conv_macs.items() if column == chosen) for chosen in range(1, columns + 1)
        ) / columns
    return global_fraction * global_ + (1 - global_fraction) * local + fixed


SOURCE = "Larsson et al. 2017 (FractalNet), Sec. 4.1 and Table 1"
register("fractalnet20", fractalnet, columns=3,
         description="FractalNet for CIFAR, C=3 columns, B=5 blocks, 20 layers", source=SOURCE)
register("fractalnet40", fractalnet, columns=4,
         description="FractalNet for CIFAR, C=4 columns, B=5 blocks, 40 layers", source=SOURCE)
