"""A Lambda python3.12 base image built on this machine, for `sam local` where no registry serves AWS's.

SAM's local invoke normally pulls `public.ecr.aws/lambda/python:3.12`. Where no container registry is reachable,
this builds an image that behaves as that one for SAM: SAM puts its runtime-interface emulator (RIE) and the
function's layers on top (`--invoke-image`), the RIE starts `/var/runtime/bootstrap`, which runs the handler with
AWS's runtime interface client (awslambdaric). Everything comes from Debian's packages and PyPI:

- a `debootstrap --variant=minbase bookworm` root (glibc, libstdc++ for pyarrow) plus the libraries CPython's
  extension modules link (ssl, ffi, sqlite, uuid);
- the machine's CPython 3.12, copied to the same prefix (its build embeds the prefix) without its tests, static
  library or site-packages, and linked as /var/lang/bin/python3.12 as on Lambda;
- awslambdaric and the venv's boto3 in /var/runtime (Lambda's runtime ships boto3; the layer does not).

The image's tag is a hash of these inputs, so a second run finds it and builds nothing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = "recsys-lambda-python"
# The engine's own architecture (it runs no other): the wheels in /var/runtime are for it.
WHEEL_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
# A stable name for the image last built or found here, for commands typed by hand (samconfig.toml's `local`).
ALIAS = f"{REPOSITORY}:3.12-local"
AWSLAMBDARIC = "4.2.2"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# CPython's extension modules (_ssl, _ctypes, _sqlite3, _uuid) link these beyond minbase.
DEBIAN_PACKAGES = ("libssl3", "libffi8", "libsqlite3-0", "libuuid1", "ca-certificates", "tzdata")
# Not needed to run a handler, and half the interpreter's size.
PYTHON_EXCLUDES = (
    "lib/python3.12/test",
    "lib/python3.12/config-3.12-*",
    "lib/python3.12/idlelib",
    "lib/python3.12/tkinter",
    "lib/python3.12/turtledemo",
    "lib/python3.12/site-packages/*",
    "lib/python3.12/lib-dynload/_test*",
    "lib/python3.12/lib-dynload/_tkinter*",
)
# As the runtime's own image sets them (PYTHONPATH: the layers' /opt/python, then the runtime's boto3).
ENVIRONMENT = {
    "LANG": "C.UTF-8",
    "TZ": ":/etc/localtime",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
}
BOOTSTRAP = """#!/bin/sh
# The RIE starts this with _HANDLER set (app.handler): AWS's runtime interface client imports and serves it.
export PYTHONPATH="/opt/python/lib/python3.12/site-packages:/opt/python:/var/runtime${PYTHONPATH:+:$PYTHONPATH}"
cd "${LAMBDA_TASK_ROOT:-/var/task}"
exec /var/lang/bin/python3.12 -m awslambdaric "$_HANDLER"
"""


@dataclass(frozen=True)
class BaseImage:
    tag: str
    built: bool  # False: an image with this tag was already there
    seconds: float


def python312() -> Path:
    """The machine's CPython 3.12: python3.12 on PATH, else pyenv's."""
    candidates = [
        shutil.which("python3.12"),
        *sorted(map(str, Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True)
        if probe.returncode == 0:
            return Path(candidate)
    raise RuntimeError("no CPython 3.12 on this machine (python3.12 on PATH or ~/.pyenv/versions/3.12*)")


def _prefix(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sys; print(sys.base_prefix)"], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip())


def _boto3_version() -> str:
    return importlib.metadata.version("boto3")


def image_tag(python: Path) -> str:
    """The tag naming what the image is made of: a change of any input names another image."""
    recipe = {
        "python": subprocess.run([str(python), "--version"], check=True, capture_output=True, text=True).stdout.strip(),
        "prefix": str(_prefix(python)),
        "awslambdaric": AWSLAMBDARIC,
        "architecture": WHEEL_ARCH,
        "boto3": _boto3_version(),
        "debian": [DEBIAN_SUITE, *DEBIAN_PACKAGES],
        "excludes": PYTHON_EXCLUDES,
        "environment": ENVIRONMENT,
        "bootstrap": BOOTSTRAP,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"{REPOSITORY}:3.12-{digest}"


def exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def ensure(log=print) -> BaseImage:
    """The local base image's tag, built first if this machine has none with that tag."""
    started = time.perf_counter()
    python = python312()
    tag = image_tag(python)
    if exists(tag):
        _alias(tag)
        return BaseImage(tag, built=False, seconds=time.perf_counter() - started)
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: apt-get install -y debootstrap")
    with tempfile.TemporaryDirectory(prefix="recsys-lambda-image-") as work:
        root = Path(work) / "root"
        log(f"base image: debootstrap {DEBIAN_SUITE} (minbase) into {root}")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                DEBIAN_SUITE,
                str(root),
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        _add_python(root, python)
        _add_runtime(root, python)
        _slim(root)
        log(f"base image: docker import as {tag}")
        changes = [f"ENV {key}={value}" for key, value in ENVIRONMENT.items()]
        changes += ["WORKDIR /var/task", 'ENTRYPOINT ["/var/runtime/bootstrap"]']
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        command = ["docker", "import", *(arg for change in changes for arg in ("--change", change)), "-", tag]
        subprocess.run(command, stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise RuntimeError("tar of the image root failed")
    _alias(tag)
    return BaseImage(tag, built=True, seconds=time.perf_counter() - started)


def _alias(tag: str) -> None:
    subprocess.run(["docker", "tag", tag, ALIAS], check=True)


def _add_python(root: Path, python: Path) -> None:
    prefix = _prefix(python)
    target = root / prefix.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    excludes = [arg for pattern in PYTHON_EXCLUDES for arg in ("--exclude", f"./{pattern}")]
    pack = subprocess.Popen(["tar", "-C", str(prefix), *excludes, "-c", "."], stdout=subprocess.PIPE)
    target.mkdir(exist_ok=True)
    subprocess.run(["tar", "-C", str(target), "-x"], stdin=pack.stdout, check=True)
    if pack.wait() != 0:
        raise RuntimeError(f"copying {prefix} failed")
    lang = root / "var/lang"
    (lang / "bin").mkdir(parents=True)
    (lang / "lib").mkdir()
    for name in ("python3.12", "python3", "python"):
        (lang / "bin" / name).symlink_to(prefix / "bin/python3.12")


def _add_runtime(root: Path, python: Path) -> None:
    runtime = root / "var/runtime"
    runtime.mkdir(parents=True)
    (root / "var/task").mkdir(parents=True, exist_ok=True)
    (root / "opt").mkdir(exist_ok=True)
    platforms = [
        arg
        for tag in ("manylinux2014", "manylinux_2_17", "manylinux_2_28")
        for arg in ("--platform", f"{tag}_{WHEEL_ARCH}")
    ]
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore"]
    target = ["--no-compile", "--target", str(runtime), "--only-binary=:all:", "--python-version", "3.12"]
    packages = [f"awslambdaric=={AWSLAMBDARIC}", f"boto3=={_boto3_version()}"]
    # pip's notes (a configured find-links folder that is missing, say) would only clutter the run: shown on failure.
    done = subprocess.run(
        [*pip, *target, "--implementation", "cp", *platforms, *packages], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install into /var/runtime failed: {done.stderr[-3000:]}")
    bootstrap = runtime / "bootstrap"
    bootstrap.write_text(BOOTSTRAP)
    bootstrap.chmod(0o755)


def _slim(root: Path) -> None:
    """Docs, man pages, locales and apt's lists: nothing a handler reads."""
    for path in (
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "var/lib/apt/lists",
        "var/cache/apt",
    ):
        shutil.rmtree(root / path, ignore_errors=True)


if __name__ == "__main__":
    image = ensure()
    print(json.dumps({"tag": image.tag, "built": image.built, "seconds": round(image.seconds, 1)}))
    sys.exit(0)
