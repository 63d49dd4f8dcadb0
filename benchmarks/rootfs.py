"""Debian root filesystems built with debootstrap, cached, and entered with chroot (through qemu-user
for another architecture). Shared by `benchmarks/arm.py`; needs root on a Debian host.

A root filesystem is built once into `$EDGEDIGITS_CI_CACHE/<suite>-<arch>` (default
/var/cache/edgedigits-ci) and reused. A foreign architecture runs through binfmt_misc and Debian's
`qemu-user-static` (its handlers have the F flag, so nothing is copied into the root filesystem).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

CACHE = Path(os.environ.get("EDGEDIGITS_CI_CACHE", "/var/cache/edgedigits-ci"))
MIRROR = "http://deb.debian.org/debian"
HOST_PACKAGES = {"debootstrap": "debootstrap", "qemu-user-static": "qemu-aarch64-static",
                 "binfmt-support": "update-binfmts"}  # Debian package: a command it installs
QEMU = {"arm64": "qemu-aarch64", "armhf": "qemu-arm"}  # binfmt_misc handler per foreign architecture


@dataclass(frozen=True)
class Rootfs:
    """One Debian release for one architecture, with the packages it is built with."""

    suite: str
    arch: str
    packages: tuple[str, ...]

    @property
    def path(self) -> Path:
        return CACHE / f"{self.suite}-{self.arch}"

    def built(self) -> bool:
        return (self.path / ".edgedigits-built").is_file()

    def build(self) -> float:
        """Debootstrap into `<path>.partial` and rename it when done; return the seconds it took (0 if cached)."""
        if self.built():
            return 0.0
        prepare_host(self.arch)
        started = time.perf_counter()
        partial = self.path.with_name(self.path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["debootstrap", "--variant=minbase", f"--arch={self.arch}",
                        "--include=" + ",".join(self.packages), self.suite, str(partial), MIRROR],
                       check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        (partial / ".edgedigits-built").write_text(f"{seconds:.0f}\n")
        partial.rename(self.path)
        return seconds

    @contextmanager
    def entered(self, binds: dict[str, Path]) -> Iterator[Path]:
        """Mount /proc, /dev and each `{inside: host folder}` bind; copy in the host's DNS and TLS trust."""
        prepare_host(self.arch)
        root = self.path
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
        with ExitStack() as mounts:
            _mount(mounts, root / "proc", ["-t", "proc", "proc"])
            _mount(mounts, root / "dev", ["--rbind", "/dev"])
            for inside, folder in binds.items():
                _mount(mounts, root / inside.lstrip("/"), ["--bind", str(folder)])
            yield root

    def run(self, script: str, env: dict[str, str], log: Path) -> int:
        """Run a bash script as root inside (entered first), output appended to `log`; return its exit code."""
        command = ["chroot", str(self.path), "/usr/bin/env", "-i", "HOME=/root", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                   "LANG=C.UTF-8", *(f"{k}={v}" for k, v in env.items()), "/bin/bash", "-euo", "pipefail", "-c", script]
        with log.open("a", encoding="utf-8") as out:
            return subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode


def prepare_host(arch: str) -> None:
    """Install the host's tools if missing and make sure binfmt_misc runs `arch` binaries."""
    if any(shutil.which(command) is None for command in HOST_PACKAGES.values()):
        subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", *HOST_PACKAGES], check=True, stdout=subprocess.DEVNULL)
    handler = QEMU.get(arch)
    if handler is None:
        return
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "status").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=True)
    if not (binfmt / handler).exists() or "enabled" not in (binfmt / handler).read_text():
        subprocess.run(["update-binfmts", "--enable", handler], check=True)


def _mount(mounts: ExitStack, target: Path, args: list[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *args, str(target)], check=True)
    mounts.callback(lambda: subprocess.run(["umount", "-R", str(target)], check=False)
                    .returncode == 0 or subprocess.run(["umount", "-l", str(target)], check=False))
