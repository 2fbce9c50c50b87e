"""Merchandising rules (the seed's recsys-algo/rules): lenient parsing of a tenant's rules document into `Rule`s.

Parsing (`parse_rules`) accepts what the seed's rules manager accepts: a JSON array of rules, an object wrapping
them in `rules`/`items`/`data`, or a single rule object. Per rule, case-insensitively:

  action       action|rule_action|operation: BLOCK (block|blocklist|ban|exclude|suppress), PIN (pin|pinned|force),
               BOOST (boost|promote|increase)
  target       target_type ITEM (item|items|product) / TAG (tag|label) / BRAND / CATEGORY (category|cat), with
               item_ids|item_id|itemIds|items|target_items|... (array or comma string), target_key|key, the
               shorthands tag/tags, brand, category, or nested target{type,key,item_ids}; ids without a type are
               ITEM. BRAND/CATEGORY become TAG targets on the catalog tags `brand:<key>` / `category:<key>`.
  scope        namespace (= the surface here), surface, segment_id|segment: if set, must equal the request's
  enabled      default true
  valid_from / valid_until (starts_at/ends_at, ...): RFC 3339, a date (valid_until: through the end of that day,
               UTC) or unix seconds/ms/µs/ns; active iff valid_from <= now < valid_until
  priority     int, default 0;  boost_value|boost|value;  max_pins (per rule)
  rule_id|id   kept as given; else a stable uuid5 (RULE_ID_NAMESPACE) of the rule's canonical JSON
Rules that cannot be understood (no action, no target, unparseable time) are skipped, like the seed.

Evaluation (`apply_rules`: blocks, pins, boosts, reason tokens) is ranking's: `recsys.ranking.rules`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from recsys.ranking.rules import BLOCK, BOOST, PIN, Rule, aware_utc

RULE_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://recsys-serverless/rules")
"""uuid5 namespace of rule ids derived from a rule's canonical JSON (rules without rule_id)."""

_ACTIONS = {
    **dict.fromkeys(("block", "blocklist", "ban", "exclude", "suppress"), BLOCK),
    **dict.fromkeys(("pin", "pinned", "force"), PIN),
    **dict.fromkeys(("boost", "promote", "increase"), BOOST),
}
_TARGETS = {
    **dict.fromkeys(("item", "items", "product"), "ITEM"),
    **dict.fromkeys(("tag", "label"), "TAG"),
    "brand": "BRAND",
    **dict.fromkeys(("category", "cat"), "CATEGORY"),
}
_ACTION_KEYS = ("action", "rule_action", "ruleAction", "operation")
_TARGET_TYPE_KEYS = ("target_type", "targetType", "type")
_ITEM_KEYS = (
    "item_ids",
    "item_id",
    "itemIds",
    "itemId",
    "items",
    "target_items",
    "target_item_ids",
    "targetItems",
    "targetItemIds",
    "target_ids",
    "ids",
)
_KEY_KEYS = ("target_key", "targetKey", "key")
_FROM_KEYS = ("valid_from", "validFrom", "starts_at", "startsAt", "start_at", "start_time", "start", "from")
_UNTIL_KEYS = ("valid_until", "validUntil", "ends_at", "endsAt", "end_at", "end_time", "end", "until", "expires_at")
_BOOST_KEYS = ("boost_value", "boostValue", "boost", "value")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


# --------------------------------------------------------------------------------------------------- parsing


def parse_rules(data: Any) -> list[Rule]:
    """Rules from a decoded rules JSON (or its text). Raises ValueError if it is not a JSON array or object."""
    if isinstance(data, str | bytes | bytearray):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ValueError(f"rules must be valid JSON: {exc.msg}") from None
    if not isinstance(data, list | Mapping):
        raise ValueError("rules must be a JSON array or object")
    return [rule for raw in _raw_rules(data) if (rule := _parse_rule(raw)) is not None]


def _raw_rules(data: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(data, list):
        for entry in data:
            if isinstance(entry, Mapping):
                yield entry
        return
    if not isinstance(data, Mapping):
        return
    for key in ("rules", "data"):
        if isinstance(data.get(key), list | Mapping):
            yield from _raw_rules(data[key])
            return
    items = data.get("items")
    if isinstance(items, list) and items and all(isinstance(entry, Mapping) for entry in items):
        yield from _raw_rules(items)
        return
    yield data


def _first(raw: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = raw.get(key)
        if value is not None and value != "" and value != []:
            return value
    return None


def _ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    elif not isinstance(value, list | tuple):
        value = [value]
    out: dict[str, None] = {}
    for entry in value:
        if isinstance(entry, Mapping):
            entry = _first(entry, ("item_id", "itemId", "id"))
        if entry is None or isinstance(entry, bool | Mapping | list):
            continue
        text = str(entry).strip()
        if text:
            out.setdefault(text, None)
    return list(out)


def _scope(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


def _parse_rule(raw: Mapping[str, Any]) -> Rule | None:
    action = _ACTIONS.get(str(_first(raw, _ACTION_KEYS) or "").strip().lower())
    if action is None:
        return None
    target = _target(raw)
    if target is None:
        return None
    target_type, item_ids, tags = target
    try:
        enabled = _bool(raw.get("enabled"), default=True)
        valid_from = _time(_first(raw, _FROM_KEYS), end=False)
        valid_until = _time(_first(raw, _UNTIL_KEYS), end=True)
        priority = _int(raw.get("priority")) or 0
        boost = _float(_first(raw, _BOOST_KEYS))
        max_pins = _int(_first(raw, ("max_pins", "maxPins")))
    except (ValueError, TypeError, OverflowError, OSError):
        return None
    rule_id = _first(raw, ("rule_id", "ruleId", "id"))
    rule_id = str(rule_id).strip() if rule_id is not None and not isinstance(rule_id, bool | Mapping | list) else ""
    if not rule_id:
        canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        rule_id = str(uuid.uuid5(RULE_ID_NAMESPACE, canonical))
    return Rule(
        rule_id=rule_id,
        action=action,
        target_type=target_type,
        item_ids=tuple(item_ids),
        tags=tuple(tags),
        surface=_scope(raw.get("surface")),
        segment=_scope(_first(raw, ("segment_id", "segmentId", "segment"))),
        namespace=_scope(raw.get("namespace")),
        enabled=enabled,
        valid_from=valid_from,
        valid_until=valid_until,
        priority=priority,
        boost_value=boost,
        max_pins=max_pins,
    )


def _target(raw: Mapping[str, Any]) -> tuple[Literal["ITEM", "TAG"], list[str], list[str]] | None:
    nested = raw.get("target")
    if isinstance(nested, Mapping):  # target{type,key,item_ids}: its fields win over top-level ones
        flat = {k: v for k, v in raw.items() if k != "target"}
        for key, value in nested.items():
            flat[{"type": "target_type", "key": "target_key"}.get(key, key)] = value
        raw = flat
    elif isinstance(nested, str) and "target_type" not in raw:
        raw = {**raw, "target_type": nested}
    kind_text = _first(raw, ("target_type", "targetType"))
    if kind_text is None and isinstance(raw.get("type"), str) and raw["type"].strip().lower() in _TARGETS:
        kind_text = raw["type"]
    kind = _TARGETS.get(str(kind_text).strip().lower()) if kind_text is not None else None
    if kind_text is not None and kind is None:
        return None
    item_ids = _ids(_first(raw, _ITEM_KEYS))
    key = _ids(_first(raw, _KEY_KEYS))
    if kind is None:
        if item_ids:
            kind = "ITEM"
        else:
            for shorthand, name in (("tag", "TAG"), ("tags", "TAG"), ("brand", "BRAND"), ("category", "CATEGORY")):
                if _first(raw, (shorthand,)) is not None:
                    kind, key = name, _ids(raw[shorthand])
                    break
    elif not key:
        shorthand = {"TAG": ("tag", "tags"), "BRAND": ("brand",), "CATEGORY": ("category",)}.get(kind, ())
        key = _ids(_first(raw, shorthand))
    if kind == "ITEM":
        item_ids = item_ids or key
        return ("ITEM", item_ids, []) if item_ids else None
    if kind is None:
        return None
    prefix = {"TAG": "", "BRAND": "brand:", "CATEGORY": "category:"}[kind]
    tags: dict[str, None] = {}
    for value in key:
        tag = value.strip().lower()
        if prefix and not tag.startswith(prefix):
            tag = prefix + tag
        if tag and tag != prefix:
            tags.setdefault(tag, None)
    return ("TAG", [], list(tags)) if tags else None


def _bool(value: Any, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y", "on"):
        return True
    if text in ("false", "0", "no", "n", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("not a number")
    number = float(str(value).strip()) if isinstance(value, str) else float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return number


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _time(value: Any, *, end: bool) -> dt.datetime | None:
    """RFC 3339 (a naive time is UTC), a date (an end date covers its whole day) or unix s/ms/µs/ns by magnitude."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            value = float(text)
        elif _DATE.match(text):
            day = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
            if not end:
                return day
            # 9999-12-31, the usual "never ends", has no next day: its end is the last instant there is.
            return day + dt.timedelta(days=1) if day.date() < dt.date.max else dt.datetime.max.replace(tzinfo=dt.UTC)
        else:
            return aware_utc(dt.datetime.fromisoformat(text.replace("z", "Z")))
    number = float(value)
    magnitude = abs(number)
    if magnitude >= 1e17:
        number /= 1e9
    elif magnitude >= 1e14:
        number /= 1e6
    elif magnitude >= 1e11:
        number /= 1e3
    return dt.datetime.fromtimestamp(number, tz=dt.UTC)
