"""Errors a user can act on. The CLIs print them as one line, no traceback."""


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


def printable_streams() -> None:
    """Print what cannot be encoded (a file name that is not UTF-8) with backslash escapes instead of failing."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
