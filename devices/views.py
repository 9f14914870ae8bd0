"""HTML pages: `/device/` (a member approves the machine that shows a user code) and each
organization's Devices page (devices, enrollment keys).

Organization pages use `OrgMemberRequiredMixin`, so devices and keys are read through the
scoped managers only; domain errors become a message on the same page with their 4xx status.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.mixins import OrgMemberRequiredMixin
from accounts.models import Role
from clawtrace_site.exceptions import ApplicationError
from devices.forms import DeviceDecisionForm, DeviceRenameForm, EnrollmentKeyForm, UserCodeForm
from devices.models import Device, EnrollmentKey
from devices.selectors import (
    device_authorization_get_pending,
    device_link_refusal,
    device_list,
    enrollment_key_list,
    organization_list_for_linking,
)
from devices.services import (
    device_authorization_decide,
    device_rename,
    device_revoke,
    enrollment_key_create,
    enrollment_key_revoke,
)

# --- Guessing user codes ------------------------------------------------------------------------

# A user code has 20^8 values and lives 15 minutes; these limits make guessing hopeless while
# a person who mistypes a few times is not bothered. Every look-up counts, right or wrong.
USER_CODE_RATES = {"device_user_code_user": "10/min", "device_user_code_ip": "30/min"}


class _UserCodeThrottle(SimpleRateThrottle):
    def get_rate(self) -> str:
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        return rates.get(self.scope) or USER_CODE_RATES[self.scope]


class UserCodePerUserThrottle(_UserCodeThrottle):
    scope = "device_user_code_user"

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class UserCodePerAddressThrottle(_UserCodeThrottle):
    scope = "device_user_code_ip"

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def _user_code_guess_refused(request: HttpRequest) -> HttpResponse | None:
    """A 429 page when this user or address has looked up too many codes lately."""
    waits = []
    for throttle in (UserCodePerUserThrottle(), UserCodePerAddressThrottle()):
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait() or 60)
    if not waits:
        return None
    response = render(request, "429.html", status=429)
    response["Retry-After"] = str(max(1, math.ceil(max(waits))))
    return response


# --- /device/ -----------------------------------------------------------------------------------


class _DeviceLinkPageMixin(LoginRequiredMixin):
    def organizations(self, request: HttpRequest):
        return list(organization_list_for_linking(user=request.user))

    def no_organization_page(self, request: HttpRequest) -> HttpResponse:
        return render(request, "devices/device_verify.html", {"no_organization": True}, status=403)

    def admitted(self, request: HttpRequest) -> tuple[list, HttpResponse | None]:
        """The organizations this member may link into, or the page that refuses them: none
        they administer, or too many codes looked up lately (every submission counts)."""
        organizations = self.organizations(request)
        if not organizations:
            return organizations, self.no_organization_page(request)
        return organizations, _user_code_guess_refused(request)

    def code_page(
        self, request: HttpRequest, form: UserCodeForm, *, status: int = 200, error: str = ""
    ) -> HttpResponse:
        return render(
            request, "devices/device_verify.html", {"form": form, "error": error}, status=status
        )

    def confirm_page(
        self, request: HttpRequest, authorization, organizations, *, status=200, error=""
    ) -> HttpResponse:
        return render(
            request,
            "devices/device_confirm.html",
            {"authorization": authorization, "organizations": organizations, "error": error},
            status=status,
        )


class DeviceVerifyView(_DeviceLinkPageMixin, View):
    """Step one: the member types (or the link prefilled) the code the agent printed."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not self.organizations(request):
            return self.no_organization_page(request)
        prefilled = str(request.GET.get("user_code", ""))[:20]
        return self.code_page(request, UserCodeForm(initial={"user_code": prefilled}))

    def post(self, request: HttpRequest) -> HttpResponse:
        organizations, refused = self.admitted(request)
        if refused is not None:
            return refused
        form = UserCodeForm(request.POST)
        if not form.is_valid():
            return self.code_page(request, form, status=400)
        authorization = device_authorization_get_pending(user_code=form.cleaned_data["user_code"])
        if authorization is None:
            return self.code_page(
                request,
                form,
                status=404,
                error="That code is not valid: it may have expired or been used. Run "
                "`clawtrace login` again for a new one.",
            )
        return self.confirm_page(request, authorization, organizations)


class DeviceDecideView(_DeviceLinkPageMixin, View):
    """Step two: approve into one of the member's organizations, or deny."""

    def post(self, request: HttpRequest) -> HttpResponse:
        organizations, refused = self.admitted(request)
        if refused is not None:
            return refused
        form = DeviceDecisionForm(request.POST)
        if not form.is_valid():
            return self.code_page(request, UserCodeForm(request.POST), status=400)
        code = form.cleaned_data["user_code"]
        approve = form.cleaned_data["decision"] == "approve"
        organization = None
        if approve:
            # Only the organizations offered on the page: anything else is refused here, and
            # the service checks the role again.
            slug = form.cleaned_data["organization"]
            organization = next((o for o in organizations if o.slug == slug), None)
            if organization is None:
                authorization = device_authorization_get_pending(user_code=code)
                if authorization is None:
                    return self.code_page(
                        request,
                        UserCodeForm(initial={"user_code": code}),
                        status=404,
                        error="That code is not valid: it may have expired or been used.",
                    )
                return self.confirm_page(
                    request,
                    authorization,
                    organizations,
                    status=400,
                    error="Choose one of the organizations listed.",
                )
        try:
            authorization = device_authorization_decide(
                user_code=code, actor=request.user, approve=approve, organization=organization
            )
        except ApplicationError as error:
            return self.code_page(
                request,
                UserCodeForm(initial={"user_code": code}),
                status=error.status_code,
                error=error.message,
            )
        return render(request, "devices/device_done.html", {"authorization": authorization})


# --- An organization's Devices page --------------------------------------------------------------


class _DevicesPageMixin(OrgMemberRequiredMixin):
    def devices_page(
        self,
        request: HttpRequest,
        *,
        status: int = 200,
        error: str | None = None,
        key_form: EnrollmentKeyForm | None = None,
        created_key: tuple[EnrollmentKey, str] | None = None,
    ) -> HttpResponse:
        can_manage = self.membership.has_role_at_least(Role.ADMIN)
        return render(
            request,
            "devices/device_list.html",
            {
                "organization": self.organization,
                "membership": self.membership,
                "devices": device_list(organization=self.organization),
                "enrollment_keys": enrollment_key_list(organization=self.organization)
                if can_manage
                else [],
                "can_manage": can_manage,
                "key_form": key_form or EnrollmentKeyForm(),
                "created_key": created_key,
                # The plan's count reached: said before anyone tries to link one more.
                "device_limit_notice": device_link_refusal(organization=self.organization)
                if can_manage
                else None,
                "action_error": error,
            },
            status=status,
        )


class DeviceListView(_DevicesPageMixin, View):
    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return self.devices_page(request)


class DeviceRenameView(_DevicesPageMixin, View):
    # No required_role: the object is looked up first (another organization's is a 404,
    # like a missing one), then the service refuses a plain member.

    def post(self, request: HttpRequest, org_slug: str, device_id) -> HttpResponse:
        device = get_object_or_404(Device.objects, pk=device_id)
        form = DeviceRenameForm(request.POST)
        if not form.is_valid():
            return self.devices_page(request, status=400, error="A name is 1 to 100 characters.")
        try:
            device_rename(device=device, actor=request.user, name=form.cleaned_data["name"])
        except ApplicationError as error:
            return self.devices_page(request, status=error.status_code, error=error.message)
        return redirect("devices:device_list", org_slug=self.organization.slug)


class DeviceRevokeView(_DevicesPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str, device_id) -> HttpResponse:
        device = get_object_or_404(Device.objects, pk=device_id)
        try:
            device_revoke(device=device, actor=request.user)
        except ApplicationError as error:
            return self.devices_page(request, status=error.status_code, error=error.message)
        return redirect("devices:device_list", org_slug=self.organization.slug)


class EnrollmentKeyCreateView(_DevicesPageMixin, View):
    required_role = Role.ADMIN

    def post(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        form = EnrollmentKeyForm(request.POST)
        if not form.is_valid():
            return self.devices_page(request, status=400, key_form=form)
        try:
            created = enrollment_key_create(
                organization=self.organization,
                actor=request.user,
                name=form.cleaned_data["name"],
                expires_at=form.cleaned_data["expires_at"],
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
            return self.devices_page(request, status=error.status_code, key_form=form)
        # Rendered, not redirected: the key exists in this response only (never in a cookie,
        # a message or a log), so it can be shown exactly once.
        response = self.devices_page(request, status=201, created_key=created)
        response["Cache-Control"] = "no-store"
        return response


class EnrollmentKeyRevokeView(_DevicesPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str, key_id: int) -> HttpResponse:
        enrollment_key = get_object_or_404(EnrollmentKey.objects, pk=key_id)
        try:
            enrollment_key_revoke(enrollment_key=enrollment_key, actor=request.user)
        except ApplicationError as error:
            return self.devices_page(request, status=error.status_code, error=error.message)
        return redirect("devices:device_list", org_slug=self.organization.slug)


device_verify = DeviceVerifyView.as_view()
device_decide = DeviceDecideView.as_view()
device_list_view = DeviceListView.as_view()
device_rename_view = DeviceRenameView.as_view()
device_revoke_view = DeviceRevokeView.as_view()
enrollment_key_create_view = EnrollmentKeyCreateView.as_view()
enrollment_key_revoke_view = EnrollmentKeyRevokeView.as_view()
