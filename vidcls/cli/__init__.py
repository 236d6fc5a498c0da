"""Command line: argument parsing and printing only; each command calls one stage function
and prints what it returns (`describe()` of its result). The commands: making.py (videos,
features, models) and using.py (evaluate, export, predict, serve).

Flags that set config keys come from tables (vidcls/flags.py): their types and defaults
are the config dataclasses'. TensorFlow is imported by the commands that need it, never by
`vidcls --help`.
"""

from __future__ import annotations

import argparse
import sys

from vidcls import __version__
from vidcls.cli import making, using
from vidcls.cli.output import EXIT_CODES, HelpFormatter, common_flags, configure_output
from vidcls.errors import VidclsError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    configure_output(args)
    try:
        return args.handler(args) or 0
    except VidclsError as error:
        print(f"vidcls {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vidcls {args.command}: interrupted", file=sys.stderr)
        return 130


class _Commands:
    """The subcommand registry, giving each command the shared flags and help format."""

    def __init__(self, subparsers):
        self.subparsers = subparsers
        self.parent = common_flags()

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self.subparsers.add_parser(name, parents=[self.parent], formatter_class=HelpFormatter,
                                          description=kwargs.get("help"), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidcls", description="Train video action classifiers on cached CNN features; export to TFLite.",
        epilog=f"{EXIT_CODES}\n\n`vidcls COMMAND --help` shows a command's flags and their defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"vidcls {__version__}")
    commands = _Commands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    for add in (making.add_synth, making.add_extract, making.add_train, making.add_crossval, using.add_evaluate,
                using.add_compare, making.add_sweep, making.add_finetune, using.add_export, using.add_stream, using.add_predict,
                using.add_serve, making.add_demo):
        add(commands)
    return parser
