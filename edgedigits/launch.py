"""The `edgedigits` command's entry point.

The device commands (bench, mcu, predict, camera, collect) go straight to `firmware_harness`, without
importing typer and the desktop CLI: on a Raspberry Pi every 50 ms of start-up counts.
"""

from __future__ import annotations

import sys

HARNESS_COMMANDS = ("bench", "mcu", "predict", "camera", "collect")  # defined once, in firmware_harness.__main__


def main() -> None:
    """Run one `edgedigits` command."""
    args = [a for a in sys.argv[1:] if a != "--debug"]
    if args and args[0] in HARNESS_COMMANDS:
        from firmware_harness.__main__ import main as harness_main

        sys.exit(harness_main(args, prog="edgedigits"))
    from edgedigits.cli import main as cli_main

    cli_main()
