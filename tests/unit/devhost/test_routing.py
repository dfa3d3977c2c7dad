"""Route templates: the ASP.NET Core syntax that Functions routes use."""

from __future__ import annotations

import pytest

from devhost.routing import RouteError, RouteTable, compile_route


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("health", "/health", {}),
        ("health", "/HEALTH", {}),  # literals match case-insensitively
        ("items/{id}", "/items/abc", {"id": "abc"}),
        ("items/{id}", "/items/a%2Fb", {"id": "a/b"}),  # values are percent-decoded after matching
        ("items/{id:int}", "/items/-12", {"id": "-12"}),
        ("items/{id:int?}", "/items", {}),
        ("items/{id=7}", "/items", {"id": "7"}),
        ("files/{*path}", "/files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("files/{name}.{ext}", "/files/report.json", {"name": "report", "ext": "json"}),
        ("c/{code:length(2,3):alpha}", "/c/abc", {"code": "abc"}),
        (
            "g/{id:guid}",
            "/g/6f1c7a52-0e5a-4d4c-9a43-2b8e8f2b7a11",
            {"id": "6f1c7a52-0e5a-4d4c-9a43-2b8e8f2b7a11"},
        ),
        ("r/{n:range(1,10)}", "/r/10", {"n": "10"}),
        ("x/{v:regex(^ab+$)}", "/x/abbb", {"v": "abbb"}),
        ("b/{flag:bool}", "/b/True", {"flag": "True"}),
        ("d/{n:decimal}", "/d/3.25", {"n": "3.25"}),
    ],
)
def test_matches(template: str, path: str, expected: dict[str, str]) -> None:
    assert compile_route(template).match(path) == expected


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("items/{id:int}", "/items/abc"),
        ("items/{id:int}", "/items/99999999999"),  # over int32
        ("items/{id}", "/items"),  # required parameter missing
        ("items/{id}", "/items/a/b"),
        ("c/{code:length(2,3)}", "/c/abcd"),
        ("r/{n:range(1,10)}", "/r/11"),
        ("m/{n:min(5)}", "/m/4"),
        ("a/{v:alpha}", "/a/abc1"),
        ("g/{id:guid}", "/g/not-a-guid"),
        ("health", "/healthz"),
    ],
)
def test_does_not_match(template: str, path: str) -> None:
    assert compile_route(template).match(path) is None


@pytest.mark.parametrize(
    "template",
    ["files/{*path}/more", "a/{id}/{id}", "a/{id:nosuch}", "a/{id", "a/{v:regex(()}", "a/{1x}"],
)
def test_bad_templates_are_rejected(template: str) -> None:
    with pytest.raises(RouteError):
        compile_route(template)


def test_most_specific_route_wins_whatever_the_registration_order() -> None:
    table = RouteTable("api")
    table.add("things/{*rest}", "catch_all", None)
    table.add("things/{id}", "plain", None)
    table.add("things/{id:int}", "typed", None)
    table.add("things/new", "literal", None)
    assert table.resolve("/api/things/new", "GET") == ("literal", {})
    assert table.resolve("/api/things/5", "GET") == ("typed", {"id": "5"})
    assert table.resolve("/api/things/x", "GET") == ("plain", {"id": "x"})
    assert table.resolve("/api/things/x/y", "GET") == ("catch_all", {"rest": "x/y"})


def test_method_mismatch_reports_the_allowed_methods() -> None:
    table = RouteTable("api")
    table.add("things", "list", frozenset({"GET"}))
    table.add("things", "create", frozenset({"POST"}))
    assert table.resolve("/api/things", "POST") == ("create", {})
    assert table.resolve("/api/things", "DELETE") == {"GET", "POST"}


def test_prefix_is_required_and_can_be_empty() -> None:
    prefixed = RouteTable("api")
    prefixed.add("health", "health", None)
    assert prefixed.resolve("/health", "GET") is None
    assert prefixed.resolve("/apihealth", "GET") is None
    bare = RouteTable("")
    bare.add("health", "health", None)
    assert bare.resolve("/health", "GET") == ("health", {})
