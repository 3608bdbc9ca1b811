"""The HTTP API (FastAPI) and the web page, over a loaded :class:`~segue.serve.service.Service`.

Endpoints (OpenAPI at ``/docs`` and ``/openapi.json``):

* ``POST /v1/recommendations`` — continue a playlist: ``{title?, tracks: [uri…] (≤ 500),
  n: 1..500 = 50, model?, explain?}`` → ranked tracks with names, artists, scores and, when asked,
  a "because …" line and its evidence per track. URIs the catalog lacks come back in
  ``unknown_tracks``; ``notes`` say when the list is (partly) popularity.
* ``GET /v1/tracks?q=&offset=&limit=`` — search track and artist names (prefix and fuzzy).
* ``GET /v1/tracks/{uri}/similar?n=`` — tracks to play with one track.
* ``POST /v1/playlists`` — ``{title?, tracks, model?}``: the models that can learn live learn it
  now, durably (``live.py``); 201, or 409 when no target model can.
* ``GET /v1/models``, ``GET /healthz``; ``/`` the web page (``static/``).

Errors are JSON ``{"error", "message", "detail"?}``: 422 for malformed JSON, wrong types, unknown
fields and values out of range (the field is named), 413 for bodies over the limit, 404 for a
model or track not loaded, 409 for a live update no model can learn, 500 (logged, with no
trace to the client) for anything unexpected.

Speed: handlers are ``async`` and compute on the event loop (each takes milliseconds; no thread
hand-off, and live updates never race a request), responses are serialised by orjson, and the
models and catalog indexes are built once, before the first request.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from segue import __version__
from segue.errors import SegueError
from segue.serve.service import ApiError, Service, worker_id

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_N = 500
MAX_TRACKS = 500
DEFAULT_MAX_BODY = 256 * 1024  # 500 URIs of ~40 bytes are ~25 KB; this leaves room, not abuse

Uri = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(max_length=500)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


def _whole_number(value):
    """JSON Schema counts 360.0 as an integer; strict pydantic does not: take whole floats."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


class RecommendationRequest(BaseModel):
    """A playlist to continue: its tracks (Spotify URIs, in order) and/or its title."""

    model_config = ConfigDict(strict=True, extra="forbid")
    title: Title | None = None
    tracks: list[Uri] = Field(default_factory=list, max_length=MAX_TRACKS)
    n: WholeNumber = Field(50, ge=1, le=MAX_N, description="Tracks to return (1..500).")
    model: ModelName | None = Field(
        None, description="A loaded model's name (GET /v1/models); default: the first."
    )
    explain: bool = Field(
        False, description="Add a 'because …' line and its evidence to each track."
    )


class PlaylistRequest(BaseModel):
    """A new playlist for the live models to learn."""

    model_config = ConfigDict(strict=True, extra="forbid")
    title: Title | None = None
    tracks: list[Uri] = Field(min_length=1, max_length=MAX_TRACKS)
    model: ModelName | None = Field(
        None, description="Teach only this model (default: every one that learns live)."
    )


class Track(BaseModel):
    track_uri: str
    track_name: str | None
    artist_name: str | None


class RankedTrack(Track):
    rank: int
    score: float | None = Field(
        description="The model's score; null where popularity filled the list."
    )
    because: str | None = None
    evidence: list[dict] | None = None


class RecommendationResponse(BaseModel):
    model: str
    title: str
    n: int
    seed_tracks: int
    unknown_tracks: list[str]
    notes: list[str]
    items: list[RankedTrack]


class SearchHit(Track):
    playlists: int


class SearchResponse(BaseModel):
    query: str
    total: int
    offset: int
    limit: int
    corrections: dict[str, list[str]]
    items: list[SearchHit]


class SimilarResponse(BaseModel):
    model: str
    track: Track
    items: list[RankedTrack]


class PlaylistResponse(BaseModel):
    title: str
    models: list[dict]
    skipped: list[dict]
    unknown_tracks: list[str]


class ErrorResponse(BaseModel):
    error: str
    message: str
    detail: list[dict] | None = None
    more: int | None = None  # problems left out of ``detail``


def _parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    """Validate a JSON body straight from bytes (pydantic-core parses it; no ``json.loads`` pass).

    The body is read as JSON whatever its Content-Type, so ``curl -d '{…}'`` works as is.
    """
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None


def _body_schema(model: type[BaseModel]) -> dict:
    """OpenAPI request body for a handler that reads the raw body itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def _json(content, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


MAX_DETAIL = 20  # problems listed in a 422 (a 20,000-key body is not answered with 20,000)


def _error(
    status: int,
    error: str,
    message: str,
    detail: list[dict] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": error, "message": message}
    if detail is not None:
        body["detail"] = detail[:MAX_DETAIL]
        if len(detail) > MAX_DETAIL:
            body["more"] = len(detail) - MAX_DETAIL
    response = _json(body, status)
    response.headers.update(headers or {})
    return response


ERRORS = {code: {"model": ErrorResponse} for code in (404, 409, 413, 422)}


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def create_app(
    service: Service,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS,
    token: str | None = None,
) -> FastAPI:
    """The ASGI application for ``service``: bodies over ``max_body_bytes`` get 413; a ``Host``
    header not in ``allowed_hosts`` (port ignored; ``"*"``: any) gets 400, so a page on another
    site cannot reach the service through a DNS name it controls (DNS rebinding); with
    ``token``, writes need ``Authorization: Bearer TOKEN`` (401 otherwise)."""
    # Swagger UI and ReDoc from the assets fastapi-offline ships, not a CDN: /docs works offline.
    app = FastAPIOffline(
        title="segue",
        version=__version__,
        description="Continue playlists live, with explanations. The page is at /.",
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = []
        for e in exc.errors():
            # The offending input is not echoed back (it may be a 200 KB body).
            detail.append(
                {
                    "loc": [str(x) for x in e.get("loc", ())],
                    "msg": e.get("msg", ""),
                    "type": e.get("type", ""),
                }
            )
        message = (
            "; ".join(f"{_field(d['loc'])}: {d['msg']}" for d in detail[:5]) or "invalid request"
        )
        return _error(422, "invalid request", message, detail)

    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError) -> Response:
        return _error(exc.status, _REASONS.get(exc.status, "error"), exc.message)

    @app.exception_handler(SegueError)
    async def user_error(request: Request, exc: SegueError) -> Response:
        return _error(422, "invalid request", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # A 405 keeps the Allow header the router sets (RFC 9110: the methods that do work).
        return _error(
            exc.status_code,
            _REASONS.get(exc.status_code, "error"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(ClientDisconnect)
    async def went_away(request: Request, exc: ClientDisconnect) -> Response:
        # Not a server error: one line, no traceback (the answer has nowhere to go).
        log.info("client went away during %s %s", request.method, request.url.path)
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(
            500, "internal error", "the server failed on this request; the error is in its log"
        )

    @app.post(
        "/v1/recommendations",
        response_model=RecommendationResponse,
        responses=ERRORS,
        summary="Continue a playlist",
        openapi_extra=_body_schema(RecommendationRequest),
    )
    async def recommendations(request: Request) -> Response:
        body = _parse(RecommendationRequest, await request.body())
        return _json(
            service.recommend(
                tracks=body.tracks,
                title=body.title,
                n=body.n,
                model=body.model,
                explain=body.explain,
            )
        )

    @app.get(
        "/v1/tracks", response_model=SearchResponse, responses=ERRORS, summary="Search the catalog"
    )
    async def tracks(
        q: Annotated[str, Query(min_length=1, max_length=200, description="Track or artist name.")],
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        model: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        return _json(service.search(q, offset, limit, model))

    @app.get(
        "/v1/tracks/{uri}/similar",
        response_model=SimilarResponse,
        responses=ERRORS,
        summary="Tracks to play with one track",
    )
    async def similar(
        uri: str,
        n: Annotated[int, Query(ge=1, le=MAX_N)] = 10,
        model: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        return _json(service.similar(uri, n, model))

    @app.post(
        "/v1/playlists",
        status_code=201,
        response_model=PlaylistResponse,
        responses={
            **ERRORS,
            401: {"model": ErrorResponse},
            403: {"model": ErrorResponse},
            415: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
            507: {"model": ErrorResponse},
        },
        summary="Teach a new playlist to the live models",
        openapi_extra=_body_schema(PlaylistRequest),
    )
    async def playlists(request: Request) -> Response:
        # Only a JSON body writes: a web page can send text/plain or a form to this address
        # without the browser asking first (no CORS preflight), but not application/json.
        if token is not None and not secrets.compare_digest(
            request.headers.get("authorization", "").encode(), f"Bearer {token}".encode()
        ):
            raise ApiError(401, "writes need the service's token: Authorization: Bearer TOKEN")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise ApiError(
                415, f"send the playlist as Content-Type: application/json, not {media or 'none'!r}"
            )
        body = _parse(PlaylistRequest, await request.body())
        return _json(
            service.add_playlist(tracks=body.tracks, title=body.title, model=body.model), 201
        )

    @app.get("/v1/models", summary="The loaded models")
    async def models() -> Response:
        return _json({"models": service.describe()})

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> Response:
        return _json(service.health())

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return HostCheck(BodyLimit(app, max_body_bytes), allowed_hosts)


_REASONS = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "request too large",
    415: "unsupported media type",
    422: "invalid request",
    500: "internal error",
    503: "unavailable",
    507: "insufficient storage",
}


def _field(loc: list[str]) -> str:
    """``["body", "n"]`` → ``"n"``; ``["query", "limit"]`` → ``"limit"``; the body itself → ``"body"``."""
    parts = [p for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or (loc[0] if loc else "request")


class HostCheck:
    """ASGI middleware: 400 for a request whose ``Host`` is not one the service answers to.

    A browser sends a page's requests to whatever address its DNS name resolves to; a hostile
    name made to resolve to 127.0.0.1 (DNS rebinding) would reach a loopback service as
    "same origin", but its ``Host`` header still carries that name.
    """

    def __init__(self, app, allowed: tuple[str, ...]):
        self.app = app
        self.any = "*" in allowed
        self.allowed = frozenset(h.lower() for h in allowed)

    def __getattr__(self, name):  # tests and tools reach the FastAPI app's attributes
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.any:
            return await self.app(scope, receive, send)
        host = next((v for k, v in scope.get("headers", ()) if k == b"host"), b"")
        name = _host_name(host.decode("latin-1").strip().lower())
        if name in self.allowed:
            return await self.app(scope, receive, send)
        shown = name if len(name) <= 80 else name[:80] + "…"
        body = orjson.dumps(
            {
                "error": "bad request",
                "message": f"this service does not answer to host {shown!r} (it answers to "
                f"{', '.join(sorted(self.allowed))}; `segue serve --allow-host NAME` adds one)",
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _host_name(host: str) -> str:
    """A Host header without its port: ``"[::1]:8000"`` → ``"[::1]"``, ``"a.b:80"`` → ``"a.b"``.

    >>> _host_name("[::1]:8000"), _host_name("localhost:80"), _host_name("example.org")
    ('[::1]', 'localhost', 'example.org')
    """
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, by Content-Length or as it streams.

    It also names the worker in an ``x-segue-worker`` header (with ``--workers N``, which process
    answered is otherwise invisible): an opaque id (``service.worker_id``), not a process id.
    """

    def __init__(self, app: FastAPI, limit: int):
        self.app = app
        self.limit = limit

    @property
    def _worker(self) -> bytes:
        return worker_id().encode()  # read per response: workers fork after this is built

    def __getattr__(self, name):  # tests and tools reach the FastAPI app's attributes
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await self._refuse(send)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # FastAPI passes HTTPExceptions from body reading on
                    raise StarletteHTTPException(413, self._message())
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {
                    **message,
                    "headers": [*message.get("headers", ()), (b"x-segue-worker", self._worker)],
                }
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except StarletteHTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(send)

    def _message(self) -> str:
        return f"the request body is over the limit of {self.limit:,} bytes"

    async def _refuse(self, send) -> None:
        body = orjson.dumps({"error": "request too large", "message": self._message()})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
