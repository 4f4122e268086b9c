"""The framework's user-facing errors.

Every error a user can cause and fix (a bad config key, a damaged data file, a wrong checkpoint, an evaluation that
cannot be scored) is an :class:`SggError`; the command-line tools print its message with exit code 2 and show the
traceback only with ``--debug`` (or ``SGG_DEBUG=1``). Anything else is a bug and keeps its traceback.

The subclasses also derive from ``ValueError`` so that code written against the older ``ValueError`` contract still
catches them.
"""


class SggError(ValueError):
    """A problem with the user's input that the message explains: what is wrong, where, and what was expected."""

    def __str__(self) -> str:  # a KeyError subclass would otherwise print the message with quotes
        return str(self.args[0]) if self.args else ""


class DataError(SggError):
    """A data file (a dataset's h5, json or image; word vectors; a results or boxes file given to a tool) is missing,
    damaged or inconsistent, or the data selected for a run is empty."""


class CheckpointError(SggError):
    """A checkpoint is missing, damaged, of the wrong kind or does not fit the model."""


class EvaluationError(SggError):
    """Predictions cannot be scored as asked (missing images, a damaged predictions file, a mismatched config)."""


class RunError(SggError):
    """An output directory or run state conflicts with the requested run (resume refused, results would be lost)."""


def one_line(err: BaseException) -> str:
    """The message of a library's exception on one line, to quote inside an SggError (the tools print one line).

    torch's weights-only unpickling failure wraps its reason ("Unsupported operand 0", "Unsupported global: ...") in
    several lines of advice about ``weights_only=False`` that does not apply to a damaged file: only the reason is
    kept. Other messages (YAML positions, ``load_state_dict`` mismatch lists) have their lines joined with "; ".
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = next((line for line in lines if line.startswith("Unsupported ")), None)
    return reason if reason is not None else "; ".join(lines)
