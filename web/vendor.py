"""Copy the browser page's runtimes from npm into edgedigits/serving/web/vendor and record what they are.

    cd web && npm ci && python vendor.py

The versions are pinned in package.json and package-lock.json (with npm's integrity
hashes); VENDOR.json records each copied file's package, version, bytes and sha256, and
tests/test_browser.py checks the vendored files against it. One LiteRT.js WebAssembly
variant is enough: the "compat" build, which needs no relaxed SIMD, threads or JSPI, so
it runs on every browser with WebAssembly SIMD (phones included).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR = HERE.parent / "edgedigits" / "serving" / "web" / "vendor"
FILES = {  # vendored name: (npm package, path inside it)
    "litert.js": ("@litertjs/core", "dist/index.js"),
    "wasm-utils.js": ("@litertjs/wasm-utils", "dist/index.js"),
    "litert_wasm_compat_internal.js": ("@litertjs/core", "wasm/litert_wasm_compat_internal.js"),
    "litert_wasm_compat_internal.wasm": ("@litertjs/core", "wasm/litert_wasm_compat_internal.wasm"),
    "opencv.js": ("@techstark/opencv-js", "dist/opencv.js"),
}


def main() -> None:
    VENDOR.mkdir(parents=True, exist_ok=True)
    record = {}
    for name, (package, inside) in FILES.items():
        folder = HERE / "node_modules" / package
        meta = json.loads((folder / "package.json").read_text())
        data = (folder / inside).read_bytes()
        if name == "litert.js":  # a plain browser module: the bare import becomes a relative one
            data = data.replace(b'from "@litertjs/wasm-utils"', b'from "./wasm-utils.js"')
        (VENDOR / name).write_bytes(data)
        record[name] = {"package": package, "version": meta["version"], "license": meta.get("license"),
                        "from": inside, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (VENDOR / "VENDOR.json").write_text(json.dumps(record, indent=1) + "\n")
    shutil.copyfile(HERE / "node_modules" / "@techstark" / "opencv-js" / "LICENSE", VENDOR / "LICENSE-opencv")
    print(f"{len(record)} files, {sum(r['bytes'] for r in record.values()):,} bytes in {VENDOR}")


if __name__ == "__main__":
    main()
