"""Writes docs/cli.md, the command-line reference, from the argparse parser itself.

    python tools/cli_reference.py          # rewrite docs/cli.md
    python tools/cli_reference.py --check  # exit 1 if docs/cli.md is not what the parser says

tests/test_docs.py runs the check, so the reference cannot drift from the flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "cli.md"
WIDTH = "100"  # columns argparse wraps help at, fixed so the file does not depend on the terminal

HEADER = """# Command-line reference

Generated from the parser by `python tools/cli_reference.py` (a test checks that it is up to
date); `vidcls COMMAND --help` prints the same. Every command takes `-q/--quiet` (results and
errors only) and `-v/--verbose` (debug messages and TensorFlow's log). `--json` (extract,
train, crossval, evaluate, compare, export, predict, stream) prints one JSON document on
stdout and everything else on stderr, so `vidcls evaluate --run-dir runs/a --json | jq
.accuracy` works.
"""


def render() -> str:
    sys.path.insert(0, str(ROOT))
    from vidcls.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return _render(build_parser())
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _render(parser: argparse.ArgumentParser) -> str:
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    sections = [HEADER, "## vidcls\n", "```text\n" + parser.format_help() + "```\n"]
    sections.append("| command | what it does |\n|---|---|\n" + "".join(
        f"| [`{name}`](#vidcls-{name}) | {helps[name]} |\n" for name in commands.choices))
    for name, command in commands.choices.items():
        sections.append(f"## vidcls {name}\n")
        sections.append("```text\n" + command.format_help() + "```\n")
    return "\n".join(sections)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not REFERENCE.is_file() or REFERENCE.read_text() != text:
            print(f"{REFERENCE} is out of date: run python tools/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
