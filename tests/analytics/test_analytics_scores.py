"""``scores()``: count, mean and spread per template, name and source; categories counted;
scores without their execution left out (and counted by ``unmatched_scores``)."""

from __future__ import annotations

import statistics

import pytest

import vividly_trace
from vividly_trace import log_prompt_execution, score
from vividly_trace.analytics import StoreSchemaError, scores, unmatched_scores
from vividly_trace.sinks import SQLSink
from vividly_trace.sinks.sql import migrate

STARS = [5, 4, 4, 2, 5, 3]


def _scored_store(url: str) -> None:
    vividly_trace.configure(sinks=[SQLSink(url)], spool_dir=False)
    for i, stars in enumerate(STARS):
        eid = log_prompt_execution("support_reply", True, 50.0)
        assert eid is not None
        score(eid, "stars", stars)
        score(eid, "resolved", i % 3 != 0)
        score(eid, "tone", ["friendly", "curt", "friendly"][i % 3], source="llm_judge")
    other = log_prompt_execution("summary", True, 20.0)
    assert other is not None
    score(other, "stars", 1)
    score("not-stored-yet", "stars", 5)
    assert vividly_trace.flush(timeout=30)


def test_summaries_per_template_name_and_source(fresh_url: str) -> None:
    """Means and sample deviations match the statistics module; categories are counted."""
    _scored_store(fresh_url)
    rows = scores(fresh_url, template="support_reply")
    assert [(r.name, r.source, r.data_type, r.count) for r in rows] == [
        ("resolved", "user", "boolean", 6),
        ("stars", "user", "numeric", 6),
        ("tone", "llm_judge", "categorical", 6),
    ]
    resolved, stars, tone = rows
    assert resolved.mean == pytest.approx(4 / 6)
    assert stars.mean == pytest.approx(statistics.mean(STARS))
    assert stars.stdev == pytest.approx(statistics.stdev(STARS))
    assert (tone.mean, tone.stdev, tone.distribution) == (
        None,
        None,
        (("friendly", 4), ("curt", 2)),
    )
    assert tone.to_dict()["distribution"] == {"friendly": 4, "curt": 2}
    everything = scores(fresh_url, name="stars")
    assert [(r.template, r.count) for r in everything] == [("summary", 1), ("support_reply", 6)]
    assert everything[0].stdev is None  # one score: no spread
    assert unmatched_scores(fresh_url) == 1


def test_a_store_older_than_0007_says_how_to_upgrade(tmp_path: object) -> None:
    """No ``prompt_scores`` table: a clear error naming the upgrade command."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path}/old.db"
    engine = sa.create_engine(url)
    migrate.upgrade(engine, "0005")
    engine.dispose()
    with pytest.raises(StoreSchemaError, match="vividly-trace db upgrade"):
        scores(url)


def test_the_reports_show_scores(fresh_url: str) -> None:
    """The HTML report has a Scores section; ``report --scores`` prints the scores table
    (and the plain report does not)."""
    from click.testing import CliRunner

    from vividly_trace.analytics import build_report, render_html
    from vividly_trace.cli import _build

    _scored_store(fresh_url)
    vividly_trace.shutdown()
    report = build_report(fresh_url, since=None)
    assert report.has_scores and len(report.scores) == 4
    page = render_html(report)
    section = page[page.index("<section id='scores'>") :]
    section = section[: section.index("</section>")]
    assert "<td>tone</td>" in section and "friendly 4 \u00b7 curt 2" in section
    assert "67% true" in section and "3.83 \u00b1 1.17" in section
    plain = CliRunner().invoke(_build(), ["report", "--url", fresh_url, "--since", "all"])
    assert plain.exit_code == 0, plain.output
    assert "Scores" not in plain.output
    result = CliRunner().invoke(
        _build(), ["report", "--url", fresh_url, "--since", "all", "--scores"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Scores")
    rows = [line.split() for line in lines[start + 3 : start + 7]]
    assert [r[:4] for r in rows] == [
        ["summary", "stars", "user", "1"],
        ["support_reply", "resolved", "user", "6"],
        ["support_reply", "stars", "user", "6"],
        ["support_reply", "tone", "llm_judge", "6"],
    ]
    assert rows[2][4:] == ["3.83", "\u00b1", "1.17"]


def test_the_report_of_a_store_before_0007_says_so(fresh_url: str) -> None:
    """Revision 0005: the report still builds and its Scores section names the upgrade."""
    import sqlalchemy as sa

    from vividly_trace.analytics import build_report, render_html

    vividly_trace.configure(sinks=[SQLSink(fresh_url)], spool_dir=False)
    assert log_prompt_execution("t", True, 1.0) is not None
    vividly_trace.shutdown()
    engine = sa.create_engine(fresh_url)
    try:
        migrate.downgrade(engine, "0005")
        report = build_report(engine, since=None)
        assert (report.has_scores, report.scores, report.executions) == (False, [], 1)
        assert "predates the scores table (schema revision 0007)" in render_html(report)
    finally:
        engine.dispose()
