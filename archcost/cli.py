"""The ``archcost`` command line. Each command imports what it needs inside its handler, so
``archcost table`` never imports numba or matplotlib."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys

from archcost.errors import ArchcostError, one_line


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        # "table: ..." rather than "archcost table: ...": main() already prints "archcost: error:".
        prog = self.prog.removeprefix("archcost").strip()
        raise ArchcostError(f"{prog}: {message}" if prog else message)

    def add_argument(self, *args, **kwargs):
        return super().add_argument(*args, **_literal_percent(kwargs))


class _SubParsers(argparse._SubParsersAction):
    def add_parser(self, name, **kwargs):
        return super().add_parser(name, **_literal_percent(kwargs))


def _literal_percent(kwargs: dict) -> dict:
    # argparse %-formats help texts ("%(default)s"): a literal % ("% of peak") would crash
    # `--help`. No help text here uses %-formatting, so every % is literal.
    if isinstance(kwargs.get("help"), str):
        kwargs["help"] = kwargs["help"].replace("%", "%%")
    return kwargs


def make_parser() -> argparse.ArgumentParser:
    import importlib
    import pkgutil

    from archcost import commands

    from importlib.metadata import PackageNotFoundError, version

    parser = _Parser(prog="archcost", description="What a CNN architecture costs, computed and proven.")
    try:
        own_version = version("archcost")
    except PackageNotFoundError:  # run from a source tree that was never installed
        own_version = "unknown (not installed)"
    parser.add_argument("--version", action="version", version=f"archcost {own_version}")
    parser.register("action", "parsers", _SubParsers)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for module in pkgutil.iter_modules(commands.__path__):
        if module.name.startswith("_"):  # shared helpers, not a command
            continue
        importlib.import_module(f"archcost.commands.{module.name}").add_parser(sub)
    return parser


def _error(message: str, code: int = 2) -> int:
    print(f"archcost: error: {one_line(message)}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input: one line on stderr and exit 2, never a traceback."""
    if hasattr(signal, "SIGXFSZ"):
        # Past a file-size limit, a write should fail with EFBIG (and be reported), not kill us.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        parser = make_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return _error("no command given; choose one of the commands above")
        return args.run(args)
    except ArchcostError as exc:
        return _error(str(exc))
    except BrokenPipeError:
        # The reader went away (`archcost list | head`): stop quietly, and keep Python from
        # complaining again while it flushes stdout at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except RecursionError:
        return _error("the input nests too deeply to read")
    except MemoryError:
        return _error("out of memory: the model (or --batch/--input) is too large for this machine")
    except OSError as exc:  # a file we were asked to read or write
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}")
    except Exception as exc:  # a bug in archcost, not in the input: say so, in one line
        if os.environ.get("ARCHCOST_DEBUG"):
            raise
        return _error(f"internal error ({type(exc).__name__}: {exc}); please report it, "
                      "and rerun with ARCHCOST_DEBUG=1 for the traceback", 3)



if __name__ == "__main__":
    sys.exit(main())
