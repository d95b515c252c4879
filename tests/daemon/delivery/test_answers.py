"""Who answered: only Compass's own 202 delivers an event; a portal's or a proxy's page never does.

``classify`` is the whole decision the sender acts on, so it is tested here over the answers a
portal, a proxy and Compass really give; the transport tests show the same over HTTP.
"""

from __future__ import annotations

import pytest

from daemon.sinks import Outcome
from daemon.sinks.compass.answers import Answer, page_title, who_answered
from daemon.sinks.compass.transport import classify

PORTAL = (
    "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>\n"
    "<title>\n   Access   blocked &amp; logged\n\t- Example Corp   Web Gateway </title>"
    "<script>document.title = 'not this'</script></head><body><h1>Blocked</h1></body></html>"
)


@pytest.mark.parametrize(
    ("status", "content_type", "body", "location", "outcome"),
    [
        (202, None, "", None, "accepted"),  # Compass as documented: 202, no body
        (202, "application/json", "", None, "accepted"),
        (202, "application/json", "{}", None, "accepted"),  # a JSON acknowledgement is tolerated
        (202, "application/json; charset=utf-8", ' {"ok": true} ', None, "accepted"),
        (202, None, "{}", None, "accepted"),
        (202, "text/html", PORTAL, None, "not_compass"),
        (202, "text/plain", "{}", None, "not_compass"),
        (202, "application/json", "<html>oops</html>", None, "not_compass"),
        (200, "text/html; charset=utf-8", PORTAL, None, "not_compass"),
        (200, "application/json", "{}", None, "not_compass"),  # Compass never answers an event 200
        (200, None, "", None, "not_compass"),
        (204, None, "", None, "not_compass"),
        (201, "application/json", "{}", None, "not_compass"),
        (302, "text/html", "", "https://login.portal.example/?next=x", "not_compass"),
        (301, None, "", "https://elsewhere.example/", "not_compass"),
        (307, None, "", None, "not_compass"),
        (407, "text/html", PORTAL, None, "not_compass"),
        (403, "text/html", PORTAL, None, "not_compass"),  # a proxy's "access denied" page
        (403, "application/json", '{"message": "forbidden"}', None, "unauthorized"),
        (401, "text/plain", "Client must be authenticated", None, "unauthorized"),
        (404, "application/json", '{"errors": []}', None, "not_found"),
        (400, "application/json", '{"errors": [{"type": "FORMAT_INVALID"}]}', None, "rejected"),
        (429, None, "", None, "retry"),
        (502, "text/html", PORTAL, None, "retry"),  # a 5xx page: retried anyway, never a pause
        (503, None, "", None, "retry"),
    ],
)
def test_only_compass_s_202_is_accepted(
    status: int, content_type: str | None, body: str, location: str | None, outcome: Outcome
) -> None:
    result = classify(Answer(status, content_type, body, location))
    assert (result.outcome, result.status) == (outcome, status)
    if outcome == "not_compass":
        assert result.answer is not None
        assert "a proxy or captive portal may be in the way" in result.detail


def test_a_portal_page_is_named_by_its_title_not_pasted() -> None:
    result = classify(Answer(200, "text/html; charset=utf-8", PORTAL))
    assert result.detail == (
        "HTTP 200 text/html, page titled 'Access blocked & logged - Example Corp Web Gateway'; "
        "a proxy or captive portal may be in the way"
    )
    assert result.answer is not None
    assert result.answer.fields() == {
        "status": 200,
        "content_type": "text/html",
        "title": "Access blocked & logged - Example Corp Web Gateway",
        "location_host": None,
    }


def test_a_redirect_is_named_by_its_host() -> None:
    result = classify(Answer(302, "text/html", "", "https://login.portal.example:8443/sso?token=secret"))
    assert result.detail.startswith("HTTP 302 text/html, redirect to login.portal.example;")
    assert "secret" not in result.detail and "/sso" not in result.detail
    assert "compass.base_url" in result.detail  # a redirect can also be a wrong address
    assert result.answer is not None and result.answer.fields()["location_host"] == "login.portal.example"


def test_an_error_page_from_compass_s_side_is_named_not_pasted() -> None:
    result = classify(Answer(502, "text/html", PORTAL + "x" * 5000))
    assert result.outcome == "retry"
    assert (
        result.detail
        == "HTTP 502 text/html, page titled 'Access blocked & logged - Example Corp Web Gateway'"
    )


def test_a_page_without_a_content_type_is_still_a_page() -> None:
    answer = Answer(200, None, "\n  <html><head><title>Hotel WiFi</title></head></html>")
    assert answer.html and answer.title == "Hotel WiFi"
    assert who_answered(answer) == "not_compass"


@pytest.mark.parametrize(
    ("status", "content_type", "body", "who"),
    [
        (200, "application/json", '{"data": {}}', "compass_accepted"),
        (200, "text/plain", '{"cloudId": "c"}', "compass_accepted"),
        (200, "text/html", PORTAL, "not_compass"),
        (200, "application/json", "<html><title>x</title></html>", "not_compass"),
        (200, "application/json", "", "not_compass"),
        (202, None, "", "not_compass"),
        (302, None, "", "not_compass"),
        (401, "application/json", "{}", "compass"),
        (400, "application/json", '{"errors": []}', "compass"),
    ],
)
def test_graphql_expects_200_json(status: int, content_type: str | None, body: str, who: str) -> None:
    assert who_answered(Answer(status, content_type, body), "json") == who


def test_page_title_is_bounded_collapsed_and_safe() -> None:
    assert page_title("<title>" + "word " * 100 + "</title>") == ("word " * 24).strip()[:117] + "..."
    assert len(page_title("<title>" + "x" * 10_000 + "</title>") or "") == 120
    assert page_title("<title>a\x00b\x1b[31mc\u202e</title>") == "a b [31mc"
    assert page_title("<html><body>no title</body></html>") is None
    assert page_title("<title>   </title>") is None
    assert page_title("<title>unterminated <b>page") == "unterminated page"
    assert page_title("<titl<<e>>><title>ok</title><title>second</title>") == "ok"
    assert page_title("<svg><title>icon</title></svg>") == "icon"  # the first one, whatever its place
    assert page_title("") is None
