"""Write the bank of handwriting-font digits that training mixes in (edgedigits/training/font_digits.npz).

    python benchmarks/font_digits.py [--per-digit 24] [--seed 0] [--cache DIR]

Fetches each @fontsource package of `font_digits.TRAIN` and `HELD_OUT` with `npm pack` (the npm registry;
once, into the cache folder), renders every digit in every font (`font_digits.render`) and writes the bank,
its card (fonts, versions, licence, counts, sha256) and a picture of a sample per font,
benchmarks/results/font_digits.png. Only this script needs npm and the network.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

from edgedigits.training import cards, font_digits
from firmware_harness import atomic
from firmware_harness.errors import UserError

RESULTS = Path(__file__).resolve().parent / "results"


def fetch(name: str, cache: Path) -> Path:
    """The unpacked @fontsource/<name> package at the pinned version, fetched with `npm pack` if not cached."""
    face = font_digits.font_file(cache, name)
    if face.is_file():
        return face
    spec = f"@fontsource/{name}@{font_digits.FONTSOURCE_VERSION}"
    try:
        packed = subprocess.run(["npm", "pack", "--silent", spec], cwd=cache, check=True, capture_output=True,
                                text=True).stdout.split()[-1]
    except (OSError, subprocess.CalledProcessError) as e:
        raise UserError(f"could not fetch {spec} with npm ({e}); install Node.js and npm, or run where the npm "
                        f"registry is reachable") from e
    with tarfile.open(cache / packed) as archive:
        archive.extractall(cache / name, filter="data")
    (cache / packed).unlink()
    return face


def preview(x: np.ndarray, y: np.ndarray, font: np.ndarray, names: list[str]) -> np.ndarray:
    """One row per font: its first crop of each digit, dark on light, with the font's name."""
    rows = []
    for index, name in enumerate(names):
        cells = [x[(font == index) & (y == d)][:1] for d in range(10)]
        row = np.concatenate([c[0] if len(c) else np.zeros((28, 28), np.uint8) for c in cells], axis=1)
        row = cv2.copyMakeBorder(255 - cv2.resize(row, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST),
                                 0, 0, 0, 260, cv2.BORDER_CONSTANT, value=255)
        cv2.putText(row, name + (" (held out)" if name in font_digits.HELD_OUT else ""), (570, 34),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
        rows.append(row)
    return np.concatenate(rows, axis=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-digit", type=int, default=24, help="pages of each digit in each font")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "edgedigits" / "fontsource")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    names = [*font_digits.TRAIN, *font_digits.HELD_OUT]
    files = {}
    for name in names:
        files[name] = fetch(name, args.cache)
        print(f"font {name}: {files[name].name}", file=sys.stderr)
    x, y, font = font_digits.render(files, args.per_digit, args.seed)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=x, y=y, font=font)
    content = buffer.getvalue()
    atomic.write_bytes(font_digits.BANK, content)
    atomic.write_json(font_digits.CARD, {
        **cards.provenance(),
        "what": "digits 0-9 drawn in handwriting fonts, found by find_digits: 28x28, white ink on black",
        "fonts": [{"name": n, "package": f"@fontsource/{n}", "version": font_digits.FONTSOURCE_VERSION,
                   "file": files[n].name, "file_sha256": cards.sha256_file(files[n]),
                   "licence": "SIL Open Font License 1.1", "held_out": n in font_digits.HELD_OUT,
                   "crops": int((font == i).sum())} for i, n in enumerate(names)],
        "per_digit": args.per_digit, "seed": args.seed, "styled_share": font_digits.STYLED_SHARE,
        "crops": len(x), "sha256": hashlib.sha256(content).hexdigest(),
    })
    cv2.imwrite(str(RESULTS / "font_digits.png"), preview(x, y, font, names))
    print(f"{len(x)} crops in {len(names)} fonts -> {font_digits.BANK} ({len(content):,} B)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
