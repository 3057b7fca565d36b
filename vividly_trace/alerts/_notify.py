"""Notifications: a webhook (Slack-compatible JSON) and the ``vividly_trace`` log.

The webhook gets ``{"text": message, "alert": {...fields...}}`` by POST (urllib, with a
timeout and a few tries with backoff). Its URL is a secret (Slack's carries the token in
its path): logs show only its scheme and host (:func:`mask_webhook`).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..exceptions import ConfigurationError

__all__ = ["DeliveryError", "check_webhook", "mask_webhook", "post_webhook"]


class DeliveryError(Exception):
    """The webhook did not answer 2xx (the message never holds the URL)."""


def check_webhook(url: str) -> str:
    """The URL, if it is an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"not a webhook URL: {mask_webhook(str(url))}")
    return url


def mask_webhook(url: str) -> str:
    """``https://hooks.slack.com/***``: scheme and host only."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "***"
    if not parts.hostname:
        return "***"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/***"


def post_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    timeout_s: float = 10.0,
    tries: int = 3,
    backoff_s: float = 0.5,
) -> None:
    """POST ``payload`` as JSON; retry 5xx, 408, 429 and network errors with backoff.

    Raises:
        DeliveryError: no 2xx after ``tries`` attempts (or a 4xx that retrying cannot fix).
    """
    body = json.dumps(payload, default=str).encode("utf-8")
    last = "no attempt"
    for attempt in range(max(1, tries)):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"{type(reason).__name__}: {reason}".replace(url, mask_webhook(url))
            continue
        if 200 <= status < 300:
            return
        last = f"HTTP {status}"
        if 400 <= status < 500 and status not in (408, 429):
            break
    raise DeliveryError(f"webhook {mask_webhook(url)}: {last}")
