"""The ``sflowlab`` command: one subcommand per module in ``sflowlab.commands``.

Each command module exposes ``add_parser(subparsers)`` (which sets ``func``) and is imported
only when listed here, so ``sflowlab decode`` never imports the lab's dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "agent": "sflowlab.commands.agent",
    "agents": "sflowlab.commands.agents",
    "collector": "sflowlab.commands.collector",
    "decode": "sflowlab.commands.decode",
    "lab": "sflowlab.commands.lab",
    "run": "sflowlab.commands.run",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sflowlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
