"""The demo target's HTTP application: in-memory state plus two Flask app factories.

The *demo target* is a small but real HTTP/1.1 keep-alive server that tests, benchmarks
and the shipped scenarios load-test.  This module is the application half: the state it
serves (users' sessions and tokens, items, and the counters the server half fills in) and
the routes.  It binds no sockets (see `workload.demo.server`) and never monkey-patches, so
importing it is side-effect free.

Credentials rule: a login is valid iff ``password == username + "-pw"`` and the username
is not empty (``alice`` / ``alice-pw``).  Every ``/api/items*`` route requires
authentication exactly like ``/api/me`` (session cookie, Bearer token or basic auth).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import gevent
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from workload.demo.page import register_page_routes
from workload.demo.queueing import QueueState, register_queue_admin, register_queue_routes

#: The server's handler resets the TCP connection when a view sets this environ key.
RESET_ENVIRON_KEY = "workload.demo.reset"
LISTENERS = ("http", "https")
MAX_SLEEP_MS = 30_000
MAX_ITEMS_PER_PAGE = 1000
TOKEN_LIFETIME_S = 3600
SEED_ITEMS = 20
SESSION_COOKIE = "session"
REDIRECT_STATUSES = (301, 302, 303, 307, 308)

JsonDict = dict[str, Any]


@dataclass
class ListenerCounters:
    """Exact per-listener counters; the server increments them, /__stats reads them."""

    connections_accepted: int = 0
    requests: int = 0
    open_connections: int = 0
    http2_connections: int = 0  # accepted connections that then spoke HTTP/2 (ALPN h2 or h2c)

    def reset(self) -> None:
        # open_connections is a gauge of sockets that really are open: zeroing it would
        # make it go negative when they close, so only the cumulative counters reset.
        self.connections_accepted = 0
        self.requests = 0
        self.http2_connections = 0


@dataclass
class Token:
    """An issued Bearer token; ``max_uses`` lets clients test "log in again on a 401"."""

    user: str
    expires_at: float
    max_uses: int | None
    uses: int = 0


@dataclass
class DemoState:
    """Everything one demo-target process remembers; lives only in memory."""

    listeners: dict[str, ListenerCounters] = field(
        default_factory=lambda: {name: ListenerCounters() for name in LISTENERS}
    )
    logins: Counter[str] = field(default_factory=Counter)
    sessions: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    items: dict[int, JsonDict] = field(default_factory=dict)
    # Greenlets only switch on I/O, so plain dict updates are already atomic; the lock
    # keeps id allocation correct should the app ever run under real threads.
    lock: threading.Lock = field(default_factory=threading.Lock)
    queue: QueueState = field(default_factory=QueueState)  # /serial and /stalling

    def __post_init__(self) -> None:
        for number in range(1, SEED_ITEMS + 1):
            self.add_item(f"item-{number}")

    def stats(self) -> JsonDict:
        per_listener = {name: asdict(c) for name, c in self.listeners.items()}
        return {
            **per_listener,
            "connections_accepted": sum(c.connections_accepted for c in self.listeners.values()),
            "requests": sum(c.requests for c in self.listeners.values()),
            "logins": dict(self.logins),
        }

    def reset_stats(self) -> None:
        for counters in self.listeners.values():
            counters.reset()
        self.logins.clear()
        self.queue.stall.reset()

    def new_session(self, user: str) -> str:
        self.logins[user] += 1
        token = secrets.token_urlsafe(18)
        self.sessions[token] = user
        return token

    def issue_token(self, user: str, max_uses: int | None) -> str:
        self.logins[user] += 1
        token = secrets.token_urlsafe(24)
        self.tokens[token] = Token(user, time.monotonic() + TOKEN_LIFETIME_S, max_uses)
        return token

    def use_token(self, token: str) -> str | None:
        """The token's user, counting one use; None (and forget it) once it is spent."""
        entry = self.tokens.get(token)
        if entry is None:
            return None
        spent = entry.max_uses is not None and entry.uses >= entry.max_uses
        if spent or time.monotonic() > entry.expires_at:
            self.tokens.pop(token, None)
            return None
        entry.uses += 1
        return entry.user

    def add_item(self, name: str) -> JsonDict:
        with self.lock:
            item_id = len(self.items) + 1
            item: JsonDict = {"id": item_id, "name": name}
            self.items[item_id] = item
        return item


def valid_credentials(username: object, password: object) -> bool:
    return isinstance(username, str) and bool(username) and password == username + "-pw"


def _error(status: int, message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


def _json_http_error(exc: HTTPException) -> Response:
    # Flask's default error pages are HTML; load-test assertions want JSON everywhere.
    response = _error(exc.code or 500, exc.description or exc.name)
    for key, value in exc.get_headers():
        if key.lower() != "content-type":
            response.headers[key] = value
    return response


def _authenticate(state: DemoState) -> tuple[str, str] | None:
    """(user, how) from an Authorization header, else from the session cookie."""
    auth = request.authorization
    if auth is not None:
        # An explicit header decides on its own: a spent token must give 401 even when
        # the client also carries a cookie, or "re-login on 401" could never be tested.
        if auth.type == "bearer":
            user = state.use_token(auth.token or "")
            return (user, "token") if user else None
        if auth.type == "basic" and valid_credentials(auth.username, auth.password):
            return str(auth.username), "basic"
        return None
    user = state.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    return (user, "cookie") if user else None


def _register_login_routes(app: Flask, state: DemoState) -> None:
    @app.route("/login", methods=["GET", "POST"])
    def login() -> Response:
        # GET takes the fields from the query string (a login by a method other than POST).
        fields = request.args if request.method == "GET" else request.form
        username, password = fields.get("username"), fields.get("password")
        if not valid_credentials(username, password):
            return _error(401, "bad credentials")
        response = jsonify(user=username)
        response.set_cookie(SESSION_COOKIE, state.new_session(str(username)), httponly=True, path="/")
        return response

    @app.get("/logout")
    def logout() -> Response:
        user = state.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = jsonify(logged_out=user is not None, user=user)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.route("/api/token", methods=["POST", "PUT"])
    def token() -> Response:
        body = request.get_json(silent=True)
        body = body if isinstance(body, dict) else {}
        max_uses = body.get("max_uses")
        if max_uses is not None and (type(max_uses) is not int or max_uses < 1):
            return _error(400, "max_uses must be a positive integer")
        if not valid_credentials(body.get("username"), body.get("password")):
            return _error(401, "bad credentials")
        issued = state.issue_token(body["username"], max_uses)
        return jsonify(access_token=issued, token_type="Bearer", expires_in=TOKEN_LIFETIME_S)

    @app.get("/basic")
    def basic() -> Response:
        auth = request.authorization
        if auth is None or auth.type != "basic" or not valid_credentials(auth.username, auth.password):
            response = _error(401, "bad credentials")
            response.headers["WWW-Authenticate"] = 'Basic realm="demo"'
            return response
        return jsonify(user=auth.username)


def _register_api_routes(app: Flask, state: DemoState) -> None:
    @app.before_request
    def require_login() -> Response | None:
        if request.path == "/api/me" or request.path.startswith("/api/items"):
            who = _authenticate(state)
            if who is None:
                return _error(401, "login required")
            request.environ["workload.demo.user"] = who
        return None

    @app.get("/api/me")
    def me() -> Response:
        user, how = request.environ["workload.demo.user"]
        return jsonify(user=user, auth=how)

    @app.get("/api/items")
    def list_items() -> Response:
        wanted = request.args.get("limit", default=MAX_ITEMS_PER_PAGE, type=int)
        limit = max(0, min(wanted, MAX_ITEMS_PER_PAGE))
        items = list(state.items.values())[:limit]
        return jsonify(items=items, count=len(items))

    @app.get("/api/items/<int:item_id>")
    def get_item(item_id: int) -> Response:
        item = state.items.get(item_id)
        return jsonify(item) if item else _error(404, f"no item {item_id}")

    @app.post("/api/items")
    def create_item() -> tuple[Response, int, dict[str, str]] | Response:
        body = request.get_json(silent=True)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            return _error(400, 'body must be JSON {"name": "<non-empty string>"}')
        item = state.add_item(name)
        return jsonify(item), 201, {"Location": f"/api/items/{item['id']}"}


def _register_tool_routes(app: Flask) -> None:
    @app.get("/")
    def index() -> Response:
        return Response("workload demo target\n", mimetype="text/plain")

    @app.get("/slow")
    def slow() -> Response:
        ms = max(0, min(request.args.get("ms", default=200, type=int), MAX_SLEEP_MS))
        gevent.sleep(ms / 1000.0)  # cooperative: other connections keep being served
        return jsonify(slept_ms=ms)

    @app.route("/status/<int:code>", methods=["GET", "POST"])
    def status(code: int) -> Response:
        if not 200 <= code <= 599:
            return _error(400, "status code must be between 200 and 599")
        if code in (204, 304):  # these statuses must not carry a body
            return Response(status=code)
        response = jsonify(status=code)
        response.status_code = code
        return response

    @app.route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    def echo() -> Response:
        return jsonify(
            method=request.method,
            path=request.path,
            args=request.args.to_dict(),
            headers=dict(request.headers.items()),
            cookies=request.cookies.to_dict(),
            body=request.get_data(as_text=True),
            json=request.get_json(silent=True),
        )

    @app.get("/redirect")
    def redirect() -> Response:
        # ?to=<path or URL>[&status=301|302|303|307|308]; sets a cookie on the redirect
        # itself, so a scenario can check it with follow_redirects: false.
        code = request.args.get("status", default=302, type=int)
        response = Response(status=code if code in REDIRECT_STATUSES else 302)
        response.headers["Location"] = request.args.get("to", "/")
        response.set_cookie("redirected", "yes", path="/")
        return response

    @app.get("/truncated")
    def truncated() -> Response:
        # Announces more bytes than it sends: the client sees a body cut short (a protocol fault).
        response = Response(b'{"partial": tr', mimetype="application/json")
        response.headers["Content-Length"] = "100"
        response.headers["Connection"] = "close"
        return response

    @app.get("/reset")
    def reset() -> Response:
        # The view cannot reset the socket itself without the server then writing to a
        # closed socket; it asks the server's handler to do it instead of responding.
        request.environ[RESET_ENVIRON_KEY] = True
        return Response(status=204)


def create_app(state: DemoState) -> Flask:
    """The demo target's public application (served on the http and https listeners)."""
    app = Flask("workload.demo")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_error_handler(HTTPException, _json_http_error)
    _register_login_routes(app, state)
    _register_api_routes(app, state)
    _register_tool_routes(app)
    register_page_routes(app)  # /app and /static/*: a page to record HAR files from
    register_queue_routes(app, state.queue)

    @app.after_request
    def _announce_close(response: Response) -> Response:
        # Like nginx: answer a client's `Connection: close` with the same header.  Without
        # it an HTTP/1.1 client may reuse the socket before it sees our FIN, and fail.
        if "close" in request.headers.get("Connection", "").lower():
            response.headers["Connection"] = "close"
        return response

    return app


def create_admin_app(state: DemoState) -> Flask:
    """The admin application: only ``/__stats``, on its own port so reading never counts."""
    app = Flask("workload.demo.admin")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_error_handler(HTTPException, _json_http_error)

    @app.get("/__stats")
    def stats() -> Response:
        return jsonify(state.stats())

    @app.post("/__stats/reset")
    def reset_stats() -> Response:
        state.reset_stats()
        return jsonify(state.stats())

    register_queue_admin(app, state.queue)
    return app
