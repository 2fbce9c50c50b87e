"""The seed's request/response contract for /v1/recommend, /v1/recommend/validate and /v1/similar.

`normalize_*` apply the seed's rules in the seed's order (trim, drop empties, dedupe preserving order, lowercase
tags, defaults with DEFAULT_APPLIED warnings) and raise `Problem`s with the seed's status, code and detail.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from recsys.events.contract import parse_timestamp
from recsys.paths import safe_segment
from recsys.serve.problems import Problem, invalid, unprocessable

MAX_K = 200
DEFAULT_K = 20
MAX_ANCHORS = 50
MAX_CANDIDATE_IDS = 5000
MAX_TAGS = 200
SIGNAL_WEIGHTS = ("pop", "cooc", "emb", "implicit", "session", "content", "knn")


_SEGMENT = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", "description": "no `..`"}


def _schema(required: tuple[str, ...] = (), **properties: dict[str, Any]):
    """OpenAPI shape of a request model beyond its types (what the seed's normalisation checks, which stays in
    `normalize_*` for the seed's details): required fields are not null, and each named property gets its bounds."""

    def shape(schema: dict[str, Any]) -> None:
        props = schema["properties"]
        for name, extra in properties.items():
            variants = props[name].get("anyOf", [props[name]])
            kept = [variant for variant in variants if variant.get("type") != "null"]
            base = {**kept[0], **extra}
            if name in required:
                props[name] = base
            elif len(kept) < len(variants):  # null stays accepted (a default applies)
                props[name] = {"anyOf": [base, {"type": "null"}], "default": props[name].get("default")}
            else:
                props[name] = {**props[name], **extra}
        if required:
            schema["required"] = list(required)

    return shape


class _Strict(BaseModel):
    # Non-finite floats (NaN, Infinity, 1e400) are never a meaningful request value, and they break arithmetic
    # and JSON rendering later: refused here, whoever builds the request (the API's decoder refuses them too).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class User(_Strict):
    # At least one id, not blank (else 422).
    model_config = ConfigDict(
        json_schema_extra=lambda schema: schema.update(
            anyOf=[{"required": [name], "properties": {name: {"type": "string", "pattern": r"\S"}}}
                   for name in ("user_id", "anonymous_id", "session_id")]
        )
    )  # fmt: skip

    user_id: str | None = None
    anonymous_id: str | None = None
    session_id: str | None = None


class Context(_Strict):
    model_config = ConfigDict(
        json_schema_extra=_schema(now={"format": "date-time", "description": "RFC 3339 with a zone; blank = absent"})
    )

    locale: str | None = None
    device: str | None = None
    country: str | None = None
    now: str | None = None


class Anchors(_Strict):
    model_config = ConfigDict(json_schema_extra=_schema(item_ids={"maxItems": MAX_ANCHORS}, max_anchors={"minimum": 1}))

    item_ids: list[str] = Field(default_factory=list)
    max_anchors: int | None = None


class Candidates(_Strict):
    model_config = ConfigDict(
        json_schema_extra=_schema(
            include_ids={"maxItems": MAX_CANDIDATE_IDS}, exclude_ids={"maxItems": MAX_CANDIDATE_IDS}
        )
    )

    include_ids: list[str] = Field(default_factory=list)
    exclude_ids: list[str] = Field(default_factory=list)


class Constraints(_Strict):
    model_config = ConfigDict(
        json_schema_extra=_schema(
            required_tags={"maxItems": MAX_TAGS},
            forbidden_tags={"maxItems": MAX_TAGS},
            max_per_tag={"maxProperties": MAX_TAGS, "additionalProperties": {"type": "integer", "minimum": 0}},
        )
    )

    required_tags: list[str] = Field(default_factory=list)
    forbidden_tags: list[str] = Field(default_factory=list)
    # The seed decodes into map[string]int: false, "2" or 2.5 is a 400 there, not a cap of 0, 2 or 2.
    max_per_tag: dict[str, StrictInt] = Field(default_factory=dict)


class Weights(_Strict):
    """Blend weights. pop/cooc/emb are the seed's; emb weighs content similarity here (the seed's "similarity")."""

    model_config = ConfigDict(json_schema_extra=_schema(**dict.fromkeys(SIGNAL_WEIGHTS, {"minimum": 0})))

    pop: float | None = None
    cooc: float | None = None
    emb: float | None = None
    implicit: float | None = None
    session: float | None = None
    content: float | None = None
    knn: float | None = None  # item-to-item collaborative similarity (the item_knn artifact)


class Options(_Strict):
    model_config = ConfigDict(
        json_schema_extra=lambda schema: schema["properties"]["explain"].update(
            enum=["none", "summary", "full"], description="trimmed and lower-cased; blank = none"
        )
    )

    include_reasons: bool = False
    explain: str = "none"
    include_trace: bool = False
    seed: int = 0


class Experiment(_Strict):
    id: str | None = None
    variant: str | None = None


_K = {"minimum": 1, "maximum": MAX_K}


class RecommendRequest(_Strict):
    model_config = ConfigDict(
        json_schema_extra=_schema(("surface", "user"), surface=_SEGMENT, segment=_SEGMENT, k=_K, user={})
    )

    surface: str | None = None
    segment: str | None = None
    k: int | None = None
    user: User | None = None
    context: Context | None = None
    anchors: Anchors | None = None
    candidates: Candidates | None = None
    constraints: Constraints | None = None
    weights: Weights | None = None
    options: Options | None = None
    experiment: Experiment | None = None


class SimilarRequest(_Strict):
    model_config = ConfigDict(
        json_schema_extra=_schema(
            ("surface", "item_id"), surface=_SEGMENT, segment=_SEGMENT, k=_K, item_id={"pattern": r"\S"}
        )
    )

    surface: str | None = None
    segment: str | None = None
    item_id: str | None = None
    k: int | None = None
    constraints: Constraints | None = None
    options: Options | None = None


class Warning_(BaseModel):
    code: str
    detail: str


class Item(BaseModel):
    item_id: str
    rank: int
    score: float
    reasons: list[str] | None = None
    explain: dict[str, Any] | None = None


class MetaExperiment(BaseModel):
    """The request's experiment and the variant it was ranked with (None: not assigned)."""

    id: str
    variant: str | None = None


class Meta(BaseModel):
    tenant_id: str
    surface: str
    segment: str
    algo_version: str
    config_version: str | None = None
    rules_version: str | None = None
    manifest_version: str | None = None
    request_id: str
    counts: dict[str, int] | None = None
    experiment: MetaExperiment | None = None  # ours: the seed logs the assignment but does not echo it


class RecommendResponse(BaseModel):
    items: list[Item]
    meta: Meta
    warnings: list[Warning_] | None = None


class ValidateResponse(BaseModel):
    normalized_request: dict[str, Any]
    warnings: list[Warning_] | None = None
    meta: Meta


def default_applied(detail: str) -> Warning_:
    return Warning_(code="DEFAULT_APPLIED", detail=detail)


class BodyError(ValueError):
    """A request body that is not one decodable JSON document; the message is one line for the problem detail."""


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BodyError(f"invalid JSON: the number {text[:40]} is out of a double's range")
    return value


def _no_constant(name: str) -> Any:
    raise BodyError(f"invalid JSON: {name} is not a JSON number")


def load_json(raw: bytes) -> Any:
    """json.loads for a request body, held to what JSON can represent everywhere (RFC 8259, I-JSON): no NaN or
    Infinity, no number beyond a double's range, no unpaired surrogate escape (each would pass json.loads and fail
    later, in arithmetic or when a document is stored or echoed). Whatever the body, the only error is BodyError:
    bad JSON, trailing data, bytes that are not UTF-8 (or the UTF-16/32 json.loads detects), a number past int()'s
    digit limit, nesting past the recursion limit."""
    try:
        text = raw.decode(json.detect_encoding(raw))  # strict: json.loads(bytes) would let surrogate bytes through
        data = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            raise BodyError("unexpected trailing data") from None
        raise BodyError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise BodyError("invalid JSON: the body is not UTF-8") from None
    except BodyError:
        raise
    except ValueError:
        raise BodyError("invalid JSON: a number is too long to parse") from None
    except RecursionError:
        raise BodyError("invalid JSON: nested too deeply to parse") from None
    if _SURROGATE_ESCAPE.search(text):  # rare: only then look for an escape that is not half of a pair
        try:
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise BodyError("invalid JSON: a \\u escape is an unpaired surrogate") from None
    return data


def parse_body(raw: bytes, model: type[BaseModel]) -> BaseModel:
    """Decode exactly one JSON object into `model`; errors are 400 RECSYS_INVALID_REQUEST like the seed's decoder."""
    try:
        data = load_json(raw or b"null")
    except BodyError as exc:
        raise invalid(str(exc)) from None
    if not isinstance(data, dict):
        raise invalid("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"])
        if err["type"] == "extra_forbidden":
            raise invalid(f'unknown field "{where}"') from None
        raise invalid(f"{where}: {err['msg']}") from None


def clean_list(values: list[str], *, lower: bool = False) -> list[str]:
    """Trim, drop empties, dedupe preserving order (and lowercase tags)."""
    seen: dict[str, None] = {}
    for value in values:
        value = value.strip()
        if lower:
            value = value.lower()
        if value:
            seen.setdefault(value, None)
    return list(seen)


def _path_safe(value: str, name: str) -> str:
    try:
        return safe_segment(value, name)
    except ValueError:
        raise invalid(f"{name} contains invalid path segment") from None


def _surface_segment_k(
    surface: str | None, segment: str | None, k: int | None, warnings: list[Warning_]
) -> tuple[str, str, int]:
    surface = (surface or "").strip()
    if not surface:
        raise invalid("surface is required")
    surface = _path_safe(surface, "surface")
    segment = (segment or "").strip()
    if not segment:
        segment = "default"
        warnings.append(default_applied("segment defaulted to 'default'"))
    segment = _path_safe(segment, "segment")
    if k is None:
        k = DEFAULT_K
        warnings.append(default_applied(f"k defaulted to {DEFAULT_K}"))
    if not 1 <= k <= MAX_K:
        raise invalid(f"k must be between 1 and {MAX_K}")
    return surface, segment, k


def _options(options: Options | None, warnings: list[Warning_]) -> Options:
    if options is None:
        warnings.append(default_applied("options defaulted"))
        return Options()
    explain = options.explain.strip().lower() or "none"  # the seed's: trimmed, lower-cased, blank = none
    if explain not in ("none", "summary", "full"):
        raise unprocessable("options.explain must be one of none, summary, full")
    return options if explain == options.explain else options.model_copy(update={"explain": explain})


def _constraints(constraints: Constraints | None) -> Constraints | None:
    if constraints is None:
        return None
    required = clean_list(constraints.required_tags, lower=True)
    forbidden = clean_list(constraints.forbidden_tags, lower=True)
    if len(required) > MAX_TAGS or len(forbidden) > MAX_TAGS or len(constraints.max_per_tag) > MAX_TAGS:
        raise invalid("constraints tags exceed limit")
    per_tag: dict[str, int] = {}
    for tag, cap in constraints.max_per_tag.items():
        if cap < 0:
            raise unprocessable("constraints.max_per_tag values must be non-negative")
        if tag.strip():
            per_tag[tag.strip().lower()] = cap
    if not (required or forbidden or per_tag):
        return None
    return Constraints(required_tags=required, forbidden_tags=forbidden, max_per_tag=per_tag)


class NormalizedRecommend(BaseModel):
    """A valid /v1/recommend request after the seed's normalisation (what ranking receives)."""

    surface: str
    segment: str
    k: int
    user: User
    context: Context | None = None
    anchors: Anchors | None = None
    candidates: Candidates | None = None
    constraints: Constraints | None = None
    weights: Weights | None = None
    options: Options
    experiment: Experiment | None = None
    now: dt.datetime | None = None

    @property
    def subject(self) -> str | None:
        """The id the ranking personalises for: user_id, else session_id, else anonymous_id (the seed's order)."""
        return self.user.user_id or self.user.session_id or self.user.anonymous_id

    def as_seed_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude={"now"})


def normalize_recommend(
    request: RecommendRequest, *, explain_max_items: int = 50
) -> tuple[NormalizedRecommend, list[Warning_]]:
    warnings: list[Warning_] = []
    surface, segment, k = _surface_segment_k(request.surface, request.segment, request.k, warnings)
    user = request.user or User()
    user = User(**{name: (value.strip() or None) if value else None for name, value in user.model_dump().items()})
    if not (user.user_id or user.anonymous_id or user.session_id):
        raise unprocessable("user_id or anonymous_id or session_id is required")
    now = None
    if request.context and request.context.now is not None and request.context.now.strip():  # "" = absent (seed)
        try:
            now = parse_timestamp(request.context.now)
        except ValueError:
            raise invalid("context.now must be RFC3339") from None
    anchors = None
    if request.anchors is not None:
        ids = clean_list(request.anchors.item_ids)
        if len(ids) > MAX_ANCHORS:
            raise invalid("anchors.item_ids exceeds limit")
        max_anchors = request.anchors.max_anchors
        if max_anchors is None:
            max_anchors = MAX_ANCHORS
            warnings.append(default_applied(f"anchors.max_anchors defaulted to {MAX_ANCHORS}"))
        elif max_anchors <= 0:
            raise invalid("anchors.max_anchors must be positive")
        if max_anchors < len(ids):
            raise unprocessable("anchors.max_anchors must be >= number of anchor items")
        anchors = Anchors(item_ids=ids, max_anchors=max_anchors)
    candidates = None
    if request.candidates is not None:
        include = clean_list(request.candidates.include_ids)
        exclude = clean_list(request.candidates.exclude_ids)
        if len(include) > MAX_CANDIDATE_IDS:
            raise invalid("candidates.include_ids exceeds limit")
        if len(exclude) > MAX_CANDIDATE_IDS:
            raise invalid("candidates.exclude_ids exceeds limit")
        if include or exclude:
            candidates = Candidates(include_ids=include, exclude_ids=exclude)
    constraints = _constraints(request.constraints)
    if request.weights is not None and any((w or 0) < 0 for w in request.weights.model_dump().values()):
        raise unprocessable("weights must be non-negative")
    options = _options(request.options, warnings)
    if options.explain != "none" and k > explain_max_items:
        raise Problem(422, "RECSYS_EXPLAIN_TOO_LARGE", "explain payload too large")
    normalized = NormalizedRecommend(
        surface=surface,
        segment=segment,
        k=k,
        user=user,
        context=request.context,
        anchors=anchors,
        candidates=candidates,
        constraints=constraints,
        weights=request.weights,
        options=options,
        experiment=request.experiment,
        now=now,
    )
    return normalized, warnings


class NormalizedSimilar(BaseModel):
    surface: str
    segment: str
    k: int
    item_id: str
    constraints: Constraints | None = None
    options: Options


def normalize_similar(request: SimilarRequest) -> tuple[NormalizedSimilar, list[Warning_]]:
    warnings: list[Warning_] = []
    surface, segment, k = _surface_segment_k(request.surface, request.segment, request.k, warnings)
    item_id = (request.item_id or "").strip()
    if not item_id:
        raise invalid("item_id is required")
    options = _options(request.options, warnings)
    return NormalizedSimilar(
        surface=surface,
        segment=segment,
        k=k,
        item_id=item_id,
        constraints=_constraints(request.constraints),
        options=options,
    ), warnings


ExplainLevel = Literal["none", "summary", "full"]
