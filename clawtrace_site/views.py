"""Shared plumbing for HTML views: how a domain error from a service reaches the user.

Services raise `ApplicationError` (and its `NotAllowedError`, `ConflictError`) for a rule the
user broke. An HTML view answers it with the page again, the message on it and the error's 4xx
status; never a 500, and never a redirect, which would lose the status. The rule is written once
here: `ServiceErrorMixin` catches the error around the handler, and the view only says where its
page shows the message (`service_error_response`). `ServiceFormView` does that for a page with
one form: the message goes on the form, on the field the error names when there is one.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.views.generic.edit import FormView

from clawtrace_site.exceptions import ApplicationError


class ServiceErrorMixin:
    """Answers a domain error raised while handling the request with
    `service_error_response(request, error)`.

    Put it after the org mixin (`class V(OrgMemberRequiredMixin, ServiceErrorMixin, View)`) so
    that the answer is rendered inside the org's scope like the page itself. A service has
    rolled its transaction back before its error arrives here.
    """

    service_error_template_name = "errors/service_error.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return super().dispatch(request, *args, **kwargs)
        except ApplicationError as error:
            return self.service_error_response(request, error)

    def service_error_response(self, request: HttpRequest, error: ApplicationError) -> HttpResponse:
        """By default a page with only the message; views override it to show their own page."""
        return render(
            request,
            self.service_error_template_name,
            {"error": error, "status_code": error.status_code},
            status=error.status_code,
        )


def form_error_add(form: forms.Form, error: ApplicationError) -> None:
    """Put a domain error on a form: the messages it names per field (`extra["fields"]`, the
    same ones the API answers with) on those fields of the form, otherwise its message above
    the form."""
    placed = False
    for field, messages in (error.extra.get("fields") or {}).items():
        if field in form.fields:
            for message in messages:
                form.add_error(field, message)
            placed = True
    if not placed:
        form.add_error(None, error.message)


class ServiceFormView(ServiceErrorMixin, FormView):
    """A page with one form whose valid submission calls a service.

    Subclasses implement `form_submit(form)`: call the service, return the response (usually a
    redirect). An invalid form comes back with a 400, a domain error with its message on the
    form and the error's status.
    """

    _submitted_form: forms.Form | None = None

    def form_submit(self, form: forms.Form) -> HttpResponse:
        raise NotImplementedError(f"{type(self).__name__} must implement form_submit(form).")

    def form_valid(self, form: forms.Form) -> HttpResponse:
        self._submitted_form = form
        return self.form_submit(form)

    def form_invalid(self, form: forms.Form) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)

    def service_error_response(self, request: HttpRequest, error: ApplicationError) -> HttpResponse:
        form = self._submitted_form
        if form is None:  # raised before any form was submitted, e.g. while building the page
            return super().service_error_response(request, error)
        form_error_add(form, error)
        return self.render_to_response(self.get_context_data(form=form), status=error.status_code)
