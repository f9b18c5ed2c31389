"""The demo target's browser page: `/app`, a login form with a stylesheet, a script and an image.

Lets a person (or a test driving Chromium) record a real browser session against the demo
target as a HAR file and turn it into a scenario with `workload import-har`: the page loads
static assets (dropped by the import), its form logs in with a session cookie (`/login`).
Nothing here is stateful; the routes only serve fixed bytes.
"""

from __future__ import annotations

from flask import Flask, Response

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>workload demo</title>
<link rel="stylesheet" href="/static/app.css"><script src="/static/app.js"></script></head>
<body><img src="/static/logo.svg" alt="logo" width="32" height="32">
<h1>workload demo target</h1>
<p>Log in as alice / alice-pw (any user: the password is the name followed by -pw).</p>
<form method="post" action="/login">
<input name="username" placeholder="username"> <input name="password" type="password" placeholder="password">
<button type="submit">Log in</button></form></body></html>
"""
STATIC = {
    "app.css": ("text/css", "body { font-family: sans-serif; margin: 2em; }\n"),
    "app.js": ("text/javascript", "window.demo = { loaded: Date.now() };\n"),
    "logo.svg": ("image/svg+xml", '<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32">'
                 '<circle cx="16" cy="16" r="14" fill="#4a7"/></svg>\n'),
}


def register_page_routes(app: Flask) -> None:
    @app.get("/app")
    def page() -> Response:
        return Response(PAGE, mimetype="text/html")

    @app.get("/static/<name>")
    def static_file(name: str) -> Response:
        found = STATIC.get(name)
        if found is None:
            return Response("not found\n", status=404, mimetype="text/plain")
        mimetype, body = found
        return Response(body, mimetype=mimetype, headers={"Cache-Control": "max-age=60"})
