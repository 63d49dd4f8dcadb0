"""Capture what C++ libraries (TensorFlow, LiteRT, TFLM) print straight to file descriptor 2."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


class Captured:
    text: str = ""


@contextmanager
def captured(replay_on_error: bool = True) -> Iterator[Captured]:
    """Redirect fd 2 into a buffer for the block; replay it if the block raises.

    The text is in the yielded object's `text` after the block.
    """
    result = Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
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
