"""Deterministic synthetic raw exposure events with planted structure (the bundled sample, tests, evaluation, benches).

Planted structure (all of it derived from `SyntheticSpec.seed`, see `world.build_world`):

* Taste groups. Every item belongs to exactly one of `taste_groups` groups (assigned by a seeded shuffle, so ids
  do not reveal the group). The catalog derives each item's tags from its group: `category:<group category>`, a
  `brand:` drawn from the group's own brands and a `style:` drawn from the group's styles, so content similarity
  (shared tags) is meaningful and mostly within a group.
* Popularity. Items get Zipf weights `1 / rank ** zipf_exponent` over a seeded random ranking; every popularity
  pick is weighted by them, so global exposure counts have a long tail.
* Users. Each user prefers one taste group, or two with probability `second_group_prob` (the first one is
  primary and is picked with probability `primary_group_weight`). A fraction `anonymous_fraction` of users never
  sends a user_id.
* Sessions. A session's length is geometric with mean `mean_session_length` (capped at `max_session_length`). The
  first item is a popularity pick from a preferred group. Each following item is, with probability `noise`, a
  uniformly random item of the whole catalog; otherwise, with probability `next_item_prob`, the planted successor of
  the previous item (`next_item`: one random cycle through each group's items, so the successor is always in the
  same group); otherwise another popularity pick from a preferred group. The planted successor is therefore the most
  frequent next item.
* Funnel. Each viewed item is one `exposure` (own request_id, rank 0-9 skewed to the top); it is followed by a
  `click` with probability `click_rate`, which is followed by an `add_to_cart` and that by a `purchase`, so that
  P(add_to_cart | exposure) = `add_to_cart_rate` and P(purchase | exposure) = `purchase_rate`.
* Time. Events of a session are seconds to minutes apart, strictly increasing, and the whole session lies inside
  its UTC day. Each day is written to `dt=YYYY-MM-DD/events.jsonl` (or `.jsonl.gz`), sorted by ts, with event_ids
  `e-<YYYYMMDD>-<n>` numbered in file order.
* Malformed lines. `malformed_lines` extra bad lines are spread over the days, cycling through: truncated JSON,
  a missing item_id, a ts without a zone, and `"v": 2`.

Two samplers draw the sessions from the same world (one module each):

* `sessions` (the default): per user and day, Poisson(`sessions_per_user_per_day`) sessions; anonymous sessions are
  `s-anon-<YYYYMMDD>-<n>`. Pure Python (`random.Random` seeded with a string, `random()` only), so the same spec gives
  byte-identical files on every machine and Python version; about 50k events a second, for small data.
* `bulk` (`events_per_day` set): exactly that many lines a day, sessions of uniformly random users, vectorized with
  numpy and pyarrow (PCG64 seeded with the seed, the purpose and the day): 1M events a day in a few seconds, for the
  benchmarks.

Gzip output is written with mtime 0 and no file name, so it is deterministic too.

Usage: python -m recsys_tools.synthetic --out DIR --days 7 --users 200 --items 300 --seed 7 [--catalog PATH]
[--malformed 3] [--gzip] [--events-per-day 1000000]
"""

from recsys_tools.synthetic.cli import main
from recsys_tools.synthetic.output import MALFORMED_CYCLE, GenerationSummary, MalformedKind, day_file, generate
from recsys_tools.synthetic.world import (
    CATEGORIES,
    MAX_RANK,
    SyntheticSpec,
    World,
    build_world,
    group_category,
    item_index,
    write_catalog,
)

__all__ = [
    "CATEGORIES",
    "MALFORMED_CYCLE",
    "MAX_RANK",
    "GenerationSummary",
    "MalformedKind",
    "SyntheticSpec",
    "World",
    "build_world",
    "day_file",
    "generate",
    "group_category",
    "item_index",
    "main",
    "write_catalog",
]
