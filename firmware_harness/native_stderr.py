"""Capture what C++ libraries (TensorFlow, LiteRT, TFLM) print straight to file descriptor 2."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager


_fd2 = threading.RLock()


class Captured:
    text: str = ""


@contextmanager
def captured(replay_on_error: bool = True) -> Iterator[Captured]:
    """Redirect fd 2 into a buffer for the block; replay it if the block raises.

    The text is in the yielded object's `text` after the block. fd 2 belongs to the whole
    process, so blocks in different threads take turns (a lock), or one would restore the
    other's sink as stderr.
    """
    result = Captured()
    sys.stderr.flush()
    with _fd2, tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield result
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            result.text = sink.read().decode(errors="replace")
            if replay_on_error:
                sys.stderr.write(result.text)
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        result.text = sink.read().decode(errors="replace")
