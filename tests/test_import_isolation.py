"""``import vividly_trace`` loads only the core; optional packages are needed only by the
sinks that use them, which then name the ``pip install`` command."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vividly_trace
import vividly_trace.sinks

ROOT = Path(__file__).resolve().parents[1]

#: Top-level packages the core must not load. ``google`` itself is a namespace package that
#: a ``.pth`` file of google-generativeai imports at start-up, so for it only submodules count.
HEAVY = ("sqlalchemy", "opentelemetry", "psycopg", "click", "rich", "alembic", "grpc")

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = {blocked!r}

    def _blocked(name):
        for b in BLOCKED:
            if name == b or name.startswith(b + "."):
                return True
        return False

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if _blocked(name):
                raise ModuleNotFoundError(f"blocked by the test: {{name}}", name=name)
            return None

    for _name in [m for m in sys.modules if _blocked(m)]:
        del sys.modules[_name]
    sys.meta_path.insert(0, Blocker())
    # As for a package that is not installed, importlib.util.find_spec() answers None.
    for _name in BLOCKED:
        sys.modules[_name] = None
    """
)


def run(code: str, blocked: tuple[str, ...] = (), tmp: Path | None = None) -> dict:
    """Run ``code`` in a fresh interpreter (after installing the blocker); it prints JSON."""
    prelude = BLOCKER.format(blocked=blocked) if blocked else ""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIVIDLY_TRACE_")}
    if tmp is not None:
        env["VIVIDLY_TRACE_SPOOL_DIR"] = str(tmp / "spool")
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=str(tmp or ROOT),
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def heavy_loaded(modules: list[str]) -> list[str]:
    bad = []
    for m in modules:
        top = m.split(".")[0]
        if top in HEAVY or (top == "google" and m != "google"):
            bad.append(m)
    return sorted(bad)


class TestImportIsolation:
    def test_import_loads_no_optional_package(self, tmp_path: Path) -> None:
        """import vividly_trace (and .sinks) loads no SQLAlchemy, Google, OTel, psycopg, CLI."""
        out = run(
            """
            import json, sys
            before = set(sys.modules)
            import vividly_trace, vividly_trace.sinks
            from vividly_trace.sinks import JSONLinesSink, MemorySink
            print(json.dumps({"before": sorted(before), "after": sorted(sys.modules)}))
            """,
            tmp=tmp_path,
        )
        # What the interpreter loaded before us is not ours to judge ...
        assert heavy_loaded(out["before"]) == []
        # ... and importing the package adds none of them.
        assert heavy_loaded(out["after"]) == []

    def test_import_defers_what_configure_sets_up(self, tmp_path: Path) -> None:
        """Client capture, content capture and difflib load when first needed, not at
        ``import vividly_trace``; configure() (capture on by default) then loads capture,
        and reset() takes its wrappers off again."""
        out = run(
            """
            import json, sys
            import vividly_trace
            from vividly_trace.sinks import MemorySink
            deferred = ("vividly_trace.integrations", "vividly_trace._content", "difflib")
            at_import = [m for m in deferred if m in sys.modules]
            vividly_trace.configure(sinks=[MemorySink()], spool_dir=False)
            from vividly_trace import integrations
            installed = integrations.installed()
            vividly_trace.reset()
            print(json.dumps({"at_import": at_import, "installed": installed,
                              "after_reset": integrations.installed()}))
            """,
            tmp=tmp_path,
        )
        assert out == {"at_import": [], "installed": True, "after_reset": False}

    def test_context_scores_and_prices_load_on_first_use(self, tmp_path: Path) -> None:
        """``vividly_trace.context``, ``Scope``, ``score``, ``Score``, ``ModelPrice``,
        ``PricingTable`` (and ``vividly_trace.pricing``), and the extractors of responses that
        are not ``generateContent``'s are imported when first needed (PEP 562), yet work as
        plain names: ``from vividly_trace import ...``, ``import *``, ``dir()``; a logged
        call records its context without them."""
        out = run(
            """
            import json, sys
            import vividly_trace
            lazy = ("vividly_trace._scope", "vividly_trace._score", "vividly_trace.pricing",
                    "vividly_trace.usage.interactions", "vividly_trace.usage.caches",
                    "vividly_trace.usage.embeddings")
            at_import = [m for m in lazy if m in sys.modules]
            names = ("context", "Scope", "score", "Score", "ModelPrice", "PricingTable")
            listed = all(n in dir(vividly_trace) for n in names)
            submodule = vividly_trace.pricing.PricingTable is vividly_trace.PricingTable
            from vividly_trace.usage import extract, interaction_failure
            dict_usage = extract({"input_tokens": 4, "output_tokens": 1}).usage.total_tokens
            from vividly_trace import context, score
            namespace = {}
            exec("from vividly_trace import *", namespace)
            from vividly_trace.sinks import MemorySink
            sink = MemorySink()
            vividly_trace.configure(sinks=[sink], spool_dir=False, sync=True)
            with context(user_id="u-1"):
                with vividly_trace.logged_prompt("ctx") as call:
                    pass
            scored = score(call.execution_id, "helpful", True)
            vividly_trace.flush()
            try:
                vividly_trace.no_such_name
                missing = None
            except AttributeError as exc:
                missing = str(exc)
            print(json.dumps({
                "at_import": at_import, "listed": listed, "submodule": submodule,
                "dict_usage": dict_usage, "failure": interaction_failure("cancelled")[0],
                "star": sorted(set(vividly_trace.__all__) - set(namespace)),
                "same": namespace["Scope"] is vividly_trace.Scope,
                "user": sink.records[0].user_id, "scored": scored,
                "scores": [s.name for s in sink.scores], "missing": missing,
            }))
            """,
            tmp=tmp_path,
        )
        assert out == {
            "at_import": [],
            "listed": True,
            "submodule": True,
            "dict_usage": 5,
            "failure": "InteractionCancelled",
            "star": [],
            "same": True,
            "user": "u-1",
            "scored": True,
            "scores": ["helpful"],
            "missing": "module 'vividly_trace' has no attribute 'no_such_name'",
        }

    def test_recording_loads_no_optional_package(self, tmp_path: Path) -> None:
        """configure() with core sinks, decorated calls and flush() stay on the core too."""
        out = run(
            """
            import json, sys
            import vividly_trace
            from vividly_trace.sinks import JSONLinesSink, MemorySink
            sink = MemorySink()
            vividly_trace.configure(sinks=[sink, JSONLinesSink("r.jsonl")])

            @vividly_trace.logged_prompt("iso", model="gemini-2.5-flash")
            def f():
                return {"input_tokens": 10, "output_tokens": 5}

            f()
            vividly_trace.log_prompt_execution("iso", True, 1.0)
            assert vividly_trace.flush(5)
            print(json.dumps({"n": len(sink.records), "mods": sorted(sys.modules)}))
            """,
            tmp=tmp_path,
        )
        assert out["n"] == 2
        assert heavy_loaded(out["mods"]) == []

    def test_works_with_every_optional_package_blocked(self, tmp_path: Path) -> None:
        """With the optional packages unimportable, the core still imports and records."""
        out = run(
            """
            import json
            import vividly_trace
            from vividly_trace.sinks import MemorySink
            sink = MemorySink()
            vividly_trace.configure(sinks=[sink], sync=True)

            @vividly_trace.logged_prompt("blocked", model="gemini-2.5-flash")
            def f(x):
                return {"input_tokens": x, "output_tokens": 1}

            assert f(7) == {"input_tokens": 7, "output_tokens": 1}
            with vividly_trace.logged_prompt("blocked") as call:
                call.set_usage(input_tokens=3, output_tokens=4)
            eid = vividly_trace.log_prompt_execution("blocked", True, 2.0)
            r = sink.records
            unimportable = []
            for name in ("sqlalchemy", "opentelemetry.trace", "google.genai", "psycopg"):
                try:
                    __import__(name)
                except ImportError:
                    unimportable.append(name)
            print(json.dumps({
                "unimportable": len(unimportable),
                "n": len(r),
                "totals": [x.total_token_count for x in r],
                "cost": str(r[0].cost_usd),
                "eid": r[2].execution_id == eid,
            }))
            """,
            blocked=(
                *HEAVY,
                "google.genai",
                "google.generativeai",
                "google.cloud",
                "google.api_core",
                "google.protobuf",
                "google.auth",
            ),
            tmp=tmp_path,
        )
        assert out == {
            "unimportable": 4,  # the blocker works
            "n": 3,
            "totals": [8, 7, None],
            "cost": "0.0000046",
            "eid": True,
        }


def _module_present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


MISSING_EXTRA_CASES = [
    # (sink, its module, what to block, how to build it)
    (
        "SQLSink",
        "vividly_trace.sinks.sql",
        ("psycopg",),
        "SQLSink('postgresql+psycopg://postgres@127.0.0.1:1/postgres')",
    ),
    (
        "CloudLoggingSink",
        "vividly_trace.sinks.cloud_logging",
        ("google.cloud", "google.api_core", "google.auth"),
        "CloudLoggingSink(project='p')",
    ),
    (
        "OpenTelemetrySink",
        "vividly_trace.sinks.otel",
        ("opentelemetry",),
        "OpenTelemetrySink()",
    ),
]


class TestMissingExtras:
    @pytest.mark.parametrize(
        ("sink", "module", "blocked", "build"),
        MISSING_EXTRA_CASES,
        ids=[c[0] for c in MISSING_EXTRA_CASES],
    )
    def test_building_a_sink_without_its_extra_names_the_pip_command(
        self, tmp_path: Path, sink: str, module: str, blocked: tuple[str, ...], build: str
    ) -> None:
        """Building the sink raises ImportError whose message says what to pip install."""
        if not _module_present(module):
            pytest.skip(f"module not present: {module}")
        out = run(
            f"""
            import json
            import vividly_trace.sinks
            from vividly_trace.sinks import {sink}
            try:
                {build}
            except ImportError as exc:
                print(json.dumps({{"import_error": True, "message": str(exc)}}))
            except Exception as exc:
                print(json.dumps({{"import_error": False, "message": repr(exc)}}))
            else:
                print(json.dumps({{"import_error": False, "message": "built"}}))
            """,
            blocked=blocked,
            tmp=tmp_path,
        )
        assert out["import_error"], out["message"]
        assert "pip install 'vividly-trace[" in out["message"]

    def test_sqlsink_without_sqlalchemy_is_an_import_error(self, tmp_path: Path) -> None:
        """SQLAlchemy is a required dependency imported lazily: without it, SQLSink is an
        ImportError (and importing the package still works)."""
        if not _module_present("vividly_trace.sinks.sql"):
            pytest.skip("module not present: vividly_trace.sinks.sql")
        out = run(
            """
            import json
            import vividly_trace, vividly_trace.sinks
            try:
                vividly_trace.sinks.SQLSink("sqlite://")
            except ImportError as exc:
                print(json.dumps({"import_error": True, "message": str(exc)}))
            else:
                print(json.dumps({"import_error": False, "message": "built"}))
            """,
            blocked=("sqlalchemy", "alembic"),
            tmp=tmp_path,
        )
        assert out["import_error"], out["message"]


class TestPublicSurface:
    def test_all_is_sorted_and_every_name_exists(self) -> None:
        """vividly_trace.__all__ is sorted, unique, and each name resolves."""
        names = vividly_trace.__all__
        assert list(names) == sorted(names)
        assert len(set(names)) == len(names)
        for name in names:
            assert hasattr(vividly_trace, name), name

    def test_fixed_public_names_are_exported(self) -> None:
        """The names design.md fixes are all in __all__."""
        fixed = {
            "logged_prompt",
            "log_prompt_execution",
            "calculate_gemini_cost",
            "configure",
            "flush",
            "shutdown",
            "stats",
            "PromptExecution",
        }
        assert fixed <= set(vividly_trace.__all__)

    def test_sinks_all_is_sorted_and_core_sinks_exist(self) -> None:
        """vividly_trace.sinks.__all__ is sorted and lists every sink design.md names."""
        names = vividly_trace.sinks.__all__
        assert list(names) == sorted(names)
        assert {
            "SQLSink",
            "CloudLoggingSink",
            "StructuredStdoutSink",
            "JSONLinesSink",
            "MemorySink",
            "OpenTelemetrySink",
        } <= set(names)
        for name in ("JSONLinesSink", "MemorySink", "Sink", "sink_from_spec"):
            assert hasattr(vividly_trace.sinks, name)
