"""Hostile input, sent to every URL pattern of the project.

The rule: every form and JSON endpoint answers malformed or hostile input with a clear 4xx (a
JSON body `{"error": {"code", "message", ...}}` under `/api/`, a 4xx page or the form again with
its errors elsewhere), never a 5xx and never a traceback; and nothing it is sent ends up in the
logs (bodies and query strings carry the privacy canary).

The walk uses `urlwalk.routes_walk`, like the tenant isolation test, so routes added by later
issues are covered without editing this file; their object kwargs come from the same registry
(`urlwalk.OBJECT_KWARG_FILLERS`), filled with the walker's own organization's objects so the
requests reach the form and serializer code rather than stopping at a 404.

Each role (anonymous, member, owner) gets:
- a systematic sweep: every route by every method with a fixed catalogue of hostile bodies
  (form, multipart, JSON of the wrong shape, invalid and deeply nested JSON, wrong content
  types, oversized bodies, too many fields), odd query strings, bad CSRF, and bad path values;
- a property-based exploration: hypothesis draws routes, methods, query strings and bodies
  (derandomized, bounded, so every run sends the same requests);
- a form fill: every POST form found on the pages the role can see is sent generated values in
  its own fields, so validation is exercised past the first field.
An operator (staff) also walks the admin, whose forms the three roles only meet as a redirect.

Every request runs inside a savepoint that is rolled back, so a hostile request that happens to
succeed (say, removing a member) does not take the objects away from the ones after it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape as html_unescape
from http.cookies import SimpleCookie
from urllib.parse import quote, urlencode, urlsplit

import pytest
from django.contrib import admin as django_admin
from django.core.cache import cache
from django.db import transaction
from django.http import HttpResponseBase
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from accounts.models import User
from accounts.tests.factories import UserFactory
from analytics.tests.factories import api_key_with_value, is_organization_api_path
from clawtrace_site.tests.urlwalk import (
    OBJECT_KWARG_FILLERS,
    ORG_KWARG,
    THIRD_PARTY_KWARG_VALUES,
    OrgWorld,
    Route,
    UnknownUrlKwargError,
    org_world_create,
    routes_walk,
    url_build,
    url_fill,
)
from devices.protocol import is_protocol_path

CANARY = "CANARY-7f3a9c"
ROLES = ("anonymous", "member", "owner")
API_PREFIX = "/api/"

# Requests sent, per role: `conftest.py` here prints the total at the end of every run.
REQUESTS_SENT: Counter[str] = Counter()
MINIMUM_SWEEP_REQUESTS_PER_ROLE = 3000
EXPLORATION_EXAMPLES_PER_ROLE = 400
FORM_EXAMPLES_PER_ROLE = 250

# --- The hostile catalogue ----------------------------------------------------------------------

# Names the project's forms and serializers read, plus ones nobody should accept.
FIELD_NAMES = [
    "name",
    "email",
    "role",
    "organization",
    "organization_id",
    "slug",
    "plan",
    "login",
    "password",
    "password1",
    "password2",
    "oldpassword",
    "remember",
    "code",
    "token",
    "key",
    "action",
    "next",
    "is_staff",
    "is_superuser",
    "id",
    "pk",
    "user",
    "membership_id",
    "csrfmiddlewaretoken",
    "__proto__",
    "role[]",
    "",
]

HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    f"{CANARY}\x00{CANARY}",
    CANARY * 400,
    "x" * 70_000,
    "' OR '1'='1' --",
    "1; DROP TABLE accounts_user; --",
    f"<script>alert('{CANARY}')</script>",
    "{{ settings.SECRET_KEY }}{% debug %}",
    "${jndi:ldap://example.invalid/a}",
    "../../../../etc/passwd",
    "%00%ff%fe",
    "%s%s%s%n",
    "\u202egnp.exe",
    "日本語のテキスト",
    "😀" * 40,
    "\ufeff\u200b\u200d",
    "-1",
    "0",
    "9" * 40,
    "1e309",
    "NaN",
    "true",
    "null",
    "[]",
    "{}",
    "owner",
    "admin",
    "member",
    "alpha-fuzz",
    "bravo-secret-works",
    "owner@alpha-fuzz.example",
    f"{CANARY}@example.com",
    "correct horse battery staple",
    "javascript:alert(1)",
    "//evil.example/",
]

QUERY_STRINGS = [
    # Odd but well-formed.
    f"page=abc&page_size=-1&format=xml&ordering=-password&q={CANARY}&next=//evil.example/",
    "page=-1&limit=99999999999999999999999&offset=NaN&o=99&e=1&p=x&all=&_changelist_filters=%00",
    "page=99999999999999999999999999&format=json&format=api&search=%27%20OR%201%3D1--",
    # Malformed: NUL, invalid UTF-8, bare separators, repeated keys, huge key.
    f"email=%00{CANARY}&email=%ff%fe&&&=&%=%&a[b][c]=d&{'k' * 5000}=v",
    f"next=javascript:alert(1)&organization=bravo-secret-works&token=%00&key={CANARY}",
]

HOSTILE_PATH_VALUES = [
    "0",
    "-1",
    "9" * 30,
    "1.5",
    "abc",
    "a" * 300,
    "\x00",
    "..",
    "%",
    "' OR 1=1 --",
    "<script>x</script>",
    "日本語",
    "\u202e",
    " ",
]

# How a re-rendered page shows that input was refused: Django's `errorlist`, our `.form-error` /
# `.message-error`, or allauth's "invalid link" pages.
FORM_ERROR_MARKERS = (b"errorlist", b"error", b"invalid")

METHODS_WITH_BODY = ("POST", "PUT", "PATCH", "DELETE")
METHODS_WITHOUT_BODY = ("GET", "HEAD", "OPTIONS", "PROPFIND")
OVERSIZED_BYTES = 3 * 1024 * 1024  # above DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
DEEP_JSON_DEPTH = 100_000


def _hostile_form() -> dict[str, list[str]]:
    return {
        name or "_": [HOSTILE_STRINGS[(i * 7 + j) % len(HOSTILE_STRINGS)] for j in range(1 + i % 3)]
        for i, name in enumerate(FIELD_NAMES)
    }


def _hostile_json() -> dict:
    return {
        "role": ["owner"],
        "email": {"$ne": None},
        "name": 9**99,
        "organization": "bravo-secret-works",
        "organization_id": 1,
        "is_superuser": True,
        "password": None,
        "nested": [[[{"a": [1.5e308, -0.0, CANARY]}]]],
        "text": f"{CANARY}\x00\u202e😀",
    }


@dataclass(frozen=True)
class Body:
    label: str
    content_type: str
    data: bytes


def _fixed_bodies() -> list[Body]:
    form = _hostile_form()
    return [
        Body("form", "application/x-www-form-urlencoded", urlencode(form, doseq=True).encode()),
        Body("multipart", MULTIPART_CONTENT, encode_multipart(BOUNDARY, form)),
        Body("json object", "application/json", json.dumps(_hostile_json()).encode()),
        Body("json list", "application/json", json.dumps([CANARY, None, [1, 2]]).encode()),
        Body("json scalar", "application/json", b'"' + CANARY.encode() + b'"'),
        Body("invalid json", "application/json", b'{"role": "owner",, ' + CANARY.encode()),
        Body(
            "deep json",
            "application/json",
            b"[" * DEEP_JSON_DEPTH + b"]" * DEEP_JSON_DEPTH,
        ),
        Body(
            "json NaN and huge ints",
            "application/json",
            b'{"role": NaN, "x": ' + b"9" * 5000 + b"}",
        ),
        Body("xml", "application/xml", f"<?xml version='1.0'?><role>{CANARY}</role>".encode()),
        Body("multipart without boundary", "multipart/form-data", b"--x\r\n\r\n" + CANARY.encode()),
        Body("binary as utf-16 json", "application/json; charset=utf-16", b"\xff\xfe\x00\xd8{"),
        Body(
            "form with unknown charset",
            "application/x-www-form-urlencoded; charset=nope",
            b"role=owner",
        ),
        Body("no content type", "", CANARY.encode()),
    ]


def _oversized_bodies() -> list[Body]:
    return [
        Body(
            "oversized form",
            "application/x-www-form-urlencoded",
            b"name=" + b"A" * OVERSIZED_BYTES + CANARY.encode(),
        ),
        Body(
            "oversized json",
            "application/json",
            b'{"role": "' + b"A" * OVERSIZED_BYTES + CANARY.encode() + b'"}',
        ),
        Body(
            "too many fields",
            "application/x-www-form-urlencoded",
            "&".join(f"f{i}={CANARY}" for i in range(1500)).encode(),
        ),
    ]


# --- Sending and judging ------------------------------------------------------------------------


@dataclass
class Probe:
    method: str
    path: str
    query: str = ""
    body: Body | None = None
    headers: dict[str, str] = field(default_factory=dict)
    enforce_csrf: bool = False

    def describe(self) -> str:
        body = f" [{self.body.label}, {len(self.body.data)} bytes]" if self.body else ""
        query = f"?{self.query[:80]}" if self.query else ""
        return f"{self.method} {self.path[:120]}{query}{body}"


class Walker:
    """Sends probes as one role and collects every broken promise."""

    def __init__(self, role: str, world: OrgWorld, user: User | None = None) -> None:
        self.role = role
        self.client = Client(raise_request_exception=False)
        self.csrf_client = Client(enforce_csrf_checks=True, raise_request_exception=False)
        user = user or {"member": world.member, "owner": world.owner}.get(role)
        if user is not None:
            self.client.force_login(user)
            self.csrf_client.cookies = SimpleCookie(self.client.cookies.output(header=""))
        self.csrf_client.cookies["csrftoken"] = "a" * 32
        # The organization API takes an organization API key, not a session: members and
        # owners send a real one of their organization there, so the probes reach its views.
        self.api_key = None
        if user is not None and role in ("member", "owner"):
            self.api_key = api_key_with_value(world.organization, name=f"walk as {role}")[1]
        self.failures: list[str] = []
        self.sent = 0
        self.require_form_error_on_200 = True

    def send(self, probe: Probe) -> HttpResponseBase:
        client = self.csrf_client if probe.enforce_csrf else self.client
        cookies = client.cookies.output(header="")
        extra: dict[str, str] = {"QUERY_STRING": probe.query}
        if self.api_key and is_organization_api_path(probe.path):
            extra["HTTP_AUTHORIZATION"] = f"Bearer {self.api_key}"
        extra.update(probe.headers)
        cache.clear()  # allauth's rate limits would otherwise turn later probes into 429s
        with transaction.atomic():
            if probe.body is None:
                response = client.generic(probe.method, probe.path, **extra)
            else:
                response = client.generic(
                    probe.method,
                    probe.path,
                    data=probe.body.data,
                    content_type=probe.body.content_type,
                    **extra,
                )
            transaction.set_rollback(True)
        client.cookies = SimpleCookie(cookies)  # the session row was rolled back with the rest
        self.sent += 1
        REQUESTS_SENT[self.role] += 1
        problem = _response_problem(probe, response, self.require_form_error_on_200)
        if problem:
            self.failures.append(f"{self.role}: {probe.describe()} -> {problem}")
        return response


def _response_problem(probe: Probe, response, require_form_error_on_200: bool = True) -> str | None:
    status = response.status_code
    exc_info = getattr(response, "exc_info", None)
    if exc_info or status >= 500:
        error = exc_info[1] if exc_info else None
        return f"{status} {type(error).__name__ if error else ''}: {str(error)[:200]}"
    content = response.content if not getattr(response, "streaming", False) else b""
    if b"Traceback (most recent call last)" in content or b'id="traceback"' in content:
        return f"{status} with a traceback in the body"
    is_html = response.get("Content-Type", "").startswith("text/html")
    # Hostile input is never accepted, so a 200 page must be the form again saying what is wrong.
    shows_error = any(marker in content.lower() for marker in FORM_ERROR_MARKERS)
    if (
        require_form_error_on_200
        and probe.method in METHODS_WITH_BODY
        and status == 200
        and is_html
        and not shows_error
    ):
        return "200 page after hostile input without a form error"
    if probe.path.startswith(API_PREFIX) and 400 <= status < 500 and probe.method != "HEAD":
        if not response.get("Content-Type", "").startswith("application/json"):
            return f"{status} under /api/ with {response.get('Content-Type')!r}, not JSON"
        try:
            body = json.loads(content)
            if is_protocol_path(probe.path) and isinstance(body.get("error"), str):
                # The sync protocol's own shape (docs/sync-protocol.md): a code and a sentence.
                # (What Django refuses before any view runs, a bad Host say, keeps the
                # project's shape from handler400, checked below.)
                assert body["error"]
                assert isinstance(body["detail"], str) and body["detail"]
            else:
                error = body["error"]
                assert isinstance(error["code"], str) and error["code"]
                assert isinstance(error["message"], str) and error["message"]
        except (ValueError, KeyError, TypeError, AssertionError):
            return f"{status} under /api/ without the error shape: {content[:200]!r}"
    return None


# --- URLs ---------------------------------------------------------------------------------------


def _route_kwargs(
    route: Route, world: OrgWorld, overrides: dict[str, object] | None = None
) -> dict[str, object]:
    values: dict[str, object] = dict(overrides or {})
    for kwarg in route.kwargs:
        if kwarg in values:
            continue
        if kwarg == ORG_KWARG:
            values[kwarg] = world.organization.slug
        elif kwarg in OBJECT_KWARG_FILLERS:
            values[kwarg] = OBJECT_KWARG_FILLERS[kwarg][0](world)
        elif kwarg in THIRD_PARTY_KWARG_VALUES:
            values[kwarg] = THIRD_PARTY_KWARG_VALUES[kwarg]
        else:
            raise UnknownUrlKwargError(
                f"{route.name or route.pattern} takes {kwarg!r}: register it in "
                "urlwalk.OBJECT_KWARG_FILLERS so the hostile-input walk can reach the view."
            )
    return values


def _walkable_routes() -> list[Route]:
    # Every route, admin and allauth included: they are forms too.
    return list(routes_walk())


def _sweep_probes(
    route: Route,
    world: OrgWorld,
    *,
    full: bool = True,
    overrides: dict[str, object] | None = None,
) -> Iterator[Probe]:
    """The catalogue for one route. `full=False` (a route whose view another route already got
    the full catalogue for, like the admin's per-model pages) keeps one probe of each kind."""
    kwargs = _route_kwargs(route, world, overrides)
    path = url_build(route, kwargs)
    if not full:
        yield Probe("GET", path, QUERY_STRINGS[3])
        for method, body in zip(METHODS_WITH_BODY, _fixed_bodies()[:8:2], strict=True):
            yield Probe(method, path, body=body)
        yield Probe("POST", path, body=_fixed_bodies()[0], enforce_csrf=True)
        for kwarg in route.kwargs:
            for value in HOSTILE_PATH_VALUES[::3]:
                yield Probe("GET", url_fill(route, {**kwargs, kwarg: value}))
        return
    for query in QUERY_STRINGS:
        yield Probe("GET", path, query)
    for method in METHODS_WITHOUT_BODY[1:]:
        yield Probe(method, path, QUERY_STRINGS[0])
    for method in METHODS_WITH_BODY:
        for body in _fixed_bodies():
            yield Probe(method, path, body=body)
    for body in _oversized_bodies():
        yield Probe("POST", path, body=body)
    yield Probe("PATCH", path, body=_oversized_bodies()[1])
    form = _fixed_bodies()[0]
    yield Probe("POST", path, body=form, enforce_csrf=True)
    yield Probe("POST", path, body=form, enforce_csrf=True, headers={"HTTP_X_CSRFTOKEN": "b" * 32})
    yield Probe("DELETE", path, body=_fixed_bodies()[2], enforce_csrf=True)
    yield Probe("GET", path, headers={"HTTP_HOST": "evil.example:99999"})
    yield Probe("GET", path, headers={"HTTP_ACCEPT": "application/xml;q=2, */*;q=nope"})
    for kwarg in route.kwargs:
        for value in HOSTILE_PATH_VALUES:
            bad_path = url_fill(route, {**kwargs, kwarg: value})
            yield Probe("GET", bad_path)
            yield Probe("POST", bad_path, body=form)


# --- Hypothesis strategies ----------------------------------------------------------------------

_text = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=60),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20).map(lambda s: s + CANARY),
)
_keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=20))
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**20, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    _text,
)


def _json_containers(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4)


_json_values = st.recursive(_json_leaf, _json_containers, max_leaves=12)
_form_data = st.dictionaries(
    _keys.map(lambda key: key or "_"), st.one_of(_text, st.lists(_text, max_size=3)), max_size=8
)


@st.composite
def _bodies(draw) -> Body | None:
    kind = draw(st.sampled_from(["none", "form", "multipart", "json", "raw"]))
    if kind == "none":
        return None
    if kind == "form":
        data = draw(_form_data)
        return Body(
            "hypothesis form",
            "application/x-www-form-urlencoded",
            urlencode(data, doseq=True).encode(),
        )
    if kind == "multipart":
        return Body(
            "hypothesis multipart", MULTIPART_CONTENT, encode_multipart(BOUNDARY, draw(_form_data))
        )
    if kind == "json":
        return Body("hypothesis json", "application/json", json.dumps(draw(_json_values)).encode())
    content_type = draw(
        st.sampled_from(
            [
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=zz",
                "text/plain",
                "application/json; charset=latin-1",
            ]
        )
    )
    return Body("hypothesis raw", content_type, draw(st.binary(max_size=300)))


_queries = st.lists(st.tuples(_keys, _text), max_size=5).map(
    lambda pairs: urlencode(pairs, quote_via=quote)
)
_methods = st.sampled_from(METHODS_WITH_BODY + METHODS_WITHOUT_BODY)


# --- The tests ----------------------------------------------------------------------------------


@pytest.fixture
def fuzz_world(db) -> OrgWorld:
    return org_world_create(name="Alpha Fuzz", slug="alpha-fuzz", email_domain="alpha-fuzz.example")


@pytest.mark.parametrize("role", ROLES)
def test_every_url_answers_a_hostile_catalogue_with_a_4xx_never_a_500(
    role: str, fuzz_world: OrgWorld, caplog: pytest.LogCaptureFixture
):
    caplog.set_level("DEBUG")
    walker = Walker(role, fuzz_world)
    # A view met again under another URL (the admin's per-model pages) gets the short
    # catalogue; a viewset's list and detail routes differ by their kwargs, so both get it all.
    views_swept: set[tuple[str, tuple[str, ...]]] = set()
    for route in _walkable_routes():
        full = (route.lookup, route.kwargs) not in views_swept
        views_swept.add((route.lookup, route.kwargs))
        for probe in _sweep_probes(route, fuzz_world, full=full):
            walker.send(probe)

    print(f"\nhostile-input sweep as {role}: {walker.sent} requests")
    assert not walker.failures, "\n".join(walker.failures[:60])
    assert CANARY not in caplog.text
    assert walker.sent > MINIMUM_SWEEP_REQUESTS_PER_ROLE


_POST_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.DOTALL | re.IGNORECASE)
_ACTION = re.compile(r"""action=["']([^"']*)["']""", re.IGNORECASE)
_FIELD_NAME = re.compile(
    r"""<(?:input|select|textarea|button)\b[^>]*\bname=["']([^"']+)["']""", re.I
)

# Values for a form's own fields: plausible ones, so validation gets past the first field,
# mixed with the hostile catalogue and generated text.
_form_field_values = st.one_of(
    st.sampled_from(["owner", "admin", "member", "alpha-fuzz", "Alpha Fuzz", "on", "1"]),
    st.sampled_from(["engineer@alpha-fuzz.example", "new@alpha-fuzz.example", "a@b.co"]),
    st.sampled_from(HOSTILE_STRINGS),
    st.emails().map(lambda email: email[:300]),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=80),
)


def _post_forms(html: str, page_path: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(path, query, field names) of every POST form on a page, as the browser would send it."""
    forms = []
    for attributes, inner in _POST_FORM.findall(html):
        if "post" not in attributes.lower():
            continue
        action = _ACTION.search(attributes)
        target = urlsplit(html_unescape(action.group(1)) if action and action.group(1) else "")
        if target.netloc:
            continue  # a form that posts elsewhere is not ours to fuzz
        names = tuple(dict.fromkeys(_FIELD_NAME.findall(inner)))
        forms.append((target.path or page_path, target.query, names))
    return forms


@pytest.mark.parametrize("role", ROLES)
def test_every_form_answers_generated_values_in_its_own_fields_with_a_4xx_or_its_errors(
    role: str, fuzz_world: OrgWorld, caplog: pytest.LogCaptureFixture
):
    """The forms are found by reading every page the role can GET, so a form a later issue
    adds is fuzzed field by field without being named here."""
    caplog.set_level("DEBUG")
    walker = Walker(role, fuzz_world)
    forms: set[tuple[str, str, tuple[str, ...]]] = set()
    for route in _walkable_routes():
        path = url_build(route, _route_kwargs(route, fuzz_world))
        page = walker.send(Probe("GET", path))
        if page.status_code == 200 and page.get("Content-Type", "").startswith("text/html"):
            forms.update(_post_forms(page.content.decode(errors="replace"), path))
    assert forms, "no POST form found on any page: the form walk would prove nothing"
    ordered_forms = sorted(forms)

    @settings(
        max_examples=FORM_EXAMPLES_PER_ROLE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fill_in(data: st.DataObject):
        path, query, names = data.draw(st.sampled_from(ordered_forms))
        values = data.draw(st.fixed_dictionaries({name: _form_field_values for name in names}))
        body = urlencode(values).encode()
        walker.send(
            Probe(
                "POST",
                path,
                query,
                Body("generated form", "application/x-www-form-urlencoded", body),
            )
        )

    fill_in()

    print(f"\nhostile-input form fill as {role}: {len(forms)} forms, {walker.sent} requests")
    assert not walker.failures, "\n".join(walker.failures[:60])
    assert CANARY not in caplog.text


@pytest.mark.parametrize("role", ROLES)
def test_every_url_answers_generated_hostile_requests_with_a_4xx_never_a_500(
    role: str, fuzz_world: OrgWorld, caplog: pytest.LogCaptureFixture
):
    caplog.set_level("DEBUG")
    walker = Walker(role, fuzz_world)
    routes = _walkable_routes()
    paths = [url_build(route, _route_kwargs(route, fuzz_world)) for route in routes]

    @settings(
        max_examples=EXPLORATION_EXAMPLES_PER_ROLE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        path=st.sampled_from(paths),
        method=_methods,
        query=_queries,
        body=_bodies(),
        enforce_csrf=st.booleans(),
    )
    def explore(path: str, method: str, query: str, body: Body | None, enforce_csrf: bool):
        walker.send(Probe(method, path, query, body, enforce_csrf=enforce_csrf))

    explore()

    print(f"\nhostile-input exploration as {role}: {walker.sent} requests")
    assert not walker.failures, "\n".join(walker.failures[:60])
    assert CANARY not in caplog.text
    assert walker.sent >= EXPLORATION_EXAMPLES_PER_ROLE


def _admin_object_id(route: Route) -> dict[str, object]:
    """A real row for the admin's per-object pages, so an operator's probes reach the forms."""
    if "object_id" not in route.kwargs:
        return {}
    for model in django_admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
        if (route.name or "").startswith(prefix):
            row = model._default_manager.order_by("pk").first()
            return {"object_id": row.pk} if row is not None else {}
    return {}


def test_the_admin_answers_an_operators_hostile_input_with_a_4xx_never_a_500(
    fuzz_world: OrgWorld, caplog: pytest.LogCaptureFixture
):
    """The admin is staff-only, so the three roles above only meet its login redirect; an
    operator reaches its forms, changelist filters and searches."""
    caplog.set_level("DEBUG")
    operator = UserFactory(email="ops@clawtrace.example", is_staff=True, is_superuser=True)
    walker = Walker("operator", fuzz_world, user=operator)
    # Django's admin answers a POST to a page without a form (index, logout) with the page.
    walker.require_form_error_on_200 = False
    for route in _walkable_routes():
        if route.top_namespace != "admin":
            continue
        overrides = _admin_object_id(route)
        path = url_build(route, _route_kwargs(route, fuzz_world, overrides))
        for query in QUERY_STRINGS:  # changelist search, filters, ordering and paging
            walker.send(Probe("GET", path, query))
        for probe in _sweep_probes(route, fuzz_world, full=False, overrides=overrides):
            walker.send(probe)

    print(f"\nhostile-input admin sweep as operator: {walker.sent} requests")
    assert not walker.failures, "\n".join(walker.failures[:60])
    assert CANARY not in caplog.text
    assert walker.sent > 500


# --- The faults the walk found, pinned one by one ------------------------------------------------


def _api_error(response) -> dict:
    assert response["Content-Type"].startswith("application/json")
    return response.json()["error"]


def test_api_answers_deeply_nested_json_with_a_400_not_a_recursion_error(
    fuzz_world: OrgWorld, client_for
):
    client = client_for(fuzz_world.owner)
    url = f"/api/v1/organizations/alpha-fuzz/members/{fuzz_world.membership.pk}/"
    deep = b"[" * DEEP_JSON_DEPTH + b"]" * DEEP_JSON_DEPTH
    response = client.patch(url, deep, content_type="application/json")
    assert response.status_code == 400
    assert _api_error(response)["code"] == "parse_error"


def test_api_answers_a_json_body_over_the_upload_limit_with_a_413(
    fuzz_world: OrgWorld, client_for, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = client_for(fuzz_world.owner)
    url = f"/api/v1/organizations/alpha-fuzz/members/{fuzz_world.membership.pk}/"
    padded = b'{"role": "admin"' + b" " * 1000 + b"}"  # valid, only too big
    response = client.patch(url, padded, content_type="application/json")
    assert response.status_code == 413
    assert _api_error(response)["code"] == "request_too_large"
    fuzz_world.membership.refresh_from_db()
    assert fuzz_world.membership.role == "member"
    small = client.patch(url, b'{"role": "admin"}', content_type="application/json")
    assert small.status_code == 200


def test_api_errors_are_json_even_when_html_or_the_browsable_api_is_asked_for(
    fuzz_world: OrgWorld, client_for
):
    client = client_for(fuzz_world.member)
    url = f"/api/v1/organizations/alpha-fuzz/members/{fuzz_world.membership.pk}/"
    for response in (
        client.get("/api/v1/organizations/alpha-fuzz/members/?format=api&page=x"),
        client.delete(url, headers={"accept": "text/html"}),
        Client().get("/api/v1/organizations/", headers={"accept": "text/html"}),
    ):
        assert 400 <= response.status_code < 500
        assert _api_error(response)["message"]


def test_schema_view_errors_are_json_not_openapi_yaml():
    response = Client().post("/api/schema/", {"x": "y"})
    assert response.status_code == 405
    assert _api_error(response)["code"] == "method_not_allowed"


def test_csrf_failure_under_api_answers_json_and_elsewhere_a_page():
    client = Client(enforce_csrf_checks=True)
    api = client.post("/api/v2/anything/", {"a": "b"})
    assert api.status_code == 403
    assert _api_error(api)["code"] == "csrf_failed"
    page = client.post("/orgs/new/", {"name": "x"})
    assert page.status_code == 403
    assert page["Content-Type"].startswith("text/html")


def test_the_walk_covers_every_kind_of_route():
    names = {route.name for route in _walkable_routes()}
    assert {
        "landing",
        "account_login",
        "account_signup",
        "accounts:member_role_change",
        "accounts:invitation_accept",
        "api:membership_detail",
        "api_not_found",
        "admin:index",
    } <= names


def test_the_walk_fails_on_a_url_kwarg_it_cannot_fill(fuzz_world: OrgWorld):
    route = Route(
        "o/<slug:org_slug>/widgets/<int:widget_id>/", "x", "x.view", ("org_slug", "widget_id")
    )
    with pytest.raises(UnknownUrlKwargError, match="widget_id"):
        _route_kwargs(route, fuzz_world)


def test_the_judge_catches_a_500_and_a_non_json_api_error():
    class FakeResponse(dict):
        def __init__(self, status_code, content, content_type):
            super().__init__({"Content-Type": content_type})
            self.status_code = status_code
            self.content = content

    page = Probe("POST", "/orgs/new/")
    api = Probe("PATCH", "/api/v1/organizations/x/members/1/")
    assert _response_problem(page, FakeResponse(500, b"", "text/html"))
    assert _response_problem(
        page, FakeResponse(400, b"Traceback (most recent call last)", "text/html")
    )
    assert _response_problem(api, FakeResponse(400, b"<h1>Bad</h1>", "text/html"))
    assert _response_problem(api, FakeResponse(400, b'{"detail": "x"}', "application/json"))
    assert _response_problem(page, FakeResponse(200, b"<form>Welcome</form>", "text/html"))
    assert _response_problem(page, FakeResponse(400, b"<ul class=errorlist>", "text/html")) is None
    assert _response_problem(page, FakeResponse(200, b"<ul class=errorlist>", "text/html")) is None
    ok = b'{"error": {"code": "invalid_input", "message": "The request is not valid."}}'
    assert _response_problem(api, FakeResponse(400, ok, "application/json")) is None
