"""Exposure logging: every served list, as raw exposure events the next daily run ingests (the loop).

One served list of k items is k lines of the raw-event contract (`event_type: exposure`, `request_id`, `rank`,
`event_id = <request_id>:<rank>`), so ingest reads them like any client's exposures, and the fields the contract
ignores carry what log-based evaluation needs: `score`, `propensity`, `segment`, `manifest_version`,
`algo_version`, `experiment_id`, `experiment_variant` (the seed's eval_v1 names), `source: "recsys-api"`. Outcomes
(click, add_to_cart, purchase) sent with the same `request_id` join them.

Logging never fails a request and never waits on delivery: `ExposureLog.record` formats the lines and puts them
on a bounded queue; a background thread delivers batches through a sink (Kinesis Data Firehose on AWS, files in
the store locally). A full queue drops the list (counted), a failed delivery is counted and logged, never raised.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from recsys.serve.settings import ServeSettings
from recsys.store import ObjectStore

SOURCE = "recsys-api"
FIREHOSE_BATCH_RECORDS = 500  # PutRecordBatch's limit
FIREHOSE_BATCH_BYTES = 4 * 2**20


@dataclass(frozen=True)
class ServedItem:
    item_id: str
    rank: int  # 0-based position in the list, as the raw contract's rank
    score: float
    propensity: float | None = None  # P(the policy shows this item here), when the policy is randomized


@dataclass(frozen=True)
class ServedList:
    """What one request served, with what produced it."""

    request_id: str
    tenant: str
    surface: str
    segment: str
    served_at: dt.datetime
    items: Sequence[ServedItem]
    user_id: str | None = None
    session_id: str | None = None
    anonymous_id: str | None = None
    manifest_version: str | None = None
    algo_version: str | None = None
    experiment_id: str | None = None
    experiment_variant: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def partition(self) -> tuple[str, str, str]:
        """(tenant, surface, UTC day): where the lines belong in a raw location."""
        return self.tenant, self.surface, self.served_at.astimezone(dt.UTC).date().isoformat()

    def lines(self) -> list[str]:
        """The list as raw exposure events, one JSON line (no newline) per item.

        The fields every line shares are serialized once and the items' fields put between them: a list of 20 is
        formatted in tens of microseconds (on the delivery thread, which shares the interpreter with requests)."""
        ts = self.served_at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        # The contract needs a session: the request's, else one per anonymous visitor, else the request itself.
        session = self.session_id or (f"anon:{self.anonymous_id}" if self.anonymous_id else f"req:{self.request_id}")
        common: dict[str, Any] = {"v": 1, "ts": ts, "tenant": self.tenant, "surface": self.surface}
        if self.user_id:
            common["user_id"] = self.user_id
        common |= {"session_id": session, "request_id": self.request_id}
        context = {
            "segment": self.segment,
            "manifest_version": self.manifest_version,
            "algo_version": self.algo_version,
            "experiment_id": self.experiment_id,
            "experiment_variant": self.experiment_variant,
            **self.extra,
        }
        context = {key: value for key, value in context.items() if value is not None} | {"source": SOURCE}
        head, tail = _json(common)[:-1], _json(context)[1:]  # '{...' and '...}' around each item's fields
        request = _string(self.request_id)[1:-1]
        out = []
        for item in self.items:
            propensity = "" if item.propensity is None else f',"propensity":{_json(item.propensity)}'
            out.append(
                f'{head},"item_id":{_string(item.item_id)},"rank":{item.rank},"event_type":"exposure",'
                f'"event_id":"{request}:{item.rank}","score":{_number(item.score)}{propensity},{tail}'
            )
        return out


_PLAIN = re.compile(r"[A-Za-z0-9 ._:/@+=-]*")  # needs no JSON escaping


def _string(text: str) -> str:
    """`text` as a JSON string: ids are almost always plain, and quoting them is then all it takes."""
    return f'"{text}"' if _PLAIN.fullmatch(text) else _json(text)


def _number(value: float) -> str:
    """A finite float as JSON writes it (its repr), without the encoder's call."""
    return repr(value) if type(value) is float and math.isfinite(value) else _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


Batch = Sequence[tuple[tuple[str, str, str], list[str]]]  # per served list: its partition and its lines


class ExposureSink(Protocol):
    """Delivers a batch of served lists (each its partition and its exposure lines); raises on failure (the log
    counts it)."""

    def deliver(self, lists: Batch, now: dt.datetime) -> None: ...


class FirehoseSink:
    """Kinesis Data Firehose: one record per served list, its lines newline-separated. The stream splits a record
    into its lines (record deaggregation) and partitions them by tenant, surface and day; Firehose bills records in
    5 KB steps, so a record per line would cost several times more."""

    def __init__(self, stream: str, client: Any | None = None) -> None:
        self.stream = stream
        self._client = client

    @property
    def client(self) -> Any:
        """Made on the first delivery, on the delivery thread: not part of a cold start."""
        if self._client is None:
            import boto3

            self._client = boto3.client("firehose")
        return self._client

    def deliver(self, lists: Batch, now: dt.datetime) -> None:
        batch: list[dict[str, bytes]] = []
        size = 0
        for _, lines in lists:
            data = "".join(f"{line}\n" for line in lines).encode()
            if batch and (len(batch) == FIREHOSE_BATCH_RECORDS or size + len(data) > FIREHOSE_BATCH_BYTES):
                self._put(batch)
                batch, size = [], 0
            batch.append({"Data": data})
            size += len(data)
        if batch:
            self._put(batch)

    def _put(self, batch: list[dict[str, bytes]]) -> None:
        answer = self.client.put_record_batch(DeliveryStreamName=self.stream, Records=batch)
        if answer.get("FailedPutCount"):
            raise RuntimeError(f"Firehose refused {answer['FailedPutCount']} of {len(batch)} exposure records")


class StoreSink:
    """Locally (`recsys serve`): gzip JSONL files in a store, dated by each line's day, where ingest reads raw
    events: `{prefix}{tenant}/{surface}/dt=YYYY-MM-DD/exposures-<time>-<id>.jsonl.gz`."""

    def __init__(self, store: ObjectStore, prefix: str = "") -> None:
        self.store = store
        self.prefix = prefix

    def deliver(self, lists: Batch, now: dt.datetime) -> None:
        groups: dict[tuple[str, str, str], list[str]] = {}
        for partition, lines in lists:
            groups.setdefault(partition, []).extend(lines)
        stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")
        for (tenant, surface, day), group in groups.items():
            key = f"{self.prefix}{tenant}/{surface}/dt={day}/exposures-{stamp}-{uuid.uuid4().hex[:12]}.jsonl.gz"
            data = gzip.compress("".join(f"{line}\n" for line in group).encode(), compresslevel=1, mtime=0)
            self.store.put(key, data, content_type="application/gzip")


class ExposureLog:
    """Served lists waiting in a bounded buffer, delivered by one daemon thread.

    `record` appends to the buffer and returns: it never blocks (a full buffer drops the list and counts it) and
    never raises. The thread wakes every `flush_seconds` (or once `batch_lists` lists wait), formats the lists'
    lines and delivers them in batches of about `batch_lines` lines: the requests pay for an append, and the thread
    takes the interpreter once a second rather than once per request. `on_count(name)` hears `ExposuresDropped`
    and `ExposureDeliveryFailures`; `on_error(message, error)` the reason.
    """

    def __init__(
        self,
        sink: ExposureSink,
        *,
        capacity: int = 10_000,
        batch_lines: int = 2_000,
        batch_lists: int = 500,
        flush_seconds: float = 1.0,
        on_count: Callable[[str], None] | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.sink = sink
        self.capacity = capacity
        self.batch_lines = batch_lines
        self.batch_lists = batch_lists
        self.flush_seconds = flush_seconds
        self._pending: deque[ServedList] = deque()
        self._flushes: deque[threading.Event] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._on_count = on_count or (lambda name: None)
        self._on_error = on_error or (lambda message, error: None)
        self._clock = clock
        self.dropped = 0
        self.failed_batches = 0
        self.delivered_lines = 0
        self._thread = threading.Thread(target=self._drain, name="exposure-log", daemon=True)
        self._thread.start()

    def record(self, served: ServedList) -> None:
        pending = self._pending
        if len(pending) >= self.capacity:
            self.dropped += 1
            self._on_count("ExposuresDropped")
            return
        pending.append(served)  # deque.append is atomic: no lock on the request path
        if len(pending) == self.batch_lists:
            self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Deliver everything recorded so far now; True if that finished within `timeout` (tests call it before
        they look; so may a handler that must not hold lines)."""
        done = threading.Event()
        self._flushes.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def _drain(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            flushes = [self._flushes.popleft() for _ in range(len(self._flushes))]
            batch: list[tuple[tuple[str, str, str], list[str]]] = []
            lines = 0
            while self._pending:
                served = self._pending.popleft()
                formatted = self._lines(served)
                if formatted:
                    batch.append((served.partition, formatted))
                    lines += len(formatted)
                if lines >= self.batch_lines:
                    self._deliver(batch, lines)
                    batch, lines = [], 0
            self._deliver(batch, lines)
            for done in flushes:
                done.set()
            if self._closing and not self._pending:
                return

    def _lines(self, served: ServedList) -> list[str]:
        try:
            return served.lines()
        except Exception as error:  # a formatting bug loses this list, not the others
            self.dropped += 1
            self._on_count("ExposuresDropped")
            self._on_error("exposure record not logged", error)
            return []

    def _deliver(self, lists: Batch, lines: int) -> None:
        if not lists:
            return
        try:
            self.sink.deliver(lists, self._clock())
            self.delivered_lines += lines
        except Exception as error:  # delivery is best effort: counted and logged, never raised into a request
            self.failed_batches += 1
            self._on_count("ExposureDeliveryFailures")
            self._on_error(f"exposure delivery failed ({len(lists)} lists, {lines} lines)", error)


def exposure_log(settings: ServeSettings) -> ExposureLog | None:
    """The log RECSYS_EXPOSURE_LOG names, or None when it is empty."""
    target = settings.exposure_log.strip()
    if not target:
        return None
    from recsys.serve.observability import count, logger
    from recsys.store import open_store

    if target.startswith("firehose://"):
        sink: ExposureSink = FirehoseSink(target.removeprefix("firehose://"))
    else:
        sink = StoreSink(open_store(target))
    return ExposureLog(
        sink,
        capacity=settings.exposure_log_capacity,
        flush_seconds=settings.exposure_log_flush_seconds,
        on_count=count,
        on_error=lambda message, error: logger.warning(message, extra={"error": repr(error)}),
    )
