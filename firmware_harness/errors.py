"""Errors a user can act on. The CLIs print them as one line, no traceback."""

import re


class UserError(Exception):
    """Bad input or usage (exit code 2): the message says what was wrong and what to do."""

    exit_code = 2


class WorkError(Exception):
    """The work itself failed (exit code 1): a target missed, a run that cannot finish."""

    exit_code = 1


NO_OPENCV = ("OpenCV is not installed; predict and camera need it: pip install opencv-python-headless "
             "(on 32-bit Raspberry Pi OS: sudo apt install python3-opencv)")


class Interrupted(BaseException):
    """Ctrl-C, raised by the CLIs' SIGINT handler.

    A BaseException (like KeyboardInterrupt) so no `except Exception` swallows it, but
    not a KeyboardInterrupt, which command-line frameworks turn into a bare "Aborted!".
    """

    exit_code = 130


_interrupt_requested = False


def raise_interrupted(signum, frame) -> None:
    """The CLIs' SIGINT handler: raise Interrupted, and remember that it came. Python runs a handler
    wherever the main thread is when the signal lands, and one raised inside a finalizer (TensorFlow
    runs many) is printed and dropped; long loops call `check_interrupted` between steps for that case."""
    global _interrupt_requested
    _interrupt_requested = True
    raise Interrupted()


def check_interrupted() -> None:
    """Raise Interrupted if a Ctrl-C came and its exception was lost."""
    if _interrupt_requested:
        raise Interrupted()


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 controls but tab and newline
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str, one_line: bool = False) -> str:
    """Text from outside (a file name, a label, a card field) with its control characters shown as escapes:
    `\\x1b]0;owned\\x07` is printed, not obeyed, so a file cannot retitle, rewrite or clear a terminal.
    `one_line` escapes newlines and tabs too (a file name in a line of output, an error message)."""
    pattern = _CONTROL_OR_NEWLINE if one_line else _CONTROL
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class EscapedStream:
    """A text stream that passes every write through `printable`; `unfiltered` is the stream itself, for
    the control codes the tool writes on purpose (the progress line's carriage return)."""

    def __init__(self, stream):
        self.unfiltered = stream

    def write(self, text: str) -> int:
        return self.unfiltered.write(printable(text))

    def __getattr__(self, name: str):
        return getattr(self.unfiltered, name)


def printable_streams() -> None:
    """The CLIs' stdout and stderr: what cannot be encoded (a file name that is not UTF-8) is printed with
    backslash escapes instead of failing, and control characters from files reach no terminal raw."""
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
        if not isinstance(stream, EscapedStream):
            setattr(sys, name, EscapedStream(stream))
