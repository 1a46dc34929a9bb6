"""archcost list [PATTERN]: the zoo's models with a one-line description and source."""

import fnmatch

from archcost.errors import ArchcostError


def add_parser(sub):
    p = sub.add_parser("list", help="list the zoo's models")
    p.add_argument("pattern", nargs="?", help="shell wildcard, e.g. 'resnet*'")
    p.set_defaults(run=run)


def run(args) -> int:
    from archcost import registry, zoo  # noqa: F401  (importing zoo fills the registry)

    found = registry.entries(args.pattern)
    patterns = [p for p in registry.PATTERNS if not args.pattern or fnmatch.fnmatchcase(p.example, args.pattern)]
    if not found and not patterns:
        raise ArchcostError(f"list: no model matches {args.pattern!r}")
    width = max((len(e.name) for e in found), default=0)
    for e in found:
        print(f"{e.name.ljust(width)}  {e.description}  [{e.source}]")
    if patterns:
        print("\nparametric names:")
        for p in patterns:
            print(f"  {p.example}  {p.description}  [{p.source}]")
    return 0
