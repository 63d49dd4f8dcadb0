"""Artifact names and the identifiers made from them: a name is a file name, never a path, and becomes a C
array, a Kotlin object and a Swift file without quoting."""

from __future__ import annotations

import re

from firmware_harness.errors import UserError

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"  # an artifact name: a file name, never a path


def check_name(name: str) -> str:
    """An artifact name becomes file names, a C array, a Kotlin object and a Swift file: refuse one that is a
    path or would need quoting in any of them."""
    if not re.fullmatch(NAME_PATTERN, name) or name.endswith(".tflite"):
        shown = name.encode("unicode_escape").decode("ascii")
        raise UserError(f"--name {shown!r} is not a plain name: use up to 64 letters, digits, '_', '-' or '.', "
                        f"starting with a letter or digit, without .tflite (e.g. my_digits_int8)")
    return name


def c_identifier(name: str) -> str:
    """`name` as a C (and Kotlin, Swift) identifier: every other character becomes `_`."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII)
    return ident if not ident[0].isdigit() else f"m_{ident}"


def camel_identifier(name: str) -> str:
    """`name` as a type name: my_digits-int8 -> MyDigitsInt8."""
    return "".join(part.capitalize() for part in c_identifier(name).split("_"))
