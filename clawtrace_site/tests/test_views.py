"""The one way an HTML view answers a domain error: the page again, the message, the status."""

from __future__ import annotations

import pytest
from django import forms
from django.http import HttpResponse
from django.test import RequestFactory
from django.views import View

from clawtrace_site.exceptions import ApplicationError, ConflictError, NotAllowedError
from clawtrace_site.views import ServiceErrorMixin, ServiceFormView, form_error_add


class _NameForm(forms.Form):
    name = forms.CharField()
    email = forms.EmailField(required=False)


def test_a_domain_error_naming_a_field_lands_on_that_field():
    form = _NameForm({"name": "x"})
    assert form.is_valid()
    form_error_add(
        form,
        ApplicationError(
            "bad", code="invalid_input", extra={"fields": {"email": ["Use another."]}}
        ),
    )
    assert form.errors == {"email": ["Use another."]}


def test_a_domain_error_without_a_known_field_goes_above_the_form():
    form = _NameForm({"name": "x"})
    assert form.is_valid()
    form_error_add(form, ConflictError("Taken.", extra={"fields": {"slug": ["Taken."]}}))
    assert form.non_field_errors() == ["Taken."]
    assert "slug" not in form.errors


@pytest.fixture
def page_template(settings, tmp_path):
    (tmp_path / "probe_form.html").write_text(
        "{{ form.non_field_errors }}|{{ form.name.errors }}|{{ extra }}"
    )
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], tmp_path]}
    ]
    return "probe_form.html"


def _form_view(page_template: str, error: ApplicationError | None):
    calls = []

    class ProbeFormView(ServiceFormView):
        template_name = page_template
        form_class = _NameForm

        def get_context_data(self, **kwargs):
            return super().get_context_data(extra="page context", **kwargs)

        def form_submit(self, form):
            calls.append(form.cleaned_data["name"])
            if error is not None:
                raise error
            return HttpResponse("done", status=201)

    return ProbeFormView.as_view(), calls


@pytest.mark.django_db
def test_a_valid_form_calls_the_service_and_returns_its_response(page_template):
    view, calls = _form_view(page_template, None)
    response = view(RequestFactory().post("/", {"name": "Acme"}))
    assert (response.status_code, response.content, calls) == (201, b"done", ["Acme"])


@pytest.mark.django_db
def test_an_invalid_form_comes_back_with_a_400_without_calling_the_service(page_template):
    view, calls = _form_view(page_template, None)
    response = view(RequestFactory().post("/", {}))
    response.render()
    assert response.status_code == 400
    assert b"required" in response.content
    assert calls == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotAllowedError("Admins only."), 403),
        (ConflictError("Admins only.", extra={"fields": {"name": ["Admins only."]}}), 409),
        (ApplicationError("Admins only."), 400),
    ],
)
def test_a_domain_error_shows_on_the_page_with_its_status(page_template, error, status):
    view, _ = _form_view(page_template, error)
    response = view(RequestFactory().post("/", {"name": "Acme"}))
    response.render()
    assert response.status_code == status
    assert b"Admins only." in response.content
    assert b"page context" in response.content


@pytest.mark.django_db
def test_a_domain_error_outside_a_form_gets_a_page_with_the_message_and_status(rf, admin_user):
    class ActionView(ServiceErrorMixin, View):
        def post(self, request):
            raise ConflictError("Someone else got there first.")

    request = rf.post("/")
    request.user = admin_user
    request.session = {}  # the context processors read it, as after SessionMiddleware
    response = ActionView.as_view()(request)
    assert response.status_code == 409
    assert b"Someone else got there first." in response.content


def test_other_errors_are_not_swallowed(rf):
    class BrokenView(ServiceErrorMixin, View):
        def get(self, request):
            raise KeyError("a bug, not a rule the user broke")

    with pytest.raises(KeyError):
        BrokenView.as_view()(rf.get("/"))
