"""Helpers of the command-line tests: the real ``vividly-trace`` entry point, a data set."""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from tests.factories import make_record
from vividly_trace import PromptExecution

UTC = dt.timezone.utc
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def entry_point() -> Path:
    """The console script installed next to this interpreter."""
    script = Path(sys.executable).parent / "vividly-trace"
    assert script.exists(), f"{script} is missing: pip install -e '.[dev]'"
    return script


def cli_env(**extra: str) -> dict[str, str]:
    """A clean environment: no terminal width, no vividly_trace or Gemini settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIVIDLY_TRACE_", "GEMINI_", "GOOGLE_API"))
        and k not in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR")
    }
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``vividly-trace ARGS`` through the real entry point (no terminal)."""
    return subprocess.run(
        [str(entry_point()), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else cli_env(),
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def make_records(
    n: int, when: dt.datetime, seed: int = 11, prefix: str = "0191", span_s: float = 3600
) -> list[PromptExecution]:
    """``n`` records in the ``span_s`` seconds before ``when``: nlu v1/A vs v2/B, clarify."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        choices = [("nlu", "v1", "A", 0.25), ("nlu", "v2", "B", 0.02), ("clarify", None, None, 0.1)]
        # v1/A runs first, so it is the A/B baseline.
        template, version, group, failure = choices[0] if i == 0 else rng.choice(choices)
        failed = rng.random() < failure
        inp, outp = rng.randint(50, 500), rng.randint(10, 200)
        out.append(
            make_record(
                template,
                execution_id=f"{prefix}{i:04x}-0000-7000-8000-{rng.getrandbits(48):012x}",
                template_version=version,
                ab_test_group=group,
                success=not failed,
                response_time_ms=rng.lognormvariate(3.5, 0.4),
                started_at=when - dt.timedelta(seconds=span_s * (n - i) / n),
                model="gemini-2.5-flash",
                input_token_count=inp,
                output_token_count=outp,
                total_token_count=inp + outp,
                cost_usd=(inp * Decimal("0.075") + outp * Decimal("0.30")) / 1_000_000,
                pricing_version="original-design",
                error_type="ServerError" if failed else None,
                error_message=f"500 INTERNAL: request {rng.randint(1, 10**6)} failed"
                if failed
                else None,
                http_status=500 if failed else None,
            )
        )
    return out
