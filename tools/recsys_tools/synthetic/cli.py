"""`python -m recsys_tools.synthetic`: write a data set (and its catalog) and print the summary as JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from recsys.days import parse_day
from recsys_tools.synthetic.output import generate
from recsys_tools.synthetic.world import SyntheticSpec, build_world, write_catalog


def _parser() -> argparse.ArgumentParser:
    defaults = SyntheticSpec()
    parser = argparse.ArgumentParser(prog="python -m recsys_tools.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory (gets dt=YYYY-MM-DD/ folders)")
    parser.add_argument("--catalog", type=Path, help="also write the catalog CSV to this path")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--tenant", default=defaults.tenant)
    parser.add_argument("--surface", default=defaults.surface)
    parser.add_argument("--start", type=parse_day, default=defaults.start, help="first UTC day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--users", type=int, default=defaults.users)
    parser.add_argument("--items", type=int, default=defaults.items)
    parser.add_argument("--groups", type=int, default=defaults.taste_groups, help="taste groups")
    parser.add_argument(
        "--events-per-day",
        type=int,
        default=None,
        help="exactly this many lines a day from the vectorized sampler (default: the per-user sampler)",
    )
    parser.add_argument(
        "--sessions-per-day",
        type=float,
        default=defaults.sessions_per_user_per_day,
        help="mean sessions per user per day (per-user sampler)",
    )
    parser.add_argument(
        "--session-length", type=float, default=defaults.mean_session_length, help="mean viewed items per session"
    )
    parser.add_argument("--zipf", type=float, default=defaults.zipf_exponent, help="popularity Zipf exponent")
    parser.add_argument("--noise", type=float, default=defaults.noise)
    parser.add_argument(
        "--anonymous", type=float, default=defaults.anonymous_fraction, help="fraction of users without user_id"
    )
    parser.add_argument("--malformed", type=int, default=defaults.malformed_lines, help="bad lines to inject")
    parser.add_argument("--gzip", action="store_true", help="write events.jsonl.gz")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        spec = SyntheticSpec(
            seed=args.seed,
            tenant=args.tenant,
            surface=args.surface,
            start=args.start,
            days=args.days,
            users=args.users,
            items=args.items,
            taste_groups=args.groups,
            events_per_day=args.events_per_day,
            sessions_per_user_per_day=args.sessions_per_day,
            mean_session_length=args.session_length,
            zipf_exponent=args.zipf,
            noise=args.noise,
            anonymous_fraction=args.anonymous,
            malformed_lines=args.malformed,
            gzip=args.gzip,
        )
    except ValidationError as error:
        parser.error(str(error))
    world = build_world(spec)
    summary = generate(spec, args.out, world)
    if args.catalog is not None:
        rows = write_catalog(spec, args.catalog, world)
        summary = summary.model_copy(update={"catalog": str(args.catalog), "catalog_items": rows})
    sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
    return 0
