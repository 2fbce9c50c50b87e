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
  surfaces       {surface: partial overrides of weights/algo/exclude_seen/recent_items/fanout/max_pins/decays/
                 diversity/exploration}, e.g. a re-consumption surface with {"exclude_seen": false}; surface names
                 match case-insensitively
  algo           blend (default) | popularity | cooc | implicit: the seed's modes; a single-signal mode ranks by that
                 signal alone (weight 1, the others 0) and falls back to popularity when it has nothing to say
  diversity      {mmr_lambda, similarity, caps, brand_cap, category_cap, pool}: MMR re-ranking and per-tag caps,
                 off by default (recsys.ranking.diversity)
  exploration    {epsilon, pool}: epsilon-greedy exploration with recorded propensities, off by default
                 (recsys.ranking.exploration)
  experiments    [{id, enabled, variants, traffic_percent, surface, starts_at, ends_at}]: A/B tests whose variants
                 override weights / algo / diversity / exploration (recsys.serve.experiments assigns them)

Weight precedence, per weight: request `weights` (only the fields given) > surface override > tenant `weights` >
DEFAULT_WEIGHTS. If every resolved weight is 0 the blend falls back to {pop: 1} (the seed's rule).

An invalid config raises ValueError with a one-line message naming the field (API: 422 RECSYS_INVALID_CONFIG).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from recsys.events.contract import parse_timestamp

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


ALGO_MODES = ("blend", "popularity", "cooc", "implicit")
"""The seed's `algo` modes: the blend, or one signal alone."""

MODE_SIGNAL = {"popularity": "pop", "cooc": "cooc", "implicit": "implicit"}
"""The signal a single-signal mode ranks by."""

Algo = Literal["blend", "popularity", "cooc", "implicit"]


def _algo(value: Any) -> Any:
    """Modes match case-insensitively (the seed lower-cases them); anything else is refused on PUT."""
    if isinstance(value, str):
        value = value.strip().lower()
        if value not in ALGO_MODES:
            raise ValueError(f"algo must be one of {', '.join(ALGO_MODES)}")
    return value


MAX_MEMOIZED_SURFACES = 256
MAX_DIVERSITY_POOL = 1000
DEFAULT_DIVERSITY_POOL = 100
MAX_EXPLORATION_POOL = 200
DEFAULT_EXPLORATION_POOL = 20


class Diversity(BaseModel):
    """MMR re-ranking and per-tag caps (the seed's RECSYS_ALGO_MMR_LAMBDA, _BRAND_CAP, _CATEGORY_CAP), off by default.

    mmr_lambda   0..1; 0 = off (the seed's rule), 1 = the score order; in between trades score for dissimilarity
    similarity   "tags" (Jaccard of the catalog tags, the seed's) or "cooc" (co-visitation cosine)
    caps         {tag prefix: n}: at most n items per tag with that prefix (e.g. {"brand:": 2}: two per brand)
    brand_cap    the seed's name for caps["brand:"]; category_cap for caps["category:"]
    pool         how many of the top candidates MMR and the caps choose from (at least k)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mmr_lambda: Decay = 0.0
    similarity: Literal["tags", "cooc"] = "tags"
    caps: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    brand_cap: Annotated[int, Field(ge=0)] = 0
    category_cap: Annotated[int, Field(ge=0)] = 0
    pool: Annotated[int, Field(ge=1, le=MAX_DIVERSITY_POOL)] = DEFAULT_DIVERSITY_POOL

    @field_validator("caps")
    @classmethod
    def _prefixes(cls, caps: dict[str, int]) -> dict[str, int]:
        out = {prefix.strip().lower(): n for prefix, n in caps.items()}
        if any(not prefix for prefix in out):
            raise ValueError("diversity.caps prefixes must not be empty")
        return out

    def tag_caps(self) -> dict[str, int]:
        """Every positive cap by tag prefix (brand_cap / category_cap folded in; `caps` wins)."""
        out = {"brand:": self.brand_cap, "category:": self.category_cap} | self.caps
        return {prefix: n for prefix, n in out.items() if n > 0}

    @property
    def active(self) -> bool:
        return self.mmr_lambda > 0 or bool(self.tag_caps())


class Exploration(BaseModel):
    """Epsilon-greedy exploration over the top `pool` candidates, off by default (epsilon 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: Decay = 0.0
    pool: Annotated[int, Field(ge=1, le=MAX_EXPLORATION_POOL)] = DEFAULT_EXPLORATION_POOL

    @property
    def active(self) -> bool:
        return self.epsilon > 0


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
    algo: Algo | None = None
    exclude_seen: bool | None = None
    recent_items: Annotated[int, Field(ge=0, le=MAX_RECENT_ITEMS)] | None = None
    fanout: Annotated[int, Field(ge=0, le=MAX_FANOUT)] | None = None
    max_pins: Annotated[int, Field(ge=0, le=MAX_PINS)] | None = None
    anchor_decay: Decay | None = None
    history_decay: Decay | None = None
    diversity: Diversity | None = None
    exploration: Exploration | None = None

    _algo = field_validator("algo", mode="before")(_algo)


DEFAULT_VARIANTS = ("A", "B")
"""An experiment without `variants` splits its subjects between A and B (the seed's EXPERIMENT_DEFAULT_VARIANTS)."""


class Variant(BaseModel):
    """One arm of an experiment: its name, its share of the experiment's traffic, and what it changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1)]
    weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    weights: WeightOverrides | None = None
    algo: Algo | None = None
    diversity: Diversity | None = None
    exploration: Exploration | None = None

    _algo = field_validator("algo", mode="before")(_algo)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("name")
    @classmethod
    def _trimmed(cls, name: str) -> str:
        if not name.strip():
            raise ValueError("variant names must not be empty")
        return name.strip()


class ExperimentConfig(BaseModel):
    """An experiment of the tenant (the seed's EXPERIMENT_CONFIG_JSON entries): who is in it and what each variant
    changes. Active iff enabled, `surface` (if set) equals the request's (case-insensitive) and
    starts_at <= now < ends_at (each optional; RFC 3339)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1)]
    enabled: bool = True
    variants: list[Variant] = Field(default_factory=lambda: [Variant(name=name) for name in DEFAULT_VARIANTS])
    traffic_percent: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 100.0
    surface: str | None = None
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("experiments ids must not be empty")
        return value.strip()

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        if value is None or isinstance(value, dt.datetime):
            return value
        try:
            return parse_timestamp(str(value))
        except ValueError:
            raise ValueError("experiments starts_at and ends_at must be RFC 3339 times") from None

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if not self.variants:
            raise ValueError(f"experiment {self.id} has no variants")
        names = [variant.name for variant in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.id} has duplicate variant names")
        if not any(variant.weight > 0 for variant in self.variants):
            raise ValueError(f"experiment {self.id}: at least one variant weight must be positive")
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError(f"experiment {self.id}: ends_at must be after starts_at")
        return self

    def variant(self, name: str | None) -> Variant | None:
        return next((variant for variant in self.variants if variant.name == name), None) if name else None


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
    diversity: Diversity | None = None  # None (or inactive): off
    exploration: Exploration | None = None  # None (or epsilon 0): off

    def weights_for(self, request: WeightOverrides | BaseModel | Mapping[str, Any] | None = None) -> dict[str, float]:
        """The blend for one request: the request's given weights over this config's; all-zero -> {pop: 1}.

        `request` may be the request's `Weights` model (fields pop/cooc/emb/implicit/session/content/knn, None =
        not given), a WeightOverrides or a plain mapping. A single-signal `algo` mode (popularity, cooc, implicit)
        wins over every weight: that signal at 1, the others at 0.
        """
        signal = MODE_SIGNAL.get(self.algo or "")
        if signal is not None:
            return {name: 1.0 if name == signal else 0.0 for name in SIGNAL_NAMES}
        weights = dict(self.weights)
        if request is not None:
            data = request if isinstance(request, Mapping) else request.model_dump()
            weights.update(WeightOverrides.model_validate(data).given())
        if not any(weights[name] > 0 for name in SIGNAL_NAMES):
            return dict(FALLBACK_WEIGHTS)
        return weights

    @property
    def single_signal(self) -> bool:
        """A single-signal mode: the ranking falls back to popularity when that signal scores every item 0."""
        return MODE_SIGNAL.get(self.algo or "") is not None

    def with_variant(self, variant: Variant) -> EffectiveConfig:
        """This config with an experiment variant's overrides (its weights over these, its algo, diversity and
        exploration instead of these when it sets them)."""
        update: dict[str, Any] = {}
        if variant.weights is not None:
            update["weights"] = {**self.weights, **variant.weights.given()}
        for name in ("algo", "diversity", "exploration"):
            if (value := getattr(variant, name)) is not None:
                update[name] = value
        return self.model_copy(update=update) if update else self


class TenantConfig(BaseModel):
    """A tenant's config JSON. Build with `TenantConfig.parse(data)`; unknown keys are kept in `model_extra`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    weights: WeightOverrides | None = None
    algo: Algo | None = None
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
    diversity: Diversity | None = None
    exploration: Exploration | None = None
    experiments: list[ExperimentConfig] = Field(default_factory=list)
    _effective: dict[str | None, EffectiveConfig] = PrivateAttr(default_factory=dict)

    _algo = field_validator("algo", mode="before")(_algo)

    @model_validator(mode="after")
    def _unique_surfaces(self) -> TenantConfig:
        keys = [key.strip().lower() for key in self.surfaces]
        if len(set(keys)) != len(keys):
            raise ValueError("surfaces has duplicate surface names (names are case-insensitive)")
        ids = [experiment.id for experiment in self.experiments]
        if len(set(ids)) != len(ids):
            raise ValueError("experiments has duplicate ids")
        return self

    def experiment(self, experiment_id: str | None) -> ExperimentConfig | None:
        """The experiment with this id (ids are compared trimmed), or None."""
        if not experiment_id or not self.experiments:
            return None
        wanted = experiment_id.strip()
        return next((experiment for experiment in self.experiments if experiment.id == wanted), None)

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
        """Merge this config with `surface`'s overrides (case-insensitive) over the defaults (memoized: the config is
        frozen, and the result is never changed in place)."""
        effective = self._effective.get(surface)
        if effective is None:
            effective = self._merge(surface)
            if len(self._effective) < MAX_MEMOIZED_SURFACES:  # surfaces come from requests: bounded
                self._effective[surface] = effective
        return effective

    def _merge(self, surface: str | None) -> EffectiveConfig:
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
            "diversity": self.diversity,
            "exploration": self.exploration,
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
