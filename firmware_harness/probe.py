"""Child process for `runtime.Model`: load the model bytes from stdin and run it at batch 1 and 2.

Exit 0 if that works, 2 with a one-line error if the interpreter refuses the file; a crash
or a hang shows up in the parent as a signal or a timeout.
"""

import sys

import numpy as np

from firmware_harness.errors import UserError
from firmware_harness.runtime import Model


def main() -> int:
    try:
        model = Model(sys.stdin.buffer.read(), backend=sys.argv[1], probe=False, name="probe")
        for batch in (1, 2):
            model.predict(np.zeros((batch, 28, 28), np.uint8))
    except UserError as e:  # Model turns the interpreter's own errors into these
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
