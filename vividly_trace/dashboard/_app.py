"""The Starlette application: pages, their JSON twins, the access token, safe headers."""

from __future__ import annotations

import datetime as _dt
import hmac
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ..exceptions import MissingExtraError

try:
    import jinja2
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import (
        HTMLResponse,
        JSONResponse,
        PlainTextResponse,
        RedirectResponse,
        Response,
    )
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError as exc:  # pragma: no cover - exercised by the import-isolation tests
    raise MissingExtraError("the dashboard", "dashboard", exc.name) from exc

from ..analytics import StoreError
from ..analytics._report import format_ms, format_pct, format_usd
from ..exceptions import ConfigurationError
from ._charts import bar_chart
from ._data import ExecutionFilter, execution_detail, list_executions, plain
from ._engine import read_only_engine
from ._views import overview, template_page, users_page

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["COOKIE", "LOCAL_HOSTS", "create_app"]

HERE = Path(__file__).parent
COOKIE = "vividly_trace_token"
DEFAULT_SINCE = "30d"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class _Guard:
    """ASGI middleware: the access token (when set) and the safety headers on every answer.

    The token is read from ``Authorization: Bearer``, the cookie, or ``?token=`` (which a
    page turns into the cookie and a redirect without it); compared in constant time.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        if self.token is not None and scope.get("path") != "/favicon.ico":
            request = Request(scope)
            from_query = request.query_params.get("token")
            header = request.headers.get("authorization", "")
            supplied = (
                header[7:].strip()
                if header.lower().startswith("bearer ")
                else from_query or request.cookies.get(COOKIE) or ""
            )
            if not hmac.compare_digest(supplied.encode(), self.token):
                answer: Response = PlainTextResponse(
                    "401: this dashboard needs its access token (?token=... once, or "
                    "Authorization: Bearer ...)",
                    status_code=401,
                    headers={"www-authenticate": "Bearer"},
                )
                await answer(scope, receive, with_headers)
                return
            if from_query and request.method in ("GET", "HEAD") and not _is_api(scope):
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
                answer = RedirectResponse(target, status_code=303)
                answer.set_cookie(COOKIE, from_query, httponly=True, samesite="strict", path="/")
                await answer(scope, receive, with_headers)
                return
        await self.app(scope, receive, with_headers)


def _is_api(scope: Scope) -> bool:
    return str(scope.get("path", "")).startswith("/api/")


def _when(value: Any) -> str:
    if isinstance(value, _dt.datetime):
        return value.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        usd=format_usd,
        ms=format_ms,
        pct=format_pct,
        when=_when,
        qs=lambda params: urlencode(params),
    )
    return env


def create_app(
    url: str | Engine,
    *,
    token: str | None = None,
    refresh_seconds: float = 10.0,
    allowed_hosts: Sequence[str] = LOCAL_HOSTS,
) -> Any:
    """The dashboard as an ASGI application on the store at ``url`` (opened read-only; an
    ``Engine`` is used as given). ``token``: the access token every request must carry.
    ``allowed_hosts``: the ``Host`` headers answered (by default the loopback names only, so
    that a web page cannot reach the dashboard through DNS rebinding); ``["*"]``: any.

    Raises:
        StoreURLError, StoreUnavailableError: the store cannot be opened.
    """
    from sqlalchemy.engine import Engine

    engine = url if isinstance(url, Engine) else read_only_engine(url)
    env = _environment()

    def since_of(request: Request) -> str | None:
        value = request.query_params.get("since", DEFAULT_SINCE).strip()
        return None if value.lower() in ("", "all") else value

    def page(
        name: str,
        api: str,
        build: Callable[[Request], dict[str, Any]],
        extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> tuple[Callable[[Request], Response], Callable[[Request], Response]]:
        def data(request: Request) -> dict[str, Any] | Response:
            try:
                return build(request)
            except ConfigurationError as exc:
                return PlainTextResponse(f"400: {exc}", status_code=400)
            except LookupError:
                return PlainTextResponse("404: not found", status_code=404)
            except StoreError as exc:
                return PlainTextResponse(f"503: {exc}", status_code=503)

        def html(request: Request) -> Response:
            found = data(request)
            if isinstance(found, Response):
                return found
            context = {
                "data": found,
                "request_path": request.url.path,
                "api_url": api_url(request, api),
                "refresh_seconds": refresh_seconds,
                "query": dict(request.query_params),
                **(extra(found) if extra else {}),
            }
            return HTMLResponse(env.get_template(name).render(**context))

        def json(request: Request) -> Response:
            found = data(request)
            if isinstance(found, Response):
                return found
            return JSONResponse(plain(found))

        return html, json

    def api_url(request: Request, api: str) -> str:
        params = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        path = api.format(**{k: quote(str(v)) for k, v in request.path_params.items()})
        return path + (f"?{params}" if params else "")

    def chart_of_days(found: dict[str, Any]) -> dict[str, Any]:
        days = sorted({row["day"] for row in found["days"]})
        templates = sorted({row["template"] for row in found["days"]})
        index = {d: i for i, d in enumerate(days)}
        series: dict[str, list[float]] = {t: [0.0] * len(days) for t in templates}
        for row in found["days"]:
            if row["cost_usd"] is not None:
                series[row["template"]][index[row["day"]]] += float(row["cost_usd"])
        chart = bar_chart([d.isoformat() for d in days], list(series.items()), label=format_usd)
        return {"chart": chart}

    def latency_chart(found: dict[str, Any]) -> dict[str, Any]:
        rows = found["latency"]
        labels = [f"{row['label']} {key}" for row in rows for key in row["percentiles"]]
        values = [float(v or 0.0) for row in rows for v in row["percentiles"].values()]
        chart = bar_chart(labels, [("latency (ms)", values)], label=format_ms)
        return {"chart": chart}

    def build_overview(request: Request) -> dict[str, Any]:
        return overview(engine, since_of(request))

    def build_template(request: Request) -> dict[str, Any]:
        return template_page(engine, request.path_params["key"], since_of(request))

    def build_executions(request: Request) -> dict[str, Any]:
        filters = ExecutionFilter.from_query(request.query_params)
        found = list_executions(engine, filters)
        pages = max(1, -(-found["total"] // filters.per_page))
        found["pages"] = pages
        found["filters"] = filters.params(page=None)
        found["previous"] = filters.params(page=filters.page - 1) if filters.page > 1 else None
        found["next"] = filters.params(page=filters.page + 1) if filters.page < pages else None
        return found

    def build_execution(request: Request) -> dict[str, Any]:
        found = execution_detail(engine, request.path_params["id"])
        if found is None:
            raise LookupError(request.path_params["id"])
        return found

    def build_users(request: Request) -> dict[str, Any]:
        user = request.query_params.get("user", "").strip() or None
        return users_page(engine, since_of(request), user)

    overview_html, overview_json = page(
        "overview.html", "/api/overview", build_overview, chart_of_days
    )
    template_html, template_json = page(
        "template.html", "/api/templates/{key}", build_template, latency_chart
    )
    executions_html, executions_json = page("executions.html", "/api/executions", build_executions)
    execution_html, execution_json = page("execution.html", "/api/executions/{id}", build_execution)
    users_html, users_json = page("users.html", "/api/users", build_users)

    routes = [
        Route("/", overview_html, methods=["GET"]),
        Route("/api/overview", overview_json, methods=["GET"]),
        Route("/templates/{key:path}", template_html, methods=["GET"]),
        Route("/api/templates/{key:path}", template_json, methods=["GET"]),
        Route("/executions", executions_html, methods=["GET"]),
        Route("/api/executions", executions_json, methods=["GET"]),
        Route("/executions/{id}", execution_html, methods=["GET"]),
        Route("/api/executions/{id}", execution_json, methods=["GET"]),
        Route("/users", users_html, methods=["GET"]),
        Route("/api/users", users_json, methods=["GET"]),
        Route("/favicon.ico", lambda request: Response(status_code=204), methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))],
    )
    app.state.engine = engine
    return _Guard(app, token)
