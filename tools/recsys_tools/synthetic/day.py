"""One sampled UTC day, as both samplers hand it to the writer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

EVENT_TYPES = ("exposure", "click", "add_to_cart", "purchase")


@dataclass(frozen=True)
class SampledDay:
    """A day's events in file order (sorted by ts), formatted lazily in chunks of lines."""

    events: int
    chunks: Callable[[], Iterator[pa.Array]]  # binary/string arrays of lines, each ending in "\n", in file order
    record: Callable[[int], dict[str, object]]  # the index-th event as its JSON object (template of a bad line)
    event_types: dict[str, int]
    sessions: int
    anonymous_sessions: int
    users: np.ndarray  # distinct indices of the users with a user_id
    items: np.ndarray  # distinct item indices


def array_bytes(lines: pa.Array) -> memoryview:
    """The concatenated bytes of a string or binary array (a slice of its data buffer, no copy)."""
    if not len(lines):
        return memoryview(b"")
    wide = pa.types.is_large_string(lines.type) or pa.types.is_large_binary(lines.type)
    offsets = np.frombuffer(lines.buffers()[1], np.int64 if wide else np.int32)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return memoryview(lines.buffers()[2])[start:end]
