"""The held-out split rules `recsys eval` and the quality gate share: who interacted with what, and what counts as
relevant on the test days (items a user had not interacted with in the train window)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from recsys import paths
from recsys.days import Window
from recsys.store import ObjectStore
from recsys.tables import from_parquet


@dataclass
class WindowInteractions:
    """Who interacted with what in a window (users with a user_id only)."""

    table: pa.Table  # user_id, item_id, count

    def by_user(self) -> dict[str, set[str]]:
        users: dict[str, set[str]] = defaultdict(set)
        for user, item in zip(self.table["user_id"].to_pylist(), self.table["item_id"].to_pylist(), strict=True):
            users[user].add(item)
        return users


def interactions(store: ObjectStore, tenant: str, surface: str, window: Window) -> WindowInteractions:
    tables = [
        from_parquet(store.get(paths.canonical_events(tenant, surface, day)).data).select(["user_id", "item_id"])
        for day in window.days
    ]
    events = pa.concat_tables(tables) if tables else pa.table({"user_id": [], "item_id": []})
    events = events.filter(pc.is_valid(events["user_id"]))
    grouped = events.group_by(["user_id", "item_id"], use_threads=False).aggregate([([], "count_all")])
    table = grouped.rename_columns(["user_id", "item_id", "count"]).sort_by(
        [("user_id", "ascending"), ("item_id", "ascending")]
    )
    return WindowInteractions(table)


def relevant_items(train: WindowInteractions, test: WindowInteractions) -> dict[str, set[str]]:
    seen = train.by_user()
    relevant = {user: items - seen.get(user, set()) for user, items in test.by_user().items()}
    return {user: items for user, items in sorted(relevant.items()) if items}
