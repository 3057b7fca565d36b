"""Sticky A/B assignment: the same unit always lands in the same variant, with no state."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from ._jsonsafe import show
from .exceptions import ConfigurationError

__all__ = ["choose_variant", "validated_weights"]

_SCALE = float(2**64)


def validated_weights(weights: Mapping[str, float]) -> list[tuple[str, float]]:
    """``weights`` as (variant, weight) pairs in name order, checked as
    :func:`choose_variant` checks them (also for ``prompts.rollout``)."""
    try:
        pairs = list(weights.items()) if isinstance(weights, Mapping) else []
    except Exception:  # a mapping whose access raises
        pairs = []
    if not pairs:
        raise ConfigurationError(
            "choose_variant(): weights must be a non-empty mapping of variant -> weight, "
            f"got {show(weights)}"
        )
    items: list[tuple[str, float]] = []
    for variant, weight in pairs:
        if not isinstance(variant, str) or not str.__len__(variant):
            raise ConfigurationError(
                f"choose_variant(): variant names must be non-empty strings, got {show(variant)}"
            )
        variant = str.__str__(variant)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigurationError(
                f"choose_variant(): the weight of {variant!r} must be a number, got {show(weight)}"
            )
        try:
            value = (
                float.__float__(weight)
                if isinstance(weight, float)
                else float(int.__index__(weight))
            )
        except (OverflowError, TypeError, ValueError):
            value = math.inf
        if not math.isfinite(value) or value < 0:
            raise ConfigurationError(
                f"choose_variant(): the weight of {variant!r} must be finite and >= 0, "
                f"got {show(weight)}"
            )
        items.append((variant, value))
    if sum(w for _, w in items) <= 0:
        raise ConfigurationError("choose_variant(): at least one weight must be positive")
    # Sorted by name: {"A": 1, "B": 1} and {"B": 1, "A": 1} assign every unit the same way.
    items.sort(key=lambda item: item[0])
    return items


def choose_variant(template_key: str, unit_id: str | int, weights: Mapping[str, float]) -> str:
    """Pick the A/B variant of ``unit_id`` (a user, session, tenant...) for a template.

    The choice is a pure function of its arguments: the first 64 bits of
    ``sha256(template_key + "\\0" + str(unit_id))``, read as a number in ``[0, 1)``, fall in
    one of the variants' slices of ``[0, 1)``, each as wide as its share of the total weight
    (variants taken in name order). So the same unit gets the same variant on every call,
    in every process and after restarts, without storing anything; over many units the
    shares match the weights; and the split of one template is independent of another's
    (the template key is part of the hash).

    Changing the weights moves only the units between the old and the new slice boundaries:
    going from ``{"A": 0.9, "B": 0.1}`` to ``{"A": 0.8, "B": 0.2}`` keeps every B unit in B
    and moves a ninth of the A units to B.

    ::

        variant = choose_variant("nlu_extraction", user.id, {"A": 0.9, "B": 0.1})

    Args:
        template_key: the template under test (part of the hash).
        unit_id: what must stay in one variant, usually a user id.
        weights: variant name -> weight (any non-negative numbers, not necessarily summing
            to 1; a weight of 0 turns a variant off).

    Returns:
        The chosen variant name.

    Raises:
        ConfigurationError: empty weights, a non-string or empty variant name, a negative,
            non-finite or non-numeric weight, or all weights zero.

    .. versionadded:: 0.1.0
    """
    if not isinstance(template_key, str) or not str.__len__(template_key):
        raise ConfigurationError(
            f"choose_variant(): template_key must be a non-empty string, got {show(template_key)}"
        )
    if isinstance(unit_id, bool) or not isinstance(unit_id, (str, int)):
        raise ConfigurationError(
            f"choose_variant(): unit_id must be a string or an int, got {show(unit_id)}"
        )
    # Plain copies: a str or int subclass must not change (or break) the hash.
    key = str.__str__(template_key)
    try:
        unit = str.__str__(unit_id) if isinstance(unit_id, str) else int.__repr__(unit_id)
    except ValueError:  # an int beyond the int-to-str limit
        raise ConfigurationError("choose_variant(): unit_id is too large an int") from None
    items = validated_weights(weights)
    # surrogatepass: a key holding a lone surrogate hashes too (valid text is unchanged).
    digest = hashlib.sha256(f"{key}\0{unit}".encode("utf-8", "surrogatepass")).digest()
    point = int.from_bytes(digest[:8], "big") / _SCALE * sum(w for _, w in items)
    cumulative = 0.0
    for variant, weight in items:
        cumulative += weight
        if point < cumulative and weight > 0:
            return variant
    # Floating-point rounding can leave ``point`` a hair above the last boundary.
    return next(v for v, w in reversed(items) if w > 0)
