"""Child process for `runtime.Model`: load the model bytes from stdin under a memory limit and run it.

    python -m firmware_harness.probe BACKEND MEMORY_BYTES BATCH LABEL CLASSES

Reads the model bytes, imports the interpreter, prints "ready" (the parent's time limit starts
then, so that a slow device's imports are not taken for a slow file), runs one image, then
allocates for BATCH images (what predicting many will ask of the parent). Exit 0 if that works, 2 with a one-line error if the interpreter refuses the file
or cannot allocate it within MEMORY_BYTES; a crash or a hang shows up in the parent as a
signal or a timeout.
"""

import resource
import sys

import numpy as np

from firmware_harness.errors import UserError
from firmware_harness.runtime import PROBE_READY, Model, Refused, get_backend


def main() -> int:
    backend, limit, batch, label, classes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    content = sys.stdin.buffer.read()
    try:
        get_backend(backend)  # the slow imports, which the parent's time limit does not count
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(PROBE_READY + b"\n")
    sys.stdout.flush()
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))  # heap and private mappings: a tensor arena
    try:
        model = Model(content, backend=backend, probe=False, name="probe", label=label, classes=classes)
        model.predict(np.zeros((1, 28, 28), np.uint8))
        model.allocate(batch)
    except Refused as e:  # the interpreter's own errors; under the limit, often a failed allocation
        print(f"error: {e}, within a {limit >> 20} MiB memory limit", file=sys.stderr)
        return 2
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"error: {label}: the model needs over {limit >> 20} MiB of memory to run; it is not a digit model",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
