"""What PyTorch autograd really keeps for backward, per zoo model with a torchvision twin: the
ground truth for archcost's training-memory estimate.

    PYTHONPATH=$PWD python benchmarks/torch_training_memory.py [--models resnet18_tv vgg16 ...]
                                                               [--batches 1,8] [--json PATH]
                                                               [--threads 2]

Needs torch and torchvision (a baseline only; archcost never imports torch); without them it
says so and exits 0. For each model it builds the torchvision twin in train mode (random
weights, no aux heads), runs forward + CrossEntropyLoss on random int64 labels at each batch
size on the CPU in float32, and records every tensor autograd saves for backward through a
``torch.autograd.graph.saved_tensors_hooks`` pack hook. Bytes are counted per UNIQUE storage
(``untyped_storage().nbytes()``: an in-place ReLU's output, a view or a tensor saved by two
nodes counts once), split into

- ``activation_bytes``: float storages that are not parameters/buffers, the input batch
  included when it is saved (a trainable first conv saves it; ``input_saved`` says whether);
- ``index_bytes``: integer/bool storages (max-pool indices, the loss's int64 targets), also
  reported on their own and not in ``activation_bytes``;
- ``param_bytes``: storages of parameters and buffers (conv/linear weights, BN weight and
  running stats) that autograd references; they exist anyway and are excluded from
  activations.

``saved_bytes`` = activation + index bytes, the memory that training adds over inference
weights. ``saved_tensors`` counts pack-hook calls (one per saved field of an autograd node).
The JSON also has ``by_node``: non-parameter saved bytes keyed by the autograd node types that
hold each storage (``ConvolutionBackward0+ReluBackward0``: an in-place ReLU's output that the
next conv saves as its input), for reconciling a model layer by layer.

If ``archcost.training.analyze_training(graph, batch=..., policy="pytorch")`` is importable, its
``.totals["train_saved_bytes"]`` is put beside torch's ``saved_bytes`` with the ratio
archcost / torch; otherwise only torch's numbers are printed. Writes a Markdown table to stdout
and, with ``--json``, all numbers to a JSON file.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import platform
import sys
import time
from pathlib import Path

# zoo name -> (torchvision.models builder, keyword arguments). Only exact twins: same layers,
# same parameter count (checked at run time against archcost's count).
TWINS: dict[str, tuple[str, dict]] = {
    "alexnet_tv": ("alexnet", {}),
    "convnext_t": ("convnext_tiny", {}),
    "densenet121": ("densenet121", {}),
    "densenet169": ("densenet169", {}),
    "densenet201": ("densenet201", {}),
    "googlenet_tv": ("googlenet", {"aux_logits": False, "init_weights": False}),
    "inception_v3": ("inception_v3", {"aux_logits": False, "init_weights": False}),
    "resnet18_tv": ("resnet18", {}),
    "resnet34_tv": ("resnet34", {}),
    "resnet50_tv": ("resnet50", {}),
    "resnet101_tv": ("resnet101", {}),
    "resnet152_tv": ("resnet152", {}),
    "resnext50_32x4d": ("resnext50_32x4d", {}),
    "resnext101_32x8d": ("resnext101_32x8d", {}),
    "squeezenet1_0": ("squeezenet1_0", {}),
    "squeezenet1_1": ("squeezenet1_1", {}),
    "vgg11": ("vgg11", {}),
    "vgg13": ("vgg13", {}),
    "vgg16": ("vgg16", {}),
    "vgg19": ("vgg19", {}),
    "vgg11_bn": ("vgg11_bn", {}),
    "vgg13_bn": ("vgg13_bn", {}),
    "vgg16_bn": ("vgg16_bn", {}),
    "vgg19_bn": ("vgg19_bn", {}),
    "wrn50_2": ("wide_resnet50_2", {}),
}
# Zoo options that make a paper model torchvision's twin: VGG's AdaptiveAvgPool2d(7), which the
# paper (and the CS231n table) do not have.
TWIN_OPTIONS: dict[str, dict] = {name: {"torchvision": True} for name in TWINS if name.startswith("vgg")}


def build_twin(name: str, input_shape=None):
    """The zoo graph of twin ``name``, with its torchvision options."""
    from archcost import zoo

    return zoo.build(name, input_shape=input_shape, **TWIN_OPTIONS.get(name, {}))


def archcost_side():
    """(zoo module, analyze_training or None, analyze)."""
    from archcost import zoo
    from archcost.analysis import analyze

    try:
        from archcost.training import analyze_training
    except ImportError:
        analyze_training = None
    return zoo, analyze_training, analyze


def measure(torch, model, x, labels):
    """Saved-for-backward census of one forward + loss."""
    packed = []  # (storage ptr, storage bytes, dtype) of each saved tensor

    def pack(t):
        packed.append((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes(), t.dtype))
        # A detached alias: same storage, no grad_fn. Returning t itself would make an output
        # saved by its own node a reference cycle through Python that is never freed.
        return t.detach()

    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    param_ptrs |= {b.untyped_storage().data_ptr() for b in model.buffers()}
    input_ptr = x.untyped_storage().data_ptr()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out, labels)
    index_dtypes = {torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool}
    storages: dict[int, tuple[int, str]] = {}  # ptr -> (bytes, kind)
    for ptr, nbytes, dtype in packed:
        if ptr in storages:
            continue
        if ptr in param_ptrs:
            kind = "param"
        elif dtype in index_dtypes:
            kind = "index"
        else:
            kind = "activation"
        storages[ptr] = (nbytes, kind)

    def total(kind):
        return sum(b for b, k in storages.values() if k == kind)

    row = {
        "saved_tensors": len(packed),
        "unique_storages": len(storages),
        "activation_bytes": total("activation"),
        "index_bytes": total("index"),
        "param_bytes": total("param"),
        "input_saved": input_ptr in storages,
        "input_bytes": x.untyped_storage().nbytes(),
        "by_node": by_node(torch, loss, storages),
    }
    row["saved_bytes"] = row["activation_bytes"] + row["index_bytes"]
    del out, loss
    return row


def by_node(torch, loss, storages):
    """Non-parameter saved bytes by the autograd node types that hold each storage: a storage
    kept by a BatchNorm (its input) and by the conv before it is keyed
    'ConvolutionBackward0+NativeBatchNormBackward0' (sorted names), counted once."""
    holders: dict[int, set] = {}
    seen, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        kind = type(node).__name__
        for attr in dir(node):
            if not attr.startswith("_saved_"):
                continue
            try:
                value = getattr(node, attr)
            except Exception:  # a saved field already freed or not a tensor
                continue
            for t in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(t, torch.Tensor):
                    holders.setdefault(t.untyped_storage().data_ptr(), set()).add(kind)
        stack.extend(nxt for nxt, _ in node.next_functions if nxt is not None)
    out: dict[str, int] = {}
    for ptr, (nbytes, kind) in storages.items():
        if kind == "param":
            continue
        key = "+".join(sorted(holders.get(ptr, {"?"})))
        out[key] = out.get(key, 0) + nbytes
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def run(args) -> int:
    try:
        import torch
        import torchvision
    except ImportError as exc:
        print(f"torch/torchvision not importable ({exc}); nothing to measure")
        return 0
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    zoo, analyze_training, analyze = archcost_side()
    models = [m for item in (args.models or TWINS) for m in item.split(",") if m]
    unknown = [m for m in models if m not in TWINS]
    if unknown:
        print(f"no torchvision twin for: {', '.join(unknown)}; twins: {', '.join(TWINS)}", file=sys.stderr)
        return 2
    batches = [int(b) for b in args.batches.split(",")]
    results = []
    started = time.perf_counter()
    for name in models:
        tv_name, kwargs = TWINS[name]
        graph = build_twin(name)
        shape = graph.shape(graph.input_nodes()[0])[1:]
        ac_params = analyze(graph, batch=1).totals["params"]
        model = getattr(torchvision.models, tv_name)(weights=None, **kwargs).train()
        tv_params = sum(p.numel() for p in model.parameters())
        for batch in batches:
            t0 = time.perf_counter()
            x = torch.randn(batch, *shape)
            labels = torch.randint(0, 1000, (batch,), dtype=torch.int64)
            row = {"model": name, "torchvision": tv_name, "batch": batch, "input_shape": list(shape),
                   "params_torchvision": tv_params, "params_archcost": ac_params,
                   **measure(torch, model, x, labels)}
            row["seconds"] = round(time.perf_counter() - t0, 2)
            if analyze_training is not None:
                try:
                    rep = analyze_training(graph, batch=batch, policy="pytorch")
                    ac = int(rep.totals["train_saved_bytes"])
                    row["archcost_saved_bytes"] = ac
                    row["ratio"] = ac / row["saved_bytes"] if row["saved_bytes"] else None
                except Exception as exc:  # the API is young: record, keep measuring
                    row["archcost_error"] = f"{type(exc).__name__}: {exc}"
            results.append(row)
            print(f"# {name} b{batch}: {row['saved_bytes'] / 2**20:.1f} MiB saved, {row['seconds']} s",
                  file=sys.stderr, flush=True)
            gc.collect()
        del model
        gc.collect()
    elapsed = time.perf_counter() - started
    print_table(results, analyze_training is not None)
    print(f"\n{len(results)} runs in {elapsed:.1f} s (torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, {args.threads} threads)")
    if args.json:
        out = {
            "when": datetime.datetime.now().isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "python": platform.python_version(),
            "device": "cpu",
            "dtype": "float32",
            "threads": args.threads,
            "seconds": round(elapsed, 1),
            "archcost_compared": analyze_training is not None,
            "results": results,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def mib(n):
    return f"{n / 2**20:,.2f}"


def print_table(results, compared):
    head = ["model", "batch", "saved tensors", "storages", "activations MiB", "index MiB",
            "saved MiB", "input saved", "params referenced MiB", "params match"]
    if compared:
        head += ["archcost MiB", "archcost / torch"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        cells = [r["model"], r["batch"], r["saved_tensors"], r["unique_storages"], mib(r["activation_bytes"]),
                 mib(r["index_bytes"]), mib(r["saved_bytes"]), "yes" if r["input_saved"] else "no",
                 mib(r["param_bytes"]), "yes" if r["params_torchvision"] == r["params_archcost"] else
                 f"no ({r['params_torchvision']:,} vs {r['params_archcost']:,})"]
        if compared:
            if "archcost_saved_bytes" in r:
                cells += [mib(r["archcost_saved_bytes"]), f"{r['ratio']:.3f}" if r["ratio"] else "-"]
            else:
                cells += [r.get("archcost_error", "-"), "-"]
        print("| " + " | ".join(str(c) for c in cells) + " |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", help="zoo names, space- or comma-separated (default: every twin)")
    ap.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    ap.add_argument("--json", help="write all numbers to this JSON file")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
