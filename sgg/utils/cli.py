"""The main guard of every command-line tool: user-facing errors become one line and exit code 2.

    if __name__ == "__main__":
        run_tool(main)

* an :class:`sgg.utils.errors.SggError` (ConfigError, DataError, CheckpointError, EvaluationError, RunError) or a
  ``FileNotFoundError`` prints ``error: <message>`` on stderr and exits with 2;
* Ctrl-C (KeyboardInterrupt) prints one line and exits with 130 (128 + SIGINT), as a shell does;
* ``--debug`` anywhere on the command line (removed before the tool parses its arguments) or ``SGG_DEBUG=1`` in the
  environment lets those exceptions through with their traceback;
* any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, List, Optional, Sequence

from .errors import SggError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "SGG_DEBUG"
USER_ERRORS = (SggError, FileNotFoundError)
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
# torch re-raises an exception of a DataLoader worker as the same type with the worker's traceback in its message
_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def split_debug_flag(argv: Sequence[str]) -> tuple:
    """``(argv without --debug, whether it was there)``."""
    argv = list(argv)
    return [a for a in argv if a != DEBUG_FLAG], DEBUG_FLAG in argv


def debug_from_env() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def error_message(err: BaseException) -> str:
    """The user-facing text of ``err``: its message, or for an error re-raised from a DataLoader worker the original
    message without the worker's traceback."""
    text = str(err)
    if _WORKER_TRACEBACK in text:
        last = text.rstrip().splitlines()[-1]  # "sgg.utils.errors.DataError: <message>"
        name = type(err).__module__ + "." + type(err).__qualname__
        for prefix in (name + ": ", type(err).__qualname__ + ": "):
            if last.startswith(prefix):
                return last[len(prefix):]
        return last
    return text


def run_tool(main: Callable[[Optional[List[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> None:
    """Call ``main(argv)`` (default: ``sys.argv[1:]`` without ``--debug``) and exit with its return code, turning
    user-facing errors into one line on stderr and exit code 2 (see the module docstring)."""
    from_command_line = argv is None
    argv, debug = split_debug_flag(sys.argv[1:] if from_command_line else argv)
    debug = debug or debug_from_env()
    if from_command_line:
        sys.argv[1:] = argv  # code that reads sys.argv itself never sees --debug
    try:
        code = main(argv)
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"error: {error_message(err)}", file=sys.stderr)
        code = EXIT_USER_ERROR
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code)
