"""python -m recsys_tools.sam_local: the pipeline and the API through `sam local` (smoke.py), or the local S3 alone
for invoking events/ by hand (`s3`)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from recsys_tools.local.runner import project_root
from recsys_tools.sam_local import engine
from recsys_tools.sam_local.s3 import DEFAULT_PORT, LocalS3
from recsys_tools.sam_local.smoke import Smoke


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsys_tools.sam_local", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(".out/sam-local"), help="logs and report.json")
    parser.add_argument(
        "--image",
        default="local",
        help="the Lambda base image: local (the default: built here from Debian's packages and PyPI, cached), aws "
        "(SAM pulls public.ecr.aws/lambda/python:3.12), or the name of an image already on this machine",
    )
    parser.add_argument(
        "--s3-bind",
        help="the address the local S3 listens on (default: the Docker bridge's; Docker Desktop: 127.0.0.1)",
    )
    parser.add_argument(
        "--s3-host-for-containers",
        help="the name containers reach the local S3 by (default: its address; Docker Desktop: host.docker.internal)",
    )
    parser.add_argument("--no-events", action="store_true", help="leave out the walk through events/")
    parser.add_argument(
        "--walk-with",
        choices=["start-lambda", "invoke"],
        default="start-lambda",
        help="run the events walk through start-lambda's warm containers (default), or one `sam local invoke` each",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["smoke", "s3"],
        default="smoke",
        help="smoke (default): everything; s3: serve the local S3 with the sample until Ctrl-C",
    )
    args = parser.parse_args(argv)
    if args.command == "s3":
        try:
            return serve_s3(args.out, args.s3_bind)
        except RuntimeError as exc:  # the port taken, the engine missing: one line, not a traceback
            print(f"sam-local s3: {exc}", file=sys.stderr)
            return 1
    started = time.perf_counter()
    report = Smoke(
        args.out.resolve(),
        image=args.image,
        events=not args.no_events,
        walk_with=args.walk_with,
        s3_bind=args.s3_bind,
        s3_host_for_containers=args.s3_host_for_containers,
        log=lambda line: print(line, flush=True),
    ).run()
    seconds = time.perf_counter() - started
    if report.failures:
        print(f"sam-local: FAILED after {seconds:.0f} s: {report.failures[0]} (see {args.out}/report.json)")
        return 1
    print(f"sam-local: passed in {seconds:.0f} s; manifest {report.manifest} as the in-process run's")
    return 0


def serve_s3(out: Path, bind: str | None) -> int:
    """The local S3 at events/env.local.json's address, holding the sample, for `sam local invoke` by hand."""
    out.mkdir(parents=True, exist_ok=True)
    root = project_root()
    # A plain `kill` stops it as Ctrl-C does: the server goes with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with LocalS3(bind or engine.bridge_gateway(), DEFAULT_PORT, out / "moto.log") as s3:
        s3.seed(root / "examples/sample/raw", root / "examples/sample/catalog.csv")
        print(f"local S3 at {s3.endpoint} with the sample (buckets of events/README.md); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
