"""Which recorded names are secrets, and the `${ENV}` references that replace their values."""

from __future__ import annotations

import pytest

from workload.authoring.harvalues import SECRET_NAME, Secrets, escape


@pytest.mark.parametrize("name", ["password", "Authorization", "X-Api-Key", "api_key", "access_token", "session_id",
                                  "x-auth-token", "client_secret", "key", "jwt"])
def test_secret_names(name):
    assert SECRET_NAME.search(name)


@pytest.mark.parametrize("name", ["author", "authors", "author_name", "name", "limit", "keyword", "page"])
def test_ordinary_names(name):
    assert not SECRET_NAME.search(name)


def test_one_reference_per_value_and_a_new_name_per_new_value():
    secrets = Secrets()
    assert secrets.ref("HEADER", "X-Api-Key", "k-1111") == "${HEADER_X_API_KEY}"
    assert secrets.ref("HEADER", "X-Api-Key", "k-1111") == "${HEADER_X_API_KEY}"
    assert secrets.ref("HEADER", "x-api-key", "k-2222") == "${HEADER_X_API_KEY_2}"
    secrets.remember("SET_COOKIE", "session", "s-3333")
    assert secrets.used == ["HEADER_X_API_KEY", "HEADER_X_API_KEY_2"]
    assert secrets.scrub({"path": "/a/s-3333/k-1111", "n": 1, "list": ["k-2222x"]}) == {
        "path": "/a/${SET_COOKIE_SESSION}/${HEADER_X_API_KEY}", "n": 1, "list": ["${HEADER_X_API_KEY_2}x"]}
    assert secrets.used[-1] == "SET_COOKIE_SESSION"


def test_escape_leaves_ordinary_text_alone():
    assert escape("plain {text} $HOME") == "plain {text} $HOME"
    assert escape("{{a}} ${B} {%c%} {#d#}") == "{{ '{{' }}a}} {{ '$' }}{B} {{ '{%' }}c%} {{ '{#' }}d#}"
