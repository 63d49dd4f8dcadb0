"""Read many image files with one model, in input order: in this process, or shared with worker processes.

Each worker (spawned: no forked interpreter threads) loads the model once and reads a chunk
of files at a time; what comes back is the reading without its crops.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from firmware_harness import recognize
from firmware_harness.errors import UserError
from firmware_harness.reader import DigitReader
from firmware_harness.runtime import Model

CHUNK = 64  # files read per round trip


@dataclass
class FileReading:
    """One file's reading, or the one-line reason it could not be read."""

    path: Path
    reading: recognize.Reading | None = None
    error: str | None = None


_worker: dict = {}


def _start_worker(model_path: Path, backend: str | None, threads: int | None, max_pixels: int) -> None:
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends the pool

    cv2.setNumThreads(1)  # the workers are the parallelism
    model = Model(model_path, backend=backend, threads=threads, probe=False)  # the parent has checked the file
    _worker["reader"] = DigitReader(model, max_pixels=max_pixels)


def _read_one(path: Path, reader: DigitReader | None = None) -> FileReading:
    try:
        reading = (reader or _worker["reader"]).read(path)
    except UserError as e:
        message = str(e)
        return FileReading(path, error=message if message.startswith(str(path)) else f"{path}: {message}")
    return FileReading(path, replace(reading, crops=np.zeros((0, 28, 28), np.uint8)))


def _read_chunk(paths: list[Path]) -> list[FileReading]:
    return [_read_one(path) for path in paths]


def read_files(reader: DigitReader, files: list[Path], jobs: int = 1) -> Iterator[FileReading]:
    """The reading of every file, in order. With `jobs` > 1, this process and `jobs` - 1 workers (each its
    own interpreter) share chunks of CHUNK files: the workers are kept two chunks ahead, and while the next
    chunk in order is not back, this process reads the next one nobody has taken."""
    if len(files) > 1:  # many small reads: OpenCV's threads cost more than they give (and contend with workers)
        import cv2

        cv2.setNumThreads(1)
    chunks = [files[i:i + CHUNK] for i in range(0, len(files), CHUNK)]
    jobs = min(jobs, len(chunks), os.cpu_count() or 1)  # work for each, and a core each: --jobs 24 on 3 chunks is 3
    if jobs <= 1:
        for path in files:
            yield _read_one(path, reader)
        return
    context = multiprocessing.get_context("spawn")
    initargs = (reader.model.path, reader.model.backend.name, reader.model.threads, reader.max_pixels)
    with context.Pool(jobs - 1, initializer=_start_worker, initargs=initargs) as pool:
        given: dict[int, multiprocessing.pool.AsyncResult] = {}
        read: dict[int, list[FileReading]] = {}
        taken = 0  # chunks [0, taken) are given to a worker or read here
        for k in range(len(chunks)):
            while taken < len(chunks) and len(given) < 2 * (jobs - 1):
                given[taken] = pool.apply_async(_read_chunk, (chunks[taken],))
                taken += 1
            while k not in read:
                if k in given and (given[k].ready() or taken == len(chunks)):
                    read[k] = given.pop(k).get()
                elif taken < len(chunks):
                    read[taken] = [_read_one(path, reader) for path in chunks[taken]]
                    taken += 1
            yield from read.pop(k)
