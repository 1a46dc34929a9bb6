"""Fuzz archcost with random graphs: the generators and checks of the property tests
(tests/graph_strategies.py), driven by ``random.Random`` instead of hypothesis, so that a run of
thousands of examples does not stop at the first failure.

    PYTHONPATH=$PWD python benchmarks/fuzz_graphs.py [--examples 10000] [--seed 0]

Each example is, at random, a valid graph (half of them: checked for textbook shapes, archcost
validate, and consistent analysis totals), an invalid spec (three in ten: must be refused with an
ArchcostError as it is built) or a hostile one (one in five: any op with fields set to anything;
must build and analyse, or raise an ArchcostError). Example ``i`` draws from
``random.Random(f"{seed}:{i}")``, so ``--seed S --only i`` reruns one example. Prints the counts
and every failure with the Python that rebuilds its graph; exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.graph_strategies

from tests.graph_strategies import (  # noqa: E402
    RandomChooser, analysis_problems, build, hostile_outcome, hostile_spec, invalid_problem, invalid_spec,
    shape_problems, valid_spec, validation_problems,
)


def run_one(seed: int, index: int) -> tuple[str, str, list[str], object]:
    """(category, outcome, problems, spec) of example ``index``."""
    ch = RandomChooser(random.Random(f"{seed}:{index}"))
    draw = ch.int(0, 9)
    spec = None
    try:
        if draw < 5:
            spec = valid_spec(ch)
            graph = build(spec)
            problems = shape_problems(spec, graph) or validation_problems(spec, graph)
            problems += analysis_problems(spec, graph)
            return "valid", "ok" if not problems else "failed", problems, spec
        if draw < 8:
            spec = invalid_spec(ch)
            problem = invalid_problem(spec)
            return "invalid", "rejected" if problem is None else "failed", [problem] if problem else [], spec
        spec = hostile_spec(ch)
        outcome, problem = hostile_outcome(spec)
        return "hostile", outcome if problem is None else "failed", [problem] if problem else [], spec
    except Exception:  # noqa: BLE001 - a valid graph that does not build, or a bug in a check
        category = "valid" if draw < 5 else "invalid" if draw < 8 else "hostile"
        return category, "failed", [traceback.format_exc(limit=-3).strip()], spec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="how many examples (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole run (default 0)")
    parser.add_argument("--only", type=int, default=None, metavar="I", help="run example I only")
    parser.add_argument("--progress", type=int, default=1000, metavar="N", help="a progress line every N examples")
    args = parser.parse_args(argv)
    indices = [args.only] if args.only is not None else range(args.examples)
    counts: Counter = Counter()
    layers = 0
    failures = []
    start = time.perf_counter()
    for n, i in enumerate(indices, 1):
        category, outcome, problems, spec = run_one(args.seed, i)
        counts[category] += 1
        counts[(category, outcome)] += 1
        if category == "valid" and spec is not None:
            layers += len(spec.layers)
        if problems:
            failures.append((i, category, problems, spec))
            print(f"FAILED example {i} ({category}):", *problems, spec.code() if spec else "", sep="\n  ", flush=True)
        if args.progress and n % args.progress == 0:
            print(f"... {n} examples, {len(failures)} failures, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    total = sum(counts[c] for c in ("valid", "invalid", "hostile"))
    print(f"seed {args.seed}: {total} graphs generated in {seconds:.1f} s")
    print(f"  valid:   {counts['valid']:6d}, validated ok {counts[('valid', 'ok')]} "
          f"({layers} layers: shapes, MACs, float64 agreement, peak, analysis totals)")
    print(f"  invalid: {counts['invalid']:6d}, rejected cleanly with an ArchcostError "
          f"{counts[('invalid', 'rejected')]}")
    print(f"  hostile: {counts['hostile']:6d}, built and analysed {counts[('hostile', 'built')]}, "
          f"refused cleanly {counts[('hostile', 'refused')]}")
    print(f"  failures: {len(failures)}" + (f" (examples {', '.join(str(f[0]) for f in failures[:20])}"
                                            f"{', ...' if len(failures) > 20 else ''})" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
