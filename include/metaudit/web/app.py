"""The packets pages: a FastAPI app the Airflow API server mounts at ``/metaudit``.

Airflow authenticates; this app authorises. Every route depends on Airflow's
own ``get_user`` (the UI's ``_token`` cookie or an ``Authorization: Bearer``
token), because the API server leaves plugin routes open to anonymous requests
otherwise. Which practices a user sees comes from the configuration's grants
(:mod:`metaudit.web.access`).

Routes (below the mount point):

- ``GET /packets``: the packets the user may see, filtered and paged, each with
  its size, time and whether it verifies; ``dag_id`` and ``run_id`` (the link
  on a DAG run) narrow it to that run's as-of date and practices;
- ``GET /packets/download``: one packet as a zip, recorded in the download
  trail (user, time, file, SHA-256) before the first byte is sent;
- ``GET /api/packets``: the same listing as JSON;
- ``GET /dashboard``: the compliance dashboard of a practice the user may see
  (``practice_id``), a client's findings (``client_id``), and for admins the
  network's practices ranked (:mod:`metaudit.web.dashboard`);
- ``GET /downloads`` (admins): the download trail and the rebuild requests;
- ``POST /findings/accept`` and ``POST /findings/withdraw``: a user granted the
  practice (or an admin) accepts one of its findings, by fingerprint, with a reason
  and an until date, or withdraws the acceptance; both go to the append-only trail
  (:mod:`metaudit.results.acceptances`) with the signed-in user as who;
- ``POST /packets/request``: a user granted the practice (or an admin) builds the
  answer to a records request (claims, or a client and a range of service dates,
  with the requester's reference) and gets it as a zip, recorded in the download
  trail with who asked and the reference (:mod:`metaudit.packets.request`);
- ``POST /packets/rebuild`` (admins): triggers ``met_compliance_nightly`` for
  the packet's practice and as-of date with ``rebuild_packets`` through
  Airflow's REST API, as the user who asked, and records the request.

Anonymous page requests are sent to Airflow's login; anything else anonymous
gets 401. Responses carry a Content-Security-Policy (no scripts at all), are
never cached (they hold health-record ids), and may only be framed by the
Airflow UI itself.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import StreamingResponse

from metaudit.config import DAG_ID
from metaudit.errors import SettingsError
from metaudit.web.access import Viewer, viewer_of
from metaudit.web.catalog import (
    CLIENT,
    PRACTICE,
    PacketEntry,
    Verdict,
    served_verdict,
    verdict,
)
from metaudit.web.context import AIRFLOW_API_URL_ENV, ContextHolder, WebContext

log = logging.getLogger(__name__)

PREFIX = "/metaudit"
PAGE_SIZE = 50
_CHUNK = 256 * 1024
_HERE = Path(__file__).resolve().parent
# No script may run; styles only from our own stylesheet; only the Airflow UI (same
# origin) may frame the pages; forms post back to us only.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Ids of the contract are short text; anything printable is allowed (file names encode
# it), control characters and overlong values are refused.
_ID_LENGTH = 64
_RUN_ID_LENGTH = 250  # Airflow's own limit
_FINGERPRINT_LENGTH = 400  # the results store's column
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")

_templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class _LoginRequired(Exception):
    """An anonymous request for a page: answered with a redirect to Airflow's login."""


@dataclass(frozen=True)
class _Row:
    entry: PacketEntry
    verdict: Verdict
    download: str
    size: str


# ----------------------------------------------------------------------- validation


def _check_id(value: str | None, what: str, longest: int = _ID_LENGTH) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > longest or _CONTROL.search(value):
        raise HTTPException(422, f"{what} must be 1 to {longest} printable characters")
    return value


def _check_date(value: str | None, what: str = "as_of") -> str | None:
    if value is None or value == "":
        return None
    try:
        # fromisoformat alone would also take 20260331 and 2026-W13-2.
        if len(value) == 10 and value[4] == "-":
            return date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise HTTPException(422, f"{what} must be a date written YYYY-MM-DD")


def _check_kind(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in (CLIENT, PRACTICE):
        raise HTTPException(422, f"kind must be {CLIENT!r} or {PRACTICE!r}")
    return value


# ---------------------------------------------------------------------- dependencies


def _holder(request: Request) -> ContextHolder:
    holder: ContextHolder = request.app.state.metaudit
    return holder


def context(request: Request) -> WebContext:
    try:
        return _holder(request).get()
    except SettingsError as exc:
        log.error("packets page unavailable: %s", exc)
        raise HTTPException(503, f"MET Audit is misconfigured: {exc}") from exc


async def _airflow_user(request: Request) -> Any:
    """The signed-in Airflow user, through Airflow's own dependency (cookie or bearer)."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    # Airflow takes a bearer token over the cookie; remember which one authenticated, so
    # the cross-site checks are skipped only for a real bearer token (a Basic header or an
    # empty Bearer leaves the cookie, which a browser sends cross-site, in charge).
    request.state.metaudit_bearer = (
        credentials.credentials
        if credentials and credentials.scheme.lower() == "bearer" and credentials.credentials
        else None
    )
    try:
        return await get_user(request, None, credentials)
    except HTTPException as exc:
        if exc.status_code in (401, 403) and _wants_page(request):
            raise _LoginRequired() from exc
        raise


def _wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


AirflowUser = Annotated[Any, Depends(_airflow_user)]
Context = Annotated[WebContext, Depends(context)]


def viewer(user: AirflowUser) -> Viewer:
    return viewer_of(user)


CurrentViewer = Annotated[Viewer, Depends(viewer)]


def admin(ctx: Context, who: CurrentViewer) -> Viewer:
    if not ctx.policy.is_admin(who):
        raise HTTPException(403, "only MET Audit administrators may see this")
    return who


Admin = Annotated[Viewer, Depends(admin)]


# -------------------------------------------------------------------------- helpers


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def _download_url(entry: PacketEntry) -> str:
    if entry.kind == CLIENT:
        query = {
            "practice_id": entry.practice_id,
            "as_of": entry.as_of,
            "client_id": entry.client_id,
        }
    else:
        query = {"practice_id": entry.practice_id, "month": entry.month}
    return f"{PREFIX}/packets/download?{urlencode(query)}"


def _verdict(ctx: WebContext, entry: PacketEntry) -> Verdict:
    if ctx.packet_key is None:
        why = ctx.packet_key_problem or "the deployment's packet key is not configured"
        return Verdict(False, f"cannot verify: {why}")
    return verdict(entry, ctx.packet_key)


def _render(request: Request, template: str, who: Viewer, ctx: WebContext, **values: Any) -> str:
    def query(**changes: Any) -> str:
        params = {k: v for k, v in request.query_params.items() if v != ""}
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = str(value)
        return urlencode(params)

    return _templates.get_template(template).render(
        prefix=PREFIX,
        user_name=who.name,
        is_admin=ctx.policy.is_admin(who),
        query=query,
        notices=values.pop("notices", []),
        **values,
    )


@dataclass(frozen=True)
class _Listing:
    practices: list[str]
    rows: list[_Row]
    total: int
    page: int
    pages: int
    dates: list[str]
    notices: list[dict[str, str]]
    filters: dict[str, str | None]


def _listing(
    ctx: WebContext,
    who: Viewer,
    *,
    practice_id: str | None,
    client_id: str | None,
    as_of: str | None,
    kind: str | None,
    page: int,
    dag_id: str | None,
    run_id: str | None,
) -> _Listing:
    notices: list[dict[str, str]] = []
    visible = ctx.policy.practices_of(who, ctx.catalog.practices())
    wanted = visible
    if run_id is not None:
        if dag_id not in (None, DAG_ID):
            notices.append({"level": "info", "text": f"{dag_id} is not a MET Audit DAG."})
            wanted = []
        else:
            run = ctx.store.run(run_id)
            if run is None:
                notices.append(
                    {"level": "info", "text": f"Run {run_id} has not recorded an audit (yet)."}
                )
                wanted = []
            else:
                as_of = run["as_of"].isoformat()
                ran = set(run.get("practice_ids") or [])
                wanted = [p for p in visible if p in ran]
                notices.append(
                    {"level": "info", "text": f"Packets of run {run_id}, as of {as_of}."}
                )
    if practice_id is not None:
        if not ctx.policy.may_see(who, practice_id):
            raise HTTPException(403, "you are not granted this practice's packets")
        wanted = [p for p in wanted if p == practice_id]
    found = ctx.catalog.find(wanted, client_id=client_id, as_of=as_of, kind=kind)
    pages = max(1, math.ceil(len(found) / PAGE_SIZE))
    page = min(page, pages)
    shown = found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    rows = [_Row(e, _verdict(ctx, e), _download_url(e), _human_size(e.size)) for e in shown]
    return _Listing(
        practices=visible,
        rows=rows,
        total=len(found),
        page=page,
        pages=pages,
        dates=ctx.catalog.as_of_dates(visible)[:5],
        notices=notices,
        filters={
            "practice_id": practice_id,
            "client_id": client_id,
            "as_of": as_of,
            "kind": kind,
        },
    )


def listing_of_request(
    ctx: Context,
    who: CurrentViewer,
    practice_id: str | None = None,
    client_id: str | None = None,
    as_of: str | None = None,
    kind: str | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> _Listing:
    """The listing a request's filters ask for (the page and the JSON share it)."""
    return _listing(
        ctx,
        who,
        practice_id=_check_id(practice_id, "practice_id"),
        client_id=_check_id(client_id, "client_id"),
        as_of=_check_date(as_of),
        kind=_check_kind(kind),
        page=page,
        dag_id=_check_id(dag_id, "dag_id"),
        run_id=_check_id(run_id, "run_id", _RUN_ID_LENGTH),
    )


Listing = Annotated[_Listing, Depends(listing_of_request)]


def _api_base(ctx: WebContext) -> str | None:
    """Where the rebuild posts the user's token: the configured address only, never one
    taken from the request (its Host header is the client's to choose)."""
    return ctx.airflow_api_url.rstrip("/") if ctx.airflow_api_url else None


def _user_token(request: Request) -> str | None:
    """The token that authenticated the request: its bearer token, else the UI's cookie."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    bearer: str | None = getattr(request.state, "metaudit_bearer", None)
    return bearer or request.cookies.get(COOKIE_NAME_JWT_TOKEN)


def _own_origin(request: Request, address: str) -> bool:
    got = urlsplit(address)
    here = urlsplit(str(request.base_url))
    return (got.scheme, got.netloc) == (here.scheme, here.netloc)


def _not_cross_site(request: Request) -> None:
    """Refuse a request a browser sent from another site with the UI's cookie: downloads
    (a GET that writes the trail) and every state-changing route. Browsers send both
    headers; scripts with their own token send neither and pass."""
    site = request.headers.get("sec-fetch-site", "").lower()
    if site in {"cross-site", "same-site"}:
        raise HTTPException(403, f"refused: the request came from another site ({site})")
    origin = request.headers.get("origin")
    if origin and not _own_origin(request, origin):
        raise HTTPException(403, "refused: the request came from another origin")


def _same_origin(request: Request) -> None:
    """Refuse a cross-site form post (the UI's cookie would otherwise ride along): every
    state-changing route (rebuild, accept, withdraw) calls it first."""
    _not_cross_site(request)
    if getattr(request.state, "metaudit_bearer", None):
        # Its own bearer token authenticated it: there is no ambient cookie to abuse.
        return
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and _own_origin(request, origin):
        return
    # Browsers send Origin with every cross-origin POST; one without Origin or Referer
    # that relies on the cookie is refused too.
    raise HTTPException(403, "a change must be asked for from the MET Audit pages themselves")


# ---------------------------------------------------------------------------- the app


def create_app(holder: ContextHolder | None = None) -> FastAPI:
    """The packets pages; ``holder`` supplies the deployment's context (tests pass one)."""
    app = FastAPI(
        title="MET Audit packets",
        description="Audit packets of MET Audit: list, verify, download, rebuild.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.metaudit = holder or ContextHolder()

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(_LoginRequired)
    def to_login(request: Request, exc: _LoginRequired) -> Response:
        from airflow.api_fastapi.app import get_auth_manager

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(get_auth_manager().get_url_login(next_url=target), 303)

    @app.get("/static/metaudit.css", include_in_schema=False)
    def stylesheet(_user: AirflowUser) -> Response:
        css = (_HERE / "static" / "metaudit.css").read_text(encoding="utf-8")
        return Response(css, media_type="text/css")

    @app.get("/packets", response_class=HTMLResponse)
    def packets_page(
        request: Request,
        ctx: Context,
        who: CurrentViewer,
        listing: Listing,
        notice: str | None = None,
    ) -> HTMLResponse:
        notices = list(listing.notices)
        if notice in _NOTICES:
            notices.insert(0, _NOTICES[notice])
        html = _render(
            request,
            "packets.html",
            who,
            ctx,
            title="Audit packets",
            practices=listing.practices,
            rows=listing.rows,
            total=listing.total,
            page=listing.page,
            pages=listing.pages,
            dates=listing.dates,
            filters=listing.filters,
            notices=notices,
        )
        return HTMLResponse(html)

    @app.get("/api/packets")
    def packets_json(listing: Listing) -> JSONResponse:
        return JSONResponse(
            {
                "total": listing.total,
                "page": listing.page,
                "pages": listing.pages,
                "packets": [
                    {
                        "kind": row.entry.kind,
                        "practice_id": row.entry.practice_id,
                        "client_id": row.entry.client_id,
                        "as_of": row.entry.as_of,
                        "month": row.entry.month,
                        "built_as_of": row.entry.built_as_of,
                        "records_unchanged_since": row.entry.records_unchanged_since,
                        "size": row.entry.size,
                        "modified": row.entry.modified.isoformat(),
                        "verifies": row.verdict.intact,
                        "verification": row.verdict.detail,
                        "download": row.download,
                    }
                    for row in listing.rows
                ],
            }
        )

    @app.get("/packets/download")
    def download(
        request: Request,
        ctx: Context,
        who: CurrentViewer,
        practice_id: str,
        as_of: str | None = None,
        client_id: str | None = None,
        month: str | None = None,
    ) -> Response:
        _not_cross_site(request)
        practice = _check_id(practice_id, "practice_id")
        client = _check_id(client_id, "client_id")
        day = _check_date(as_of)
        if practice is None:
            raise HTTPException(422, "practice_id is required")
        if month is not None and (client or day or not _MONTH.fullmatch(month)):
            raise HTTPException(422, "a practice packet is named by practice_id and month=YYYY-MM")
        if month is None and not (client and day):
            raise HTTPException(422, "a client packet is named by practice_id, as_of and client_id")
        # Authorisation before existence: a refused user learns nothing about the files.
        if not ctx.policy.may_see(who, practice):
            log.warning(
                "packet download refused: %s is not granted practice %s", who.name, practice
            )
            raise HTTPException(403, "you are not granted this practice's packets")
        if month is not None:
            entry = ctx.catalog.practice_packet(practice, month)
        else:
            assert client is not None and day is not None
            entry = ctx.catalog.client_packet(practice, day, client)
        if entry is None:
            raise HTTPException(404, "no such packet")
        data = entry.path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        # The served bytes themselves are judged: X-MetAudit-Verified and the trail say
        # what this copy is, even if the file changed since the listing.
        check = (
            served_verdict(entry, data, sha256, ctx.packet_key)
            if ctx.packet_key is not None
            else _verdict(ctx, entry)
        )
        try:
            ctx.store.record_download(
                user_name=who.name,
                kind=entry.kind,
                practice_id=entry.practice_id,
                client_id=entry.client_id,
                period=entry.period,
                packet=entry.relative,
                size=len(data),
                sha256=sha256,
                verified=check.intact,
                remote_addr=request.client.host if request.client else None,
            )
        except Exception as exc:
            # No trail, no download: an unrecorded copy of health records must not leave.
            log.exception("packet download not recorded, so not served: %s", entry.relative)
            raise HTTPException(503, "the download could not be recorded; try again") from exc
        log.info(
            "packet downloaded: %s by %s (sha256 %s, verified %s)",
            entry.relative,
            who.name,
            sha256,
            check.intact,
        )
        extra = {}
        if entry.built_as_of and entry.built_as_of != entry.as_of:
            # The packet in force on the date asked for was built on an earlier one.
            extra["X-MetAudit-Built-As-Of"] = entry.built_as_of
        name = f"metaudit-{entry.relative.replace('/', '-')}"
        return _zip_download(data, name, sha256, check.intact, extra)

    @app.get("/downloads", response_class=HTMLResponse)
    def downloads_page(
        request: Request,
        ctx: Context,
        who: Admin,
        practice_id: str | None = None,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ) -> HTMLResponse:
        practice = _check_id(practice_id, "practice_id")
        offset = (page - 1) * PAGE_SIZE
        downloads, total = ctx.store.downloads(practice_id=practice, limit=PAGE_SIZE, offset=offset)
        rebuilds, _ = ctx.store.rebuilds(practice_id=practice, limit=PAGE_SIZE)
        html = _render(
            request,
            "downloads.html",
            who,
            ctx,
            title="Download trail",
            practice_id=practice,
            downloads=downloads,
            downloads_total=total,
            rebuilds=rebuilds,
            page=page,
            pages=max(1, math.ceil(total / PAGE_SIZE)),
        )
        return HTMLResponse(html)

    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard_page(
        request: Request,
        ctx: Context,
        who: CurrentViewer,
        practice_id: str | None = None,
        client_id: str | None = None,
        notice: str | None = None,
        rank: str | None = None,
    ) -> HTMLResponse:
        from metaudit.web.dashboard import dashboard

        values = dashboard(
            ctx,
            who,
            practice_id=_check_id(practice_id, "practice_id"),
            client_id=_check_id(client_id, "client_id"),
            rank=rank or None,
        )
        notices = [_NOTICES[notice]] if notice in _NOTICES else []
        html = _render(request, "dashboard.html", who, ctx, notices=notices, **values)
        return HTMLResponse(html)

    @app.post("/findings/accept")
    def accept(
        request: Request,
        ctx: Context,
        who: CurrentViewer,
        practice_id: Annotated[str, Form()],
        fingerprint: Annotated[str, Form()],
        reason: Annotated[str, Form()] = "",
        until: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
    ) -> Response:
        _same_origin(request)
        practice, finding = _finding_of_form(ctx, who, practice_id, fingerprint)
        day = _check_date(until, "until")
        if day is None:
            raise HTTPException(
                422, "until (the last audit date the acceptance covers) is required"
            )
        from metaudit.results.acceptances import AcceptanceError

        try:
            ctx.store.accept_finding(
                practice,
                finding,
                user_name=who.name,
                reason=reason,
                until=date.fromisoformat(day),
                today=ctx.today(),
            )
        except AcceptanceError as exc:
            raise HTTPException(_acceptance_status(exc), str(exc)) from exc
        log.info("finding %s of %s accepted by %s until %s", finding, practice, who.name, day)
        return _back_to_dashboard(practice, _check_id(client_id, "client_id"), "accepted")

    @app.post("/findings/withdraw")
    def withdraw(
        request: Request,
        ctx: Context,
        who: CurrentViewer,
        practice_id: Annotated[str, Form()],
        fingerprint: Annotated[str, Form()],
        reason: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
    ) -> Response:
        _same_origin(request)
        practice, finding = _finding_of_form(ctx, who, practice_id, fingerprint)
        from metaudit.results.acceptances import AcceptanceError

        try:
            ctx.store.withdraw_acceptance(practice, finding, user_name=who.name, reason=reason)
        except AcceptanceError as exc:
            raise HTTPException(_acceptance_status(exc), str(exc)) from exc
        log.info("acceptance of finding %s of %s withdrawn by %s", finding, practice, who.name)
        return _back_to_dashboard(practice, _check_id(client_id, "client_id"), "withdrawn")

    @app.post("/packets/rebuild")
    async def rebuild(
        request: Request,
        ctx: Context,
        who: Admin,
        practice_id: Annotated[str, Form()],
        as_of: Annotated[str, Form()],
        client_id: Annotated[str | None, Form()] = None,
    ) -> Response:
        _same_origin(request)
        practice = _check_id(practice_id, "practice_id")
        client = _check_id(client_id, "client_id")
        day = _check_date(as_of)
        if practice is None or day is None:
            raise HTTPException(422, "practice_id and as_of are required")
        run_id, error = await _trigger_rebuild(ctx, request, who, practice, day, client)
        ctx.store.record_rebuild(
            user_name=who.name,
            practice_id=practice,
            client_id=client,
            as_of=date.fromisoformat(day),
            dag_run_id=run_id,
            error=error,
        )
        query = {
            "practice_id": practice,
            "as_of": day,
            "notice": "rebuild-failed" if error else "rebuild",
        }
        return RedirectResponse(f"{PREFIX}/packets?{urlencode(query)}", 303)

    @app.post("/packets/request")
    def records_request(
        request: Request,
        ctx: Context,
        who: CurrentViewer,
        practice_id: Annotated[str, Form()],
        reference: Annotated[str, Form()] = "",
        claims: Annotated[str, Form()] = "",
        client_id: Annotated[str, Form()] = "",
        service_from: Annotated[str, Form()] = "",
        service_to: Annotated[str, Form()] = "",
        as_of: Annotated[str, Form()] = "",
    ) -> Response:
        _same_origin(request)
        practice = _check_id(practice_id, "practice_id")
        if practice is None:
            raise HTTPException(422, "practice_id is required")
        # Authorisation before anything about the practice's records is looked at.
        if not ctx.policy.may_see(who, practice):
            log.warning(
                "records request refused: %s is not granted practice %s", who.name, practice
            )
            raise HTTPException(403, "you are not granted this practice's packets")
        try:
            return _answer_request(
                request,
                ctx,
                who,
                practice,
                reference=reference,
                claims=claims,
                client_id=_check_id(client_id, "client_id"),
                service_from=_check_date(service_from, "service_from"),
                service_to=_check_date(service_to, "service_to"),
                as_of=_check_date(as_of),
            )
        except HTTPException as exc:
            if "text/html" not in request.headers.get("accept", ""):
                raise
            # The form's own browser: a page that says what is wrong, and the way back.
            html = _render(
                request,
                "request_error.html",
                who,
                ctx,
                title="Records request not answered",
                practice_id=practice,
                notices=[{"level": "error", "text": str(exc.detail)}],
            )
            return HTMLResponse(html, status_code=exc.status_code)

    return app


def _answer_request(
    request: Request,
    ctx: WebContext,
    who: Viewer,
    practice: str,
    *,
    reference: str,
    claims: str,
    client_id: str | None,
    service_from: str | None,
    service_to: str | None,
    as_of: str | None,
) -> Response:
    """Build the answer to a records request, record it in the download trail with who
    asked and the request's reference, and send it (nothing is sent unrecorded)."""
    from metaudit.errors import MetAuditError
    from metaudit.packets.errors import PacketKeyError
    from metaudit.packets.request import (
        RecordsRequest,
        RequestError,
        build_request_packet,
        latest_audit_date,
        parse_claim_ids,
    )
    from metaudit.packets.verify import verify_packet

    claim_ids = parse_claim_ids(claims)
    if claim_ids and (client_id or service_from or service_to):
        raise HTTPException(422, "give claims, or a client with a range of service dates, not both")
    try:
        asked = RecordsRequest(
            practice_id=practice,
            reference=reference,
            claim_ids=claim_ids,
            client_id=client_id,
            service_from=date.fromisoformat(service_from) if service_from else None,
            service_to=date.fromisoformat(service_to) if service_to else None,
        )
    except RequestError as exc:
        raise HTTPException(422, str(exc)) from exc
    if ctx.packet_key is None:
        why = ctx.packet_key_problem or "the deployment's packet key is not configured"
        raise HTTPException(503, f"records requests cannot be signed: {why}")
    day = (
        as_of
        or latest_audit_date(practice, ctx.results_root)
        or next(iter(ctx.catalog.as_of_dates([practice])), None)
    )
    if day is None:
        raise HTTPException(404, f"practice {practice} has no audit yet: give the as-of date")
    try:
        packet = build_request_packet(
            ctx.source(),
            asked,
            date.fromisoformat(day),
            packets_dir=ctx.packets_dir,
            results_root=ctx.results_root,
            key=ctx.packet_key,
            signing_key=ctx.signing_key,
            demo=config_demo(),
        )
    except RequestError as exc:
        raise HTTPException(422, str(exc)) from exc
    except (PacketKeyError, SettingsError) as exc:
        log.error("records request of practice %s not built: %s", practice, exc)
        raise HTTPException(503, f"the records request cannot be built: {exc}") from exc
    except MetAuditError as exc:
        log.error("records request of practice %s not built: %s", practice, exc)
        raise HTTPException(503, f"the records request could not be built: {exc}") from exc
    data = packet.path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    check = verify_packet(packet.path, ctx.packet_key, data=data, demo=config_demo())
    relative = f"{packet.path.parent.parent.name}/{packet.path.parent.name}/{packet.path.name}"
    try:
        ctx.store.record_download(
            user_name=who.name,
            kind="request",
            practice_id=practice,
            client_id=packet.client_id,
            period=packet.as_of,
            packet=relative,
            size=len(data),
            sha256=sha256,
            verified=check.intact,
            remote_addr=request.client.host if request.client else None,
            reference=asked.reference,
        )
    except Exception as exc:
        log.exception("records request not recorded, so not served: %s", relative)
        raise HTTPException(503, "the records request could not be recorded; try again") from exc
    # Ids only in the log: the reference is the requester's text, kept in the trail.
    log.info(
        "records request %s of practice %s built for %s (sha256 %s, verified %s)",
        packet.request_id,
        practice,
        who.name,
        sha256,
        check.intact,
    )
    name = _safe_file_name(f"metaudit-{practice}-request-{packet.request_id}.zip")
    return _zip_download(
        data, name, sha256, check.intact, {"X-MetAudit-Request-Id": packet.request_id}
    )


def config_demo() -> bool:
    from metaudit.config import demo_mode

    return demo_mode()


def _zip_download(
    data: bytes, name: str, sha256: str, intact: bool, extra: Mapping[str, str]
) -> StreamingResponse:
    """A packet served as a download: its name, size, SHA-256 and whether it verified."""
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Length": str(len(data)),
        "X-MetAudit-SHA256": sha256,
        "X-MetAudit-Verified": "true" if intact else "false",
        **extra,
    }
    return StreamingResponse(_chunks(data), media_type="application/zip", headers=headers)


def _safe_file_name(name: str) -> str:
    """A download's file name with only safe characters (ids may hold anything printable)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


_NOTICES = {
    "accepted": {
        "level": "info",
        "text": "Finding accepted: it leaves the open counts up to its until date, and the "
        "acceptance is in the trail.",
    },
    "withdrawn": {
        "level": "info",
        "text": "Acceptance withdrawn: the finding counts as open again; the trail keeps both.",
    },
    "rebuild": {
        "level": "info",
        "text": "Rebuild asked for: the nightly DAG runs for this practice and date with "
        "rebuild_packets; the packets here change when it has finished.",
    },
    "rebuild-failed": {
        "level": "error",
        "text": "The rebuild could not be triggered; the download trail page shows why.",
    },
}


def _finding_of_form(
    ctx: WebContext, who: Viewer, practice_id: str, fingerprint: str
) -> tuple[str, str]:
    """The practice and fingerprint a form names, the user granted the practice."""
    practice = _check_id(practice_id, "practice_id")
    finding = _check_id(fingerprint, "fingerprint", _FINGERPRINT_LENGTH)
    if practice is None or finding is None:
        raise HTTPException(422, "practice_id and fingerprint are required")
    if not ctx.policy.may_see(who, practice):
        log.warning("acceptance refused: %s is not granted practice %s", who.name, practice)
        raise HTTPException(403, "you are not granted this practice's findings")
    return practice, finding


def _acceptance_status(exc: Exception) -> int:
    from metaudit.results.acceptances import UnknownFindingError

    return 404 if isinstance(exc, UnknownFindingError) else 422


def _back_to_dashboard(practice_id: str, client_id: str | None, notice: str) -> Response:
    query = {"practice_id": practice_id, "notice": notice}
    if client_id:
        query["client_id"] = client_id
    return RedirectResponse(f"{PREFIX}/dashboard?{urlencode(query)}", 303)


def _chunks(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), _CHUNK):
        yield data[start : start + _CHUNK]


async def _trigger_rebuild(
    ctx: WebContext,
    request: Request,
    who: Viewer,
    practice_id: str,
    as_of: str,
    client_id: str | None,
) -> tuple[str | None, str | None]:
    """Trigger the nightly DAG through Airflow's REST API as the user; (run id, error)."""
    import httpx

    base = _api_base(ctx)
    if base is None:
        log.error(
            "rebuild of %s as of %s not triggered: no Airflow API address", practice_id, as_of
        )
        return None, (
            f"no Airflow API address is configured: set {AIRFLOW_API_URL_ENV} or [api] base_url "
            "(AIRFLOW__API__BASE_URL) on the API server; the rebuild never sends your token to "
            "an address taken from the request"
        )
    token = _user_token(request)
    if not token:
        return None, "no token to trigger the DAG with: sign in again"
    body = {
        "logical_date": None,
        "conf": {"as_of": as_of, "practice_ids": [practice_id], "rebuild_packets": True},
        "note": (
            f"Packet rebuild asked for by {who.name} from the packets page"
            + (f" (client {client_id})" if client_id else "")
        ),
    }
    url = f"{base}/api/v2/dags/{DAG_ID}/dagRuns"
    try:
        async with httpx.AsyncClient(transport=ctx.airflow_transport, timeout=30) as client:
            response = await client.post(
                url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
    except httpx.HTTPError as exc:
        log.error("rebuild of %s as of %s not triggered: %s", practice_id, as_of, exc)
        return None, f"Airflow's API could not be reached at {url}: {type(exc).__name__}"
    if response.status_code not in (200, 201):
        detail = response.text[:300]
        log.error(
            "rebuild of %s as of %s refused by Airflow (%s): %s",
            practice_id,
            as_of,
            response.status_code,
            detail,
        )
        return None, f"Airflow answered {response.status_code}: {detail}"
    run_id = str(response.json().get("dag_run_id"))
    log.info("rebuild of %s as of %s triggered by %s: run %s", practice_id, as_of, who.name, run_id)
    return run_id, None
