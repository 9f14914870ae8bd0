"""HTML pages of analytics: the organization's API keys, under its settings
(`/o/<org_slug>/settings/api-keys/`). Everyone in the organization sees the page; owners and
admins make and revoke keys (the services check the role). The dashboard pages come later."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from accounts.mixins import OrgMemberRequiredMixin
from accounts.models import Role
from analytics.forms import ApiKeyForm
from analytics.models import OrganizationApiKey
from analytics.selectors import api_key_list
from analytics.services import api_key_create, api_key_revoke
from clawtrace_site.exceptions import ApplicationError
from clawtrace_site.views import ServiceErrorMixin


class _ApiKeysPageMixin(OrgMemberRequiredMixin, ServiceErrorMixin):
    def keys_page(
        self,
        request: HttpRequest,
        *,
        status: int = 200,
        form: ApiKeyForm | None = None,
        created: tuple[OrganizationApiKey, str] | None = None,
        error: str | None = None,
    ) -> HttpResponse:
        can_manage = self.membership.has_role_at_least(Role.ADMIN)
        return render(
            request,
            "analytics/api_keys.html",
            {
                "organization": self.organization,
                "membership": self.membership,
                "api_keys": api_key_list(organization=self.organization) if can_manage else [],
                "can_manage": can_manage,
                "form": form or ApiKeyForm(),
                "created_key": created,
                "action_error": error,
            },
            status=status,
        )

    def service_error_response(self, request: HttpRequest, error: ApplicationError) -> HttpResponse:
        return self.keys_page(request, status=error.status_code, error=error.message)


class ApiKeyListView(_ApiKeysPageMixin, View):
    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return self.keys_page(request)


class ApiKeyCreateView(_ApiKeysPageMixin, View):
    required_role = Role.ADMIN

    def post(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        form = ApiKeyForm(request.POST)
        if not form.is_valid():
            return self.keys_page(request, status=400, form=form)
        created = api_key_create(
            organization=self.organization, actor=request.user, name=form.cleaned_data["name"]
        )
        # Rendered, not redirected: the key exists in this response only (never in a cookie,
        # a message or a log), so it can be shown exactly once.
        response = self.keys_page(request, status=201, created=created)
        response["Cache-Control"] = "no-store"
        return response


class ApiKeyRevokeView(_ApiKeysPageMixin, View):
    # No required_role: the key is looked up first (another organization's is a 404, like a
    # missing one), then the service refuses a plain member.

    def post(self, request: HttpRequest, org_slug: str, api_key_id: int) -> HttpResponse:
        api_key = get_object_or_404(OrganizationApiKey.objects, pk=api_key_id)
        api_key_revoke(api_key=api_key, actor=request.user)
        return redirect("analytics:api_key_list", org_slug=self.organization.slug)


api_key_list_view = ApiKeyListView.as_view()
api_key_create_view = ApiKeyCreateView.as_view()
api_key_revoke_view = ApiKeyRevokeView.as_view()
