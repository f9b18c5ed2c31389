"""The demo target's /app page and its static assets (what HAR recordings are made from)."""

from __future__ import annotations

import requests


def test_the_page_links_its_assets_and_posts_its_form_to_login(demo_target):
    page = requests.get(demo_target.http_url + "/app", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    for link in ('href="/static/app.css"', 'src="/static/app.js"', 'src="/static/logo.svg"',
                 '<form method="post" action="/login">'):
        assert link in page.text
    types = {name: requests.get(f"{demo_target.http_url}/static/{name}", timeout=5).headers["Content-Type"]
             for name in ("app.css", "app.js", "logo.svg")}
    assert types == {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                     "logo.svg": "image/svg+xml; charset=utf-8"}
    assert requests.get(demo_target.http_url + "/static/missing.png", timeout=5).status_code == 404
