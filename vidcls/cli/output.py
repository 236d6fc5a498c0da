"""What every command shares: `-q/--quiet` and `-v/--verbose`, help that shows defaults, and
`--json` output (one JSON document on stdout, everything else on stderr)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
from pathlib import Path

EXIT_CODES = """exit status:
  0    success
  1    some inputs failed (extract: unreadable videos without --allow-failures; predict: unreadable videos)
  2    usage or configuration error (a bad flag, key, value, file or directory; the message names it)
  130  interrupted (Ctrl-C): nothing half-written looks finished; extract and train resume with the same command"""


class HelpFormatter(argparse.HelpFormatter):
    """Appends each option's default to its help, unless the help already states it or
    there is none to state (None, False, an empty list)."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        default = action.default
        if (not action.option_strings or default in (None, False, argparse.SUPPRESS) or default == []
                or "default" in help_text or isinstance(action, argparse._VersionAction)):
            return help_text
        return f"{help_text} (default: %(default)s)" if help_text else "default: %(default)s"


def common_flags() -> argparse.ArgumentParser:
    """The parent parser of every command: how much it says."""
    parent = argparse.ArgumentParser(add_help=False)
    volume = parent.add_argument_group("output").add_mutually_exclusive_group()
    volume.add_argument("-q", "--quiet", action="store_true",
                        help="only results and errors: no progress bars, per-epoch lines or notes")
    volume.add_argument("-v", "--verbose", action="store_true",
                        help="also debug messages, and TensorFlow's own log")
    return parent


def configure_output(args: argparse.Namespace) -> None:
    """vidcls's messages on stderr at the chosen level; TensorFlow's C++ log (read when
    TensorFlow is imported, which has not happened yet) likewise."""
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3" if quiet else "2")
    logger = logging.getLogger("vidcls")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("vidcls: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def add_json_flag(command, what: str) -> None:
    command.add_argument("--json", action="store_true",
                         help=f"print {what} as one JSON document on stdout (everything else goes to stderr)")


@contextlib.contextmanager
def json_output(args: argparse.Namespace):
    """With `--json`, whatever is written to stdout meanwhile (Keras's epoch lines, a C++
    library's print) goes to stderr, so stdout carries the JSON document alone."""
    if not getattr(args, "json", False):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def print_result(args: argparse.Namespace, result) -> None:
    """The result as JSON (`--json`) or as its `describe()` lines."""
    if getattr(args, "json", False):
        print(to_json(result))
    else:
        print(result.describe())


def to_json(result) -> str:
    """Strict JSON (what `jq` reads): NaN and infinities, e.g. a metric of a run without a
    validation split, become null."""
    values = result.to_dict() if hasattr(result, "to_dict") else result
    return json.dumps(_finite(json.loads(json.dumps(values, default=_jsonable))), indent=2, allow_nan=False)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Cannot write {type(value).__name__} as JSON")
