"""``python -m vividly_trace.cli``: the same as the ``vividly-trace`` console script."""

from __future__ import annotations

from . import main

if __name__ == "__main__":
    main()
