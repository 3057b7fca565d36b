"""The ``vividly-trace`` command line.

Each command group lives in its own module and registers itself on :data:`main`; this module
only builds the group and loads them. Exit codes: 0 success, 1 a command's check failed,
2 usage or environment error (bad URL, missing table, missing extra), with one clear line.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["main"]

_COMMAND_MODULES = (
    "vividly_trace.cli.pricing_cmd",
    "vividly_trace.cli.db_cmd",
    "vividly_trace.cli.report_cmd",
    "vividly_trace.cli.ab_cmd",
    "vividly_trace.cli.demo_cmd",
    "vividly_trace.cli.alerts_cmd",
    "vividly_trace.cli.serve_cmd",
    "vividly_trace.cli.prompts_cmd",
)


def _build() -> Any:
    try:
        import click
    except ImportError:
        sys.stderr.write(
            "vividly-trace: the command line needs the 'cli' extra: "
            "pip install 'vividly-trace[cli]'\n"
        )
        raise SystemExit(2) from None

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="vividly-trace")
    def cli() -> None:
        """Know what every Gemini prompt costs, how fast it is, how often it fails."""

    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # command group not shipped in this build
            raise
        module.register(cli)
    return cli


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``vividly-trace`` console script."""
    cli = _build()
    return cli.main(args=argv, prog_name="vividly-trace")
