"""llama.cpp's own server, built from the very sources of the installed wheel.

The node runs llama.cpp through llama-cpp-python, whose sdist vendors the llama.cpp
tree it was built from. Comparing the node with `llama-server` is only fair with the
same kernels, so this builds `llama-server` from that vendored tree with the flags
`scripts/setup` gives the wheel (its `CMAKE_ARGS` default, or the same environment
override), and nothing else but the server's own target.

The build is cached under `build/llama-server/<key>/`, the key a hash of its inputs:
the sdist's bytes, the CMake arguments and the compiler. A second call with
the same inputs returns at once; a changed input builds anew beside the old one.

    .venv/bin/python -m bench.llama_server      # build (or find) it, print its path
"""

from __future__ import annotations

import hashlib
from importlib import metadata
import os
from pathlib import Path
import re
import shlex
import shutil
import subprocess
import sys
import tarfile

ROOT = Path(__file__).resolve().parents[1]
BUILD_ROOT = ROOT / "build" / "llama-server"
SETUP = ROOT / "scripts" / "setup"
# What the wheel's own CMakeLists decides for it (llama-cpp-python's CMakeLists.txt:
# shared libraries, a Release build from scikit-build-core), plus what a server-only
# build must leave out: no network at build time (no prebuilt web UI from a model hub,
# no curl/OpenSSL), no tests or examples.
SERVER_ONLY_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
)
JOBS = 2


def wheel_cmake_args() -> list[str]:
    """The CMake flags the wheel was built with: scripts/setup's, read from the script."""
    if os.environ.get("CMAKE_ARGS"):
        return shlex.split(os.environ["CMAKE_ARGS"])
    match = re.search(r'CMAKE_ARGS=\$\{CMAKE_ARGS:-"([^"]*)"\}', SETUP.read_text())
    if match is None:
        raise RuntimeError(f"no CMAKE_ARGS default found in {SETUP}")
    return shlex.split(match.group(1))


def sdist(version: str) -> Path:
    """llama-cpp-python's sdist of `version`, downloaded once with pip."""
    name = f"llama_cpp_python-{version}.tar.gz"
    path = BUILD_ROOT / name
    if not path.exists():
        BUILD_ROOT.mkdir(parents=True, exist_ok=True)
        print(f"downloading the {name} sdist with pip", file=sys.stderr)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"),
                *("--disable-pip-version-check", f"llama-cpp-python=={version}", "-d", BUILD_ROOT),
            ],
            check=True,
        )
    return path


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("c++") or "c++"
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else cxx


def build_key(archive: Path, cmake_args: list[str]) -> str:
    digest = hashlib.sha256()
    with archive.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    for part in (*cmake_args, _compiler()):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:16]


def ensure_llama_server(version: str | None = None) -> Path:
    """Path of a `llama-server` built from the installed wheel's vendored llama.cpp."""
    version = version or metadata.version("llama_cpp_python")
    archive = sdist(version)
    cmake_args = [*wheel_cmake_args(), *SERVER_ONLY_ARGS]
    build_dir = BUILD_ROOT / build_key(archive, cmake_args)
    binary = build_dir / "bin" / "llama-server"
    done = build_dir / "built"
    if done.exists() and binary.exists():
        return binary
    source = BUILD_ROOT / f"src-{version}"
    vendored = source / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if not (vendored / "CMakeLists.txt").exists():
        shutil.rmtree(source, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(source, filter="data")
    print(f"building llama-server in {build_dir} (-j{JOBS})", file=sys.stderr)
    subprocess.run(
        ["cmake", "-S", vendored, "-B", build_dir, *cmake_args],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        ["cmake", "--build", build_dir, "--target", "llama-server", f"-j{JOBS}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if not binary.exists():
        raise RuntimeError(f"the build left no {binary}")
    done.write_text(" ".join(cmake_args) + "\n")
    return binary


if __name__ == "__main__":
    print(ensure_llama_server())
