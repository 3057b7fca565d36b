"""Dated, sourced price tables and cost computation in ``Decimal``.

The packaged table (``data/gemini.toml``) is compiled ahead of time from the genai-prices
catalogue plus the project's curated overrides (``curated.toml``) by
``vividly-trace pricing compile`` (:mod:`vividly_trace.pricing._compile`); nothing here
imports genai-prices. A model's price has periods (``changes``: the prices in force from a
date on, e.g. the end of an introductory price) and service tiers (``tiers``: ``flex``,
``priority``, ``batch``, or a ``provisioned`` rate the user configures), and a request is
priced at the period in force on the UTC day it started. Users extend or override the table
from a file or in code::

    table = PricingTable.default().with_overrides(
        {"my-tuned-model": {"input": "0.5", "output": "2"}}, version="ours-2026-11"
    )
    configure(pricing=table)
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import threading
import time
import tomllib
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from .._jsonsafe import show
from ..exceptions import ConfigurationError
from ..usage import Usage

__all__ = [
    "FIELD_ORDER",
    "GROUNDING_UNITS",
    "SERVICE_TIERS",
    "ModelPrice",
    "PricingTable",
    "normalize_model_name",
    "utc_day",
]

_logger = logging.getLogger("vividly_trace")
_ONE = Decimal(1)
_ZERO = Decimal(0)
#: Captured operations that bill no tokens at the time of the request (see request_cost).
_NOT_BILLED_AT_REQUEST = frozenset({"caches.create"})
_MAX_PERIODS = 4096  # quote()'s memo of price periods: cleared when full
_NO_COUNTS = (None,) * 6
_EXACT_LIMIT = 10**28  # Decimal's default precision: integers below it convert exactly
_PRICE_FIELDS = (
    "input",
    "output",
    "cached_input",
    "audio_input",
    "cached_audio_input",
    "input_above",
    "output_above",
    "cached_input_above",
    "image_input",
    "video_input",
    "image_output",
    "audio_output",
    "grounding_per_1k",
)
#: How a model bills Grounding with Google Search: per grounded prompt (a request whose
#: answer ran searches: the 2.x models) or per search query (the Gemini 3 family).
GROUNDING_UNITS = frozenset({"prompt", "query"})
#: The service tiers a record can name. ``standard`` is the table's plain prices; the others
#: are priced from a model's ``tiers`` (none: no price); ``provisioned`` (Vertex AI
#: provisioned throughput) has no per-token list price unless a table gives one.
SERVICE_TIERS = frozenset({"standard", "flex", "priority", "batch", "provisioned"})
_DAY_NS = 86_400 * 10**9
_UNSET = object()
_EPOCH = _dt.date(1970, 1, 1)


def utc_day(when: _dt.datetime | _dt.date | None = None) -> int:
    """Days since 1970-01-01 of ``when`` in UTC (a naive datetime is UTC; None: now)."""
    if when is None:
        return time.time_ns() // _DAY_NS
    if isinstance(when, _dt.datetime):
        if when.tzinfo is not None:
            when = when.astimezone(_dt.timezone.utc)
        when = when.date()
    return (when - _EPOCH).days


def _day_of(name: str, value: Any) -> int:
    """A change's ``from`` date (ISO string or date) as a UTC day number."""
    try:
        if isinstance(value, _dt.datetime):
            raise TypeError
        day = value if isinstance(value, _dt.date) else _dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"price of {show(name)}: a change needs 'from' = a date (YYYY-MM-DD), got {show(value)}"
        ) from None
    return (day - _EPOCH).days


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Prices of one model in USD per 1M tokens.

    ``tier_threshold``: above this many prompt tokens the whole request is billed at the
    ``*_above`` prices. ``max_prompt_tokens``: above it the table has no price (cost None).
    Missing cached / audio prices fall back to the plain input price.

    ``image_input`` / ``video_input``: the uncached input tokens of that modality (missing:
    the input price); ``image_output`` / ``audio_output``: the output tokens of that
    modality (missing: the output price). ``grounding_per_1k``: Grounding with Google
    Search, USD per 1,000 ``grounding_unit`` (``prompt``: grounded prompts; ``query``: search
    queries); the list price, before any free allowance (those are per account and per day
    or month, which a record cannot know).

    ``changes``: ``(date, price)`` pairs in date order: ``price`` is in force from that UTC
    day on (this object's own rates before the first). ``tiers``: ``(tier, price)`` pairs,
    each with its own ``changes``: the prices of a service tier other than standard.
    ``aliases``: other model names priced the same (exact, after lower-casing). ``note``:
    why a curated price differs from the catalogue it was compiled from.

    .. versionadded:: 0.1.0
    """

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    audio_input: Decimal | None = None
    cached_audio_input: Decimal | None = None
    tier_threshold: int | None = None
    input_above: Decimal | None = None
    output_above: Decimal | None = None
    cached_input_above: Decimal | None = None
    max_prompt_tokens: int | None = None
    image_input: Decimal | None = None
    video_input: Decimal | None = None
    image_output: Decimal | None = None
    audio_output: Decimal | None = None
    grounding_per_1k: Decimal | None = None
    grounding_unit: str | None = None
    as_of: str | None = None
    source: str | None = None
    secondary_source: bool = False
    note: str | None = None
    changes: tuple[tuple[str, ModelPrice], ...] = ()
    tiers: tuple[tuple[str, ModelPrice], ...] = ()
    aliases: tuple[str, ...] = ()
    # The rates as integers over a common power of ten, so that a cost is integer arithmetic
    # and one exact Decimal at the end (cheaper than Decimal arithmetic per record).
    _scaled: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)
    _change_days: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)
    # Scaled image input, video input, image output, audio output and grounding (per 1M
    # units) rates, each None without a rate of its own; None when the model has none.
    _extra: tuple[int | None, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _tier_map: dict[str, ModelPrice] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in _PRICE_FIELDS:
            _check_rate(name, getattr(self, name))
        if self.grounding_unit is not None and self.grounding_unit not in GROUNDING_UNITS:
            raise ConfigurationError(
                f"ModelPrice: grounding_unit must be 'prompt' or 'query', got "
                f"{show(self.grounding_unit)}"
            )
        days = tuple(_day_of("ModelPrice", start) for start, _ in self.changes)
        if list(days) != sorted(set(days)):
            raise ConfigurationError("ModelPrice: changes must be in date order, one per date")
        for _, later in self.changes:
            if not isinstance(later, ModelPrice) or later.changes or later.tiers:
                raise ConfigurationError("ModelPrice: a change is a ModelPrice without changes")
        object.__setattr__(self, "_change_days", days)
        for tier, price in self.tiers:
            if tier not in SERVICE_TIERS or tier == "standard":
                raise ConfigurationError(
                    f"ModelPrice: unknown service tier {show(tier)} (known: "
                    f"{', '.join(sorted(SERVICE_TIERS - {'standard'}))})"
                )
            if not isinstance(price, ModelPrice) or price.tiers:
                raise ConfigurationError("ModelPrice: a tier is a ModelPrice without tiers")
            self._tier_map[tier] = price
        rates = [self._effective(above) for above in (False, True)]
        # Per modality, and grounding per 1M units: None when the model has no rate of its own.
        extra = (
            self.image_input,
            self.video_input,
            self.image_output,
            self.audio_output,
            None if self.grounding_per_1k is None else self.grounding_per_1k * 1000,
        )
        places = max(
            (
                max(0, -r.as_tuple().exponent)  # type: ignore[operator]
                for r in (*rates[0], *rates[1], *(x for x in extra if x is not None))
            ),
            default=0,
        )
        factor = 10**places
        scaled = [places + 6] + [int(r * factor) for pair in rates for r in pair]
        # [11]: a scaled total divisible by this is a whole number of tens of dollars.
        scaled.append(10 ** (places + 7))
        object.__setattr__(self, "_scaled", tuple(scaled))
        object.__setattr__(
            self,
            "_extra",
            None
            if all(x is None for x in extra)
            else tuple(None if x is None else int(x * factor) for x in extra),
        )

    def _effective(self, above: bool) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        """(input, output, cached, audio, cached audio) rates below or above the tier."""
        if above:
            in_rate = self.input_above or self.input
            out_rate = self.output_above or self.output
            cached_rate = self.cached_input_above or self.cached_input or in_rate
            # Audio has no separate tiered price on tiered models.
            return in_rate, out_rate, cached_rate, in_rate, cached_rate
        in_rate = self.input
        cached_rate = self.cached_input if self.cached_input is not None else in_rate
        audio_rate = self.audio_input if self.audio_input is not None else in_rate
        # No cached-audio price: the cached price, or without one (no caching) the audio
        # price, as genai-prices bills it.
        if self.cached_audio_input is not None:
            cached_audio = self.cached_audio_input
        else:
            cached_audio = self.cached_input if self.cached_input is not None else audio_rate
        return in_rate, self.output, cached_rate, audio_rate, cached_audio

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> ModelPrice:
        """Build from a mapping of field names to values (prices as str, int or Decimal)."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(
                f"price of {show(name)} must be a mapping of fields, got {show(data)}"
            )
        known = {f.name for f in fields(cls) if f.init}
        unknown = [k for k in data if not (type(k) is str and k in known)]
        if unknown:
            raise ConfigurationError(
                f"price of {show(name)}: unknown fields {sorted(map(show, unknown))}"
            )
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == "changes":
                kwargs[key] = _changes_of(name, data, value)
            elif key == "tiers":
                kwargs[key] = _tiers_of(name, value)
            elif key == "aliases":
                if not isinstance(value, (list, tuple)) or not all(
                    isinstance(a, str) and a.strip() for a in value
                ):
                    raise ConfigurationError(f"price of {show(name)}: aliases must be names")
                kwargs[key] = tuple(a.strip().lower() for a in value)
            elif key in _PRICE_FIELDS:
                kwargs[key] = _to_price(name, key, value)
            elif key == "grounding_unit":
                if value not in GROUNDING_UNITS:
                    raise ConfigurationError(
                        f"price of {show(name)}: grounding_unit must be 'prompt' or 'query'"
                    )
                kwargs[key] = value
            elif key in ("tier_threshold", "max_prompt_tokens"):
                if value is not None and (type(value) is not int or value <= 0):
                    raise ConfigurationError(f"price of {show(name)}: {key} must be a positive int")
                kwargs[key] = value
            else:
                kwargs[key] = value
        if "input" not in kwargs or "output" not in kwargs:
            raise ConfigurationError(f"price of {show(name)} needs at least 'input' and 'output'")
        if kwargs.get("tier_threshold") and (
            kwargs.get("input_above") is None or kwargs.get("output_above") is None
        ):
            raise ConfigurationError(
                f"price of {show(name)}: tier_threshold needs input_above and output_above"
            )
        return cls(**kwargs)

    def select(self, day: int, tier: str | None = None) -> tuple[ModelPrice | None, str | None]:
        """The price in force on UTC ``day`` (see :func:`utc_day`) for ``tier`` (None or
        ``standard``: the plain prices), and the period's label (``until-DATE`` before the
        first change, ``from-DATE`` after one; None for a price without changes). ``(None,
        None)``: the model has no price for that tier."""
        price: ModelPrice | None = self
        if tier is not None and tier != "standard":
            price = self._tier_map.get(tier)
            if price is None:
                return None, None
        assert price is not None
        changes = price.changes
        if not changes:
            return price, None
        i = bisect_right(price._change_days, day)
        if i == 0:
            return price, f"until-{changes[0][0]}"
        start, later = changes[i - 1]
        return later, f"from-{start}"

    def cost(self, usage: Usage, day: int | None = None, tier: str | None = None) -> Decimal | None:
        """Cost of one request with this price on UTC ``day`` (None: today) in ``tier``, or
        ``None`` when no prompt-size tier (or no price for the service tier) covers it."""
        if self.changes or self.tiers:
            price = self.select(utc_day() if day is None else day, tier)[0]
            return None if price is None else price._cost(usage)
        if tier is not None and tier != "standard":
            return None
        return self._cost(usage)

    def _cost(self, usage: Usage) -> Decimal | None:
        """Cost of one request at this object's own rates."""
        input_tokens = usage.input_tokens or 0
        output_tokens = usage.output_tokens or 0
        if self.max_prompt_tokens is not None and input_tokens > self.max_prompt_tokens:
            return None
        scaled = self._scaled
        # Rates: [base] input, [base+1] output, [base+2] cached, [base+3] audio input,
        # [base+4] cached audio; below the tier base 1, above it base 6.
        base = 6 if self.tier_threshold is not None and input_tokens > self.tier_threshold else 1
        total = output_tokens * scaled[base + 1]
        cached = usage.cached_tokens
        cached_audio = usage.cached_audio_tokens
        audio = usage.audio_input_tokens
        if (
            cached_audio is None
            and audio is None
            and cached is not None
            and 0 < cached <= input_tokens
        ):
            # Text with a cached part (most cached calls): the general case below, shortened.
            total += (input_tokens - cached) * scaled[base] + cached * scaled[base + 2]
            audio = 0
        elif cached or cached_audio or audio:
            cached = max(0, min(cached or 0, input_tokens))
            cached_audio = max(0, min(cached_audio or 0, cached))
            audio = max(0, min((audio or 0) - cached_audio, input_tokens - cached))
            plain = max(0, input_tokens - cached - audio)
            total += (
                plain * scaled[base]
                + audio * scaled[base + 3]
                + (cached - cached_audio) * scaled[base + 2]
                + cached_audio * scaled[base + 4]
            )
        else:  # the common case: plain input only
            cached = audio = 0
            total += max(0, input_tokens) * scaled[base]
        extra = self._extra
        # usage[8:]: the modality and grounding counts, all None on most records (the
        # field order is checked in usage._types).
        if extra is not None and usage[8:] != _NO_COUNTS:
            total += self._extra_cost(usage, extra, scaled, base, input_tokens - cached - audio)
        cost = Decimal(total).scaleb(-scaled[0]).normalize()
        # normalize() writes 30 as 3E+1: keep integral costs in plain notation. Below 10**28
        # normalize() is exact, so "3E+1" means a total ending in more zeros than the scale
        # (an integer test, cheaper than as_tuple()); beyond, it may round: look.
        integral = (
            total % scaled[11] == 0 if total < _EXACT_LIMIT else cost.as_tuple().exponent > 0  # type: ignore[operator]
        )
        return cost.quantize(_ONE) if integral else cost

    def _extra_cost(
        self,
        usage: Usage,
        extra: tuple[int | None, ...],
        scaled: tuple[int, ...],
        base: int,
        room: int,
    ) -> int:
        """What the modality rates and grounding add to a scaled total priced at the text
        rates: (own rate - text rate) per token of the modality, and the grounding fee."""
        add = 0
        image_in, video_in, image_out, audio_out, grounding = extra
        for rate, count in (
            (image_in, usage.image_input_tokens),
            (video_in, usage.video_input_tokens),
        ):
            if rate is not None and count and room > 0:
                n = min(count, room)
                room -= n
                add += n * (rate - scaled[base])
        out_room = usage.output_tokens or 0
        for rate, count in (
            (image_out, usage.image_output_tokens),
            (audio_out, usage.audio_output_tokens),
        ):
            if rate is not None and count and out_room > 0:
                n = min(count, out_room)
                out_room -= n
                add += n * (rate - scaled[base + 1])
        if grounding is not None:
            units = (
                usage.grounded_prompts if self.grounding_unit == "prompt" else usage.search_queries
            )
            if units:
                add += units * grounding
        return add


_PERIOD_FIELDS = (*_PRICE_FIELDS, "tier_threshold", "max_prompt_tokens", "grounding_unit")
#: The fields of one price period, in the order tables show and write them.
FIELD_ORDER = (
    "input",
    "output",
    "cached_input",
    "audio_input",
    "cached_audio_input",
    "tier_threshold",
    "input_above",
    "output_above",
    "cached_input_above",
    "max_prompt_tokens",
    "image_input",
    "video_input",
    "image_output",
    "audio_output",
    "grounding_per_1k",
    "grounding_unit",
)


def _changes_of(
    name: str, base: Mapping[str, Any], value: Any
) -> tuple[tuple[str, ModelPrice], ...]:
    """Parse ``changes``: each names its ``from`` date and the fields that change; the
    others carry over from the period before."""
    if not isinstance(value, (list, tuple)):
        raise ConfigurationError(f"price of {show(name)}: changes must be a list of tables")
    current = {k: base[k] for k in _PERIOD_FIELDS if k in base}
    out = []
    for change in value:
        if not isinstance(change, Mapping) or "from" not in change:
            raise ConfigurationError(f"price of {show(name)}: each change needs 'from'")
        start = change["from"]
        _day_of(name, start)
        rest = {k: v for k, v in change.items() if k != "from"}
        bad = [k for k in rest if k not in _PERIOD_FIELDS]
        if bad:
            raise ConfigurationError(
                f"price of {show(name)}: a change may set only prices, got {sorted(map(show, bad))}"
            )
        current = {**current, **rest}
        iso = start.isoformat() if isinstance(start, _dt.date) else str(start)
        out.append((iso, ModelPrice.from_mapping(f"{name} from {iso}", current)))
    return tuple(out)


def _tiers_of(name: str, value: Any) -> tuple[tuple[str, ModelPrice], ...]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"price of {show(name)}: tiers must be a table of tiers")
    out = []
    for tier, data in value.items():
        if tier not in SERVICE_TIERS or tier == "standard":
            raise ConfigurationError(
                f"price of {show(name)}: unknown service tier {show(tier)} (known: "
                f"{', '.join(sorted(SERVICE_TIERS - {'standard'}))})"
            )
        if isinstance(data, Mapping) and "tiers" in data:
            raise ConfigurationError(f"price of {show(name)}: a tier cannot have tiers")
        out.append((tier, ModelPrice.from_mapping(f"{name} ({tier})", data)))
    return tuple(out)


def _to_price(model: str, key: str, value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        if isinstance(value, float):
            value = repr(float(value))
        price = Decimal(value) if type(value) is not Decimal else value
    except Exception:  # InvalidOperation, TypeError, a hostile __str__ / __float__
        raise ConfigurationError(
            f"price of {show(model)}: {key}={show(value)} is not a number"
        ) from None
    _check_rate(key, price, model)
    return price


#: A price per 1M tokens above this is a typo (the dearest Gemini model costs $120 per 1M
#: output tokens), and more decimals than this are noise; both bounds keep the integer
#: arithmetic of :meth:`ModelPrice.cost` small and every cost inside Decimal's precision.
MAX_PRICE = Decimal(1_000_000)
MAX_PRICE_DECIMALS = 18


def _check_rate(key: str, price: Any, model: Any = None) -> None:
    if price is None:
        return
    where = f"price of {show(model)}: " if model is not None else "ModelPrice: "
    if not isinstance(price, Decimal):
        raise ConfigurationError(f"{where}{key} must be a Decimal, got {show(price)}")
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        raise ConfigurationError(
            f"{where}{key}={show(price)} must be between 0 and {MAX_PRICE} USD per 1M tokens"
        )
    if price.normalize().as_tuple().exponent < -MAX_PRICE_DECIMALS:  # type: ignore[operator]
        raise ConfigurationError(
            f"{where}{key}={show(price)} has more than {MAX_PRICE_DECIMALS} decimals"
        )


_PREFIX = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/)?(?:models/)?")
_SUFFIXES = (
    re.compile(r"-latest$"),
    re.compile(r"-\d{3}$"),
    re.compile(r"(-preview)-\d{2}-\d{2,4}$"),
    re.compile(r"-preview$"),
)


def normalize_model_name(model: str) -> list[str]:
    """Return the candidate table keys for a model name, most specific first.

    Strips ``models/`` (and Vertex ``publishers/google/models/``) prefixes, then
    ``-latest``, ``-001``, ``-preview-MM-DD`` (to ``-preview``) and finally ``-preview``.
    """
    name = _PREFIX.sub("", model.strip().lower())
    out = [name]
    for pattern in _SUFFIXES:
        new = pattern.sub(r"\1" if pattern.groups else "", name)
        if new != name:
            name = new
            out.append(name)
    return out


def _model_key(name: Any) -> str:
    if not isinstance(name, str) or not str.strip(name):
        raise ConfigurationError(f"a model name must be a non-empty string, got {show(name)}")
    return str.strip(name).lower()


class PricingTable:
    """A dated price table: model name -> :class:`ModelPrice`.

    .. versionadded:: 0.1.0
    """

    _default: PricingTable | None = None

    def __init__(
        self,
        models: Mapping[str, ModelPrice | Mapping[str, Any]],
        version: str,
        *,
        date: str | None = None,
    ) -> None:
        if not isinstance(version, str) or not version:
            raise ConfigurationError("a PricingTable needs a non-empty version string")
        if not isinstance(models, Mapping):
            raise ConfigurationError(
                f"a PricingTable needs a mapping of models, got {show(models)}"
            )
        if date is not None:
            _day_of("the table", date)
        self.version = version
        #: The day the catalogue was compiled and reviewed (ISO date), if known.
        self.date = date
        self.models: dict[str, ModelPrice] = {}
        for name, price in models.items():
            key = _model_key(name)
            self.models[key] = (
                price if isinstance(price, ModelPrice) else ModelPrice.from_mapping(name, price)
            )
        self._aliases: dict[str, ModelPrice] = {}
        for price in self.models.values():
            for alias in price.aliases:
                if alias not in self.models:
                    self._aliases.setdefault(alias, price)
        self._resolved: dict[str, ModelPrice | None] = {}
        # (model, provider, tier, UTC day) -> the price period and version quote() used.
        self._periods: dict[tuple[str, str | None, str | None, int], tuple[ModelPrice, str]] = {}
        # Providers with prices of their own (``vertex_ai/MODEL`` keys), e.g. {"vertex_ai"}.
        self._providers = frozenset(k.split("/", 1)[0] for k in self.models if "/" in k)
        self._own: dict[str, object] = {}  # priced_model: a name's own key, or None
        self._versions: dict[str | None, str] = {None: version}
        self._replace = False  # a file's ``replace = true`` (see load)
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> PricingTable:
        """The packaged table (loaded once)."""
        if cls._default is None:
            text = resources.files(__package__).joinpath("data/gemini.toml").read_text("utf-8")
            cls._default = cls._from_document(tomllib.loads(text), "packaged gemini.toml")
        return cls._default

    @classmethod
    def from_file(cls, path: str | Path) -> PricingTable:
        """Load a table from a TOML or JSON file shaped like the packaged one."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except (OSError, ValueError) as exc:  # ValueError: a name the OS cannot take
            raise ConfigurationError(f"cannot read price table {p}: {exc}") from None
        try:
            doc = json.loads(raw) if p.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"price table {p} is not valid: {exc}") from None
        return cls._from_document(doc, str(p))

    @classmethod
    def load(cls, path: str | Path) -> PricingTable:
        """A user's table file over the packaged one: its models added to the packaged
        table, or replacing the entries of the same name (each whole: prices, changes,
        tiers); version ``PACKAGED+FILE``. A file with ``replace = true`` at the top is the
        whole table instead (what :meth:`from_file` always gives)."""
        table = cls.from_file(path)
        if table._replace:
            return table
        base = cls.default()
        return base.with_overrides(table.models, version=f"{base.version}+{table.version}")

    @classmethod
    def _from_document(cls, doc: Mapping[str, Any], where: str) -> PricingTable:
        models = doc.get("models")
        version = doc.get("version")
        if not isinstance(models, Mapping) or not isinstance(version, str):
            raise ConfigurationError(f"price table {where} needs 'version' and [models.*]")
        date = doc.get("date")
        if isinstance(date, _dt.date):
            date = date.isoformat()
        if date is not None and not isinstance(date, str):
            raise ConfigurationError(f"price table {where}: 'date' must be a date (YYYY-MM-DD)")
        replace_all = doc.get("replace", False)
        if not isinstance(replace_all, bool):
            raise ConfigurationError(f"price table {where}: 'replace' must be true or false")
        table = cls(models, version, date=date)
        table._replace = replace_all
        return table

    def age_days(self, today: _dt.date | None = None) -> int | None:
        """Days since the table's ``date`` (UTC today by default); None when undated."""
        if self.date is None:
            return None
        now = today or _dt.datetime.now(_dt.timezone.utc).date()
        return (now - _dt.date.fromisoformat(self.date)).days

    def with_overrides(
        self, models: Mapping[str, ModelPrice | Mapping[str, Any]], version: str | None = None
    ) -> PricingTable:
        """Return a new table with ``models`` added or replaced.

        A mapping for a model already in the table updates only the fields it names.
        The new table's version is ``version`` or ``"<old>+custom"``.
        """
        merged: dict[str, ModelPrice | Mapping[str, Any]] = dict(self.models)
        for name, price in models.items():
            key = _model_key(name)
            if not isinstance(price, (ModelPrice, Mapping)):
                raise ConfigurationError(
                    f"price of {show(name)} must be a mapping of fields, got {show(price)}"
                )
            if isinstance(price, ModelPrice):
                merged[key] = price
            elif key in self.models:
                base = self.models[key]
                updates = ModelPrice.from_mapping(
                    name, {"input": base.input, "output": base.output, **price}
                )
                merged[key] = replace(base, **{k: getattr(updates, k) for k in price})
            else:
                merged[key] = ModelPrice.from_mapping(name, price)
        return PricingTable(merged, version or f"{self.version}+custom", date=self.date)

    def resolve(self, model: str) -> ModelPrice | None:
        """The price for ``model`` after name normalisation, or ``None``."""
        if type(model) is not str:
            if not isinstance(model, str):  # e.g. from a user's extractor
                return None
            model = str.__str__(model)  # a subclass's methods could raise
        try:
            return self._resolved[model]
        except KeyError:
            pass
        found = None
        for candidate in normalize_model_name(model):
            found = self.models.get(candidate) or self._aliases.get(candidate)
            if found is not None:
                break
        with self._lock:
            self._resolved[model] = found
        return found

    def priced_model(self, requested: str | None, answered: str | None) -> str | None:
        """The model to price a request at: the requested one, or the one the answer names
        when the requested name has no price of its own (unknown, or only an alias of a
        moving name such as ``gemini-flash-latest``) and the answer's has."""
        if requested and answered and requested != answered:
            own = self._own.get(requested, _UNSET)
            if own is _UNSET:
                own = next((c for c in normalize_model_name(requested) if c in self.models), None)
                with self._lock:
                    self._own[requested] = own
            if own is None and self.resolve(answered) is not None:
                return answered
        return requested or answered

    def cost(
        self,
        model: str | None,
        usage: Usage,
        *,
        day: int | None = None,
        tier: str | None = None,
        provider: str | None = None,
    ) -> Decimal | None:
        """Cost in USD of a request, or ``None`` for an unknown model (warned once) or
        an unknown input count (the API did not report the prompt's tokens).

        Cached input is billed at the cached rate (never twice), thinking at the output rate,
        tool-use prompt tokens as input, audio input at the audio rate, and the tier is
        chosen by the prompt size and applied to the whole request. ``day``: the UTC day the
        request started (:func:`utc_day`; None: today), which chooses the price period;
        ``tier``: its service tier (None: standard); ``provider``: see :meth:`quote`.
        """
        return self.quote(model, usage, day=day, tier=tier, provider=provider)[0]

    def quote(
        self,
        model: str | None,
        usage: Usage,
        *,
        day: int | None = None,
        tier: str | None = None,
        operation: str = "generate_content",
        provider: str | None = None,
    ) -> tuple[Decimal | None, str | None]:
        """``(cost, pricing version)`` of one request: :meth:`request_cost`, and the name of
        the catalogue and the price period used (``VERSION`` or ``VERSION/from-DATE``,
        ``VERSION/until-DATE``); the version is None when the cost is.

        ``provider``: ``vertex_ai`` for a Vertex AI request, ``gemini`` (or None) for the
        Gemini API. A table entry named ``vertex_ai/MODEL`` prices MODEL on Vertex AI where
        its price differs; without one, both are priced alike."""
        # No input count (none at all, or not the input's): the cost is unknown, not
        # output-only.
        if usage.input_tokens is None:
            return None, None
        if operation in _NOT_BILLED_AT_REQUEST:
            return _ZERO, self.version
        if not model:
            self._warn_once("", "a call with token usage has no model name: cost not computed")
            return None, None
        if day is None:
            day = utc_day()
        key = (model, provider, tier, day)
        hit = self._periods.get(key) if type(model) is str and type(day) is int else None
        if hit is not None:  # the price and period this model had on that day, found before
            result = hit[0]._cost(usage)
            if result is not None:
                return result, hit[1]
        found = None
        if provider is not None and provider in self._providers:
            found = self.resolve(f"{provider}/{_PREFIX.sub('', model.strip().lower())}")
        if found is None:
            found = self.resolve(model)
        if found is None:
            self._warn_once(
                model,
                f"no price for model {model!r} in pricing table {self.version!r}: cost left "
                "empty (add it with configure(pricing=...))",
            )
            return None, None
        if not found.changes and not found.tiers and (tier is None or tier == "standard"):
            price: ModelPrice | None = found
            period = None
        else:
            price, period = found.select(day, tier)
        if price is None:
            if tier == "provisioned":
                message = (
                    f"{model!r} served on provisioned throughput, which has no per-token price "
                    "(a reserved capacity, billed by the unit): cost left empty (configure a "
                    "'provisioned' tier for the model to price it)"
                )
            else:
                message = (
                    f"no {tier} service tier price for model {model!r} in pricing table "
                    f"{self.version!r}: cost left empty (add tiers.{tier} to the model's price)"
                )
            self._warn_once(f"{model}/{tier}", message)
            return None, None
        result = price._cost(usage)
        if result is None:
            self._warn_once(
                f"{model}/max",
                f"prompt of {usage.input_tokens} tokens is beyond the priced range of "
                f"{model!r}: cost left empty",
            )
            return None, None
        version = self._versions.get(period)
        if version is None:
            version = self._versions[period] = f"{self.version}/{period}"
        if type(model) is str and type(day) is int:
            periods = self._periods
            with self._lock:
                if len(periods) >= _MAX_PERIODS:
                    periods.clear()
                periods[key] = (price, version)
        return result, version

    def request_cost(
        self,
        operation: str,
        model: str | None,
        usage: Usage,
        *,
        day: int | None = None,
        tier: str | None = None,
        provider: str | None = None,
    ) -> Decimal | None:
        """Cost in USD of one captured request of ``operation`` (``generate_content``,
        ``embed_content``, ``caches.create``...): :meth:`cost`, but for the billing rules
        that depend on what the request does.

        ``embed_content``: as :meth:`cost`: an embedding's usage is its input tokens (0
        output), billed at the embedding model's input rate.

        ``caches.create``: 0 when the cache's token count is known (None otherwise). The
        Gemini API bills an explicit context cache in two ways (pricing page and caching
        guide, see pricing-sources.md): its tokens at the *cached-input* rate each time a
        later request reads them (counted on that request, whose usage reports them as
        ``cached_content_token_count``), and storage per 1M tokens per hour of its TTL
        (4.50 for the Pro models, 1.00 for the Flash family). Creating the cache bills no
        tokens by itself, so the creation request's cost is 0, its tokens recorded as the
        request's input; storage is not a per-request cost (it depends on how long the cache
        lives) and is left out here. Vertex AI's rules differ and are not in this table.
        """
        return self.quote(model, usage, day=day, tier=tier, operation=operation, provider=provider)[
            0
        ]

    def _warn_once(self, key: str, message: str) -> None:
        if key in self._warned:
            return
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        _logger.warning(message)
