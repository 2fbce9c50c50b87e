"""A tenant's ranking configuration, parsed leniently from its free-form config JSON.

The seed stores config as free-form JSON and validates only `weights{pop,cooc,emb}` and
`limits{max_k,max_exclude_ids}` (non-negative); it consumes `weights`, `algo` and `flags`. Unknown keys are kept
(`model_extra`) and ignored by ranking. Ours adds:

  weights        also `implicit`, `session`, `content`, `knn` (`emb`, the seed's similarity weight, is an alias of
                 `content`; when both are given `content` wins)
  exclude_seen   bool, default True: drop items the user already interacted with (the implicit row)
  recent_items   int 0..50, default 5: how many of the user's most recent items act as implicit anchors
  anchor_decay   0..1, default 0.5: weight of the i-th most recent anchor (request anchors first, then the user's
                 recent items) in the cooc and session signals is anchor_decay ** i
  history_decay  0..1, default 0.8: weight of the i-th most recent item of the user's own timeline in the knn
                 signal is history_decay ** i (1 = every history item counts the same)
  fanout         int 0..1000, default 200: popularity candidates (at least k are always fetched)
  max_pins       int 0..200, default 3: pin slots for merchandising rules (the seed's RECSYS_ALGO_RULES_MAX_PINS)
  rate_limit     {"rate": requests/s, "burst": n} per API instance, or {"enabled": false} for none; unset fields
                 (or no rate_limit) take the TENANT_RATE_LIMIT_* defaults (docs/reference/api.md#rate-limits)
  surfaces       {surface: partial overrides of weights/algo/exclude_seen/recent_items/fanout/max_pins/decays}, e.g. a
                 re-consumption surface with {"exclude_seen": false}; surface names match case-insensitively

Weight precedence, per weight: request `weights` (only the fields given) > surface override > tenant `weights` >
DEFAULT_WEIGHTS. If every resolved weight is 0 the blend falls back to {pop: 1} (the seed's rule).

An invalid config raises ValueError with a one-line message naming the field (API: 422 RECSYS_INVALID_CONFIG).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SIGNAL_NAMES = ("pop", "cooc", "implicit", "session", "content", "knn")

DEFAULT_WEIGHTS: Mapping[str, float] = {
    # Chosen on the validation splits of the real datasets (YOOCHOOSE sessions, Amazon Video Games histories) and
    # of the synthetic ones together (docs/evaluation.md); never on a test split.
    # Popularity: the cold-start fallback and the order of the items no other signal reaches. Any more than a
    # tie-breaker buries an anonymous visitor's session signals (real sessions, validation day: new-target HR@20
    # 0.20 at 0.125, 0.490 at 0.01, 0.505 at 0.002; user histories and synthetic data level).
    "pop": 0.002,
    # Items co-visited in the same sessions as the anchors (cosine 0..1, a decayed mean over the anchors).
    "cooc": 0.125,
    # The user's own history (only a candidate source when exclude_seen is false: re-consumption surfaces).
    "implicit": 0.5,
    # What tends to come next after the visitor's latest items (transition share, a decayed mean over anchors).
    "session": 0.125,
    # Catalog tag similarity to the anchors: reaches new/long-tail items, weaker evidence than behaviour.
    "content": 0.05,
    # Items liked by the users who liked the visitor's latest items (item_knn over user histories, not sessions).
    "knn": 1.0,
}
"""Default blend weights; every signal value is in 0..1, so a weight is the most a signal can add to a score."""

FALLBACK_WEIGHTS: Mapping[str, float] = {
    "pop": 1.0,
    "cooc": 0.0,
    "implicit": 0.0,
    "session": 0.0,
    "content": 0.0,
    "knn": 0.0,
}
"""What an all-zero blend becomes (the seed: all-zero weights -> popularity only)."""

MAX_RECENT_ITEMS = 50
MAX_FANOUT = 1000
MAX_PINS = 200
DEFAULT_ANCHOR_DECAY = 0.5
DEFAULT_HISTORY_DECAY = 0.8

Decay = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class WeightOverrides(BaseModel):
    """Blend weights given somewhere (tenant, surface or request); unset fields defer to the next level."""

    model_config = ConfigDict(extra="allow", frozen=True)

    pop: NonNegative | None = None
    cooc: NonNegative | None = None
    emb: NonNegative | None = None
    implicit: NonNegative | None = None
    session: NonNegative | None = None
    content: NonNegative | None = None
    knn: NonNegative | None = None

    def given(self) -> dict[str, float]:
        """The weights this level sets, `emb` folded into `content`."""
        out = {name: value for name in SIGNAL_NAMES if (value := getattr(self, name)) is not None}
        if "content" not in out and self.emb is not None:
            out["content"] = self.emb
        return out


class Limits(BaseModel):
    """The seed's `limits` (validated, not enforced)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    max_k: Annotated[int, Field(ge=0)] | None = None
    max_exclude_ids: Annotated[int, Field(ge=0)] | None = None


class RateLimit(BaseModel):
    """The tenant's request limit: `rate` tokens a second into a bucket of `burst` (per API instance). Present means
    on unless `enabled` is false; `rate`/`burst` left out take the TENANT_RATE_LIMIT_* defaults. Unknown keys are
    refused: a misspelt limit would otherwise silently not apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    rate: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    burst: Annotated[int, Field(ge=1)] | None = None


class SurfaceOverrides(BaseModel):
    """Per-surface partial overrides; unset fields keep the tenant-level value."""

    model_config = ConfigDict(extra="allow", frozen=True)

    weights: WeightOverrides | None = None
    algo: str | None = None
    exclude_seen: bool | None = None
    recent_items: Annotated[int, Field(ge=0, le=MAX_RECENT_ITEMS)] | None = None
    fanout: Annotated[int, Field(ge=0, le=MAX_FANOUT)] | None = None
    max_pins: Annotated[int, Field(ge=0, le=MAX_PINS)] | None = None
    anchor_decay: Decay | None = None
    history_decay: Decay | None = None


class EffectiveConfig(BaseModel):
    """The configuration one request ranks with: tenant config merged with its surface's overrides and defaults."""

    model_config = ConfigDict(frozen=True)

    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    algo: str | None = None
    flags: dict[str, Any] = Field(default_factory=dict)
    exclude_seen: bool = True
    recent_items: int = 5
    fanout: int = 200
    max_pins: int = 3
    anchor_decay: float = DEFAULT_ANCHOR_DECAY
    history_decay: float = DEFAULT_HISTORY_DECAY

    def weights_for(self, request: WeightOverrides | BaseModel | Mapping[str, Any] | None = None) -> dict[str, float]:
        """The blend for one request: the request's given weights over this config's; all-zero -> {pop: 1}.

        `request` may be the request's `Weights` model (fields pop/cooc/emb/implicit/session/content/knn, None =
        not given), a WeightOverrides or a plain mapping.
        """
        weights = dict(self.weights)
        if request is not None:
            data = request if isinstance(request, Mapping) else request.model_dump()
            weights.update(WeightOverrides.model_validate(data).given())
        if not any(weights[name] > 0 for name in SIGNAL_NAMES):
            return dict(FALLBACK_WEIGHTS)
        return weights


class TenantConfig(BaseModel):
    """A tenant's config JSON. Build with `TenantConfig.parse(data)`; unknown keys are kept in `model_extra`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    weights: WeightOverrides | None = None
    algo: str | None = None
    flags: dict[str, Any] | None = None
    limits: Limits | None = None
    exclude_seen: bool = True
    recent_items: Annotated[int, Field(ge=0, le=MAX_RECENT_ITEMS)] = 5
    fanout: Annotated[int, Field(ge=0, le=MAX_FANOUT)] = 200
    max_pins: Annotated[int, Field(ge=0, le=MAX_PINS)] = 3
    anchor_decay: Decay = DEFAULT_ANCHOR_DECAY
    history_decay: Decay = DEFAULT_HISTORY_DECAY
    rate_limit: RateLimit | None = None
    surfaces: dict[str, SurfaceOverrides] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_surfaces(self) -> TenantConfig:
        keys = [key.strip().lower() for key in self.surfaces]
        if len(set(keys)) != len(keys):
            raise ValueError("surfaces has duplicate surface names (names are case-insensitive)")
        return self

    @classmethod
    def parse(cls, data: Any) -> TenantConfig:
        """Validate a decoded config JSON (None = no config: all defaults). Raises ValueError with a clear message."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError("config must be a JSON object")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ValueError(_message(exc)) from None

    def for_surface(self, surface: str | None) -> EffectiveConfig:
        """Merge this config with `surface`'s overrides (case-insensitive) over the defaults."""
        weights = dict(DEFAULT_WEIGHTS)
        if self.weights is not None:
            weights.update(self.weights.given())
        fields = {
            "algo": self.algo,
            "exclude_seen": self.exclude_seen,
            "recent_items": self.recent_items,
            "fanout": self.fanout,
            "max_pins": self.max_pins,
            "anchor_decay": self.anchor_decay,
            "history_decay": self.history_decay,
        }
        override = self._surface(surface)
        if override is not None:
            if override.weights is not None:
                weights.update(override.weights.given())
            fields.update({name: value for name in fields if (value := getattr(override, name)) is not None})
        return EffectiveConfig(weights=weights, flags=dict(self.flags or {}), **fields)

    def _surface(self, surface: str | None) -> SurfaceOverrides | None:
        if not surface or not self.surfaces:
            return None
        if surface in self.surfaces:
            return self.surfaces[surface]
        wanted = surface.strip().lower()
        for key, override in self.surfaces.items():
            if key.strip().lower() == wanted:
                return override
        return None


def _message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "config"
    ctx = err.get("ctx") or {}
    if err["type"] == "greater_than_equal" and ctx.get("ge") == 0:
        return f"{where} must be non-negative"
    if err["type"] == "greater_than":
        return f"{where} must be greater than {ctx.get('gt')}"
    if err["type"] == "less_than_equal":
        return f"{where} must be at most {ctx.get('le')}"
    if err["type"] == "value_error":
        return str(ctx.get("error", err["msg"]))
    return f"{where}: {err['msg']}"
