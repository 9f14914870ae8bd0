"""HTML views for organizations, members and invitations.

Views are thin: they read through `accounts.selectors`, write through `accounts.services`, and
never build a query. Every view under `/o/<org_slug>/` uses `OrgMemberRequiredMixin`, so it runs
inside the org's scope. A domain error from a service is answered in one way for all of them
(`clawtrace_site.views.ServiceErrorMixin`): the page again with the message and the error's 4xx
status, never a 500.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import BadRequest
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_POST

from accounts.adapter import SESSION_KEY_PENDING_INVITATION
from accounts.forms import (
    InvitationForm,
    OrganizationForm,
    OrganizationSwitchForm,
    OrganizationTimeZoneForm,
    RoleChangeForm,
)
from accounts.mixins import OrgMemberRequiredMixin
from accounts.models import Invitation, Role
from accounts.panels import organization_panels
from accounts.resolvers import SESSION_KEY_CURRENT_ORGANIZATION, current_organization_resolve
from accounts.selectors import (
    invitation_count_pending,
    invitation_email_matches,
    invitation_get,
    invitation_get_by_token,
    invitation_list_pending,
    membership_count,
    membership_for_user_get,
    membership_get,
    membership_limit_refusal,
    membership_list,
)
from accounts.services import (
    invitation_accept,
    invitation_create,
    invitation_revoke,
    membership_remove,
    membership_role_change,
    organization_create,
    organization_leave,
    organization_time_zone_update,
    organization_update,
)
from clawtrace_site.exceptions import ApplicationError
from clawtrace_site.views import ServiceErrorMixin, ServiceFormView

_T = TypeVar("_T")


def _found_or_404(found: _T | None, message: str = "Not found.") -> _T:
    if found is None:
        raise Http404(message)
    return found


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """`/app/`: where login lands. A pending invitation comes first, then the current org."""
    token = request.session.get(SESSION_KEY_PENDING_INVITATION)
    if token:
        invitation = invitation_get_by_token(token=token)
        if (
            invitation is not None
            and invitation.is_pending
            and invitation_email_matches(invitation=invitation, user=request.user)
        ):
            return redirect("accounts:invitation_accept", token=token)
        request.session.pop(SESSION_KEY_PENDING_INVITATION, None)
    organization = current_organization_resolve(request)
    if organization is None:
        messages.info(request, "You are not in any organization yet: create one to get started.")
        return redirect("accounts:org_create")
    return redirect("accounts:org_home", org_slug=organization.slug)


@require_POST
@login_required
def organization_switch(request: HttpRequest) -> HttpResponse:
    form = OrganizationSwitchForm(request.POST)
    if not form.is_valid():
        raise BadRequest("Choose an organization to switch to.")
    membership = _found_or_404(
        membership_for_user_get(
            user=request.user, organization_slug=form.cleaned_data["organization"]
        ),
        "No such organization.",
    )
    request.session[SESSION_KEY_CURRENT_ORGANIZATION] = membership.organization.slug
    return redirect("accounts:org_home", org_slug=membership.organization.slug)


# --- Organizations ------------------------------------------------------------------------------


class OrganizationCreateView(LoginRequiredMixin, ServiceFormView):
    template_name = "accounts/org_create.html"
    form_class = OrganizationForm

    def form_submit(self, form: forms.Form) -> HttpResponse:
        organization = organization_create(name=form.cleaned_data["name"], owner=self.request.user)
        self.request.session[SESSION_KEY_CURRENT_ORGANIZATION] = organization.slug
        messages.success(self.request, f"Created {organization.name}.")
        return redirect("accounts:org_home", org_slug=organization.slug)


class OrganizationHomeView(OrgMemberRequiredMixin, View):
    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return render(
            request,
            "accounts/org_home.html",
            {
                "organization": self.organization,
                "membership": self.membership,
                "member_count": membership_count(organization=self.organization),
                "pending_invitation_count": invitation_count_pending(
                    organization=self.organization
                ),
                "panels": organization_panels(page="org_home", organization=self.organization),
            },
        )


class OrganizationSettingsView(OrgMemberRequiredMixin, ServiceFormView):
    """Everyone sees the settings; renaming is the service's to allow (admins and owners)."""

    template_name = "accounts/org_settings.html"
    form_class = OrganizationForm

    def get_initial(self) -> dict[str, Any]:
        return {"name": self.organization.name}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault(
            "time_zone_form",
            OrganizationTimeZoneForm(initial={"time_zone": self.organization.time_zone}),
        )
        return super().get_context_data(
            organization=self.organization,
            membership=self.membership,
            can_edit=self.membership.has_role_at_least(Role.ADMIN),
            panels=organization_panels(page="org_settings", organization=self.organization),
            **kwargs,
        )

    def form_submit(self, form: forms.Form) -> HttpResponse:
        organization_update(
            organization=self.organization, actor=self.request.user, name=form.cleaned_data["name"]
        )
        messages.success(self.request, "Saved.")
        return redirect("accounts:org_settings", org_slug=self.organization.slug)


class OrganizationTimeZoneView(OrganizationSettingsView):
    """The settings page's second form: the zone of the organization's days."""

    form_class = OrganizationTimeZoneForm
    http_method_names = ["post"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        # The submitted form is the time-zone one; the name form shows the current name.
        kwargs["time_zone_form"] = kwargs.pop("form", None) or self.get_form()
        kwargs["form"] = OrganizationForm(initial={"name": self.organization.name})
        return super().get_context_data(**kwargs)

    def form_submit(self, form: forms.Form) -> HttpResponse:
        organization_time_zone_update(
            organization=self.organization,
            actor=self.request.user,
            time_zone=form.cleaned_data["time_zone"],
        )
        messages.success(
            self.request, f"Days now start at midnight {form.cleaned_data['time_zone']}."
        )
        return redirect("accounts:org_settings", org_slug=self.organization.slug)


# --- Members ------------------------------------------------------------------------------------


class _MemberPageMixin(OrgMemberRequiredMixin, ServiceErrorMixin):
    """The members page, and the actions on it: a refused action shows its message there."""

    def member_page(
        self, request: HttpRequest, *, status: int = 200, error: str | None = None
    ) -> HttpResponse:
        can_manage = self.membership.has_role_at_least(Role.ADMIN)
        is_owner = self.membership.role == Role.OWNER
        return render(
            request,
            "accounts/member_list.html",
            {
                "organization": self.organization,
                "membership": self.membership,
                "memberships": membership_list(organization=self.organization),
                "invitations": invitation_list_pending(organization=self.organization)
                if can_manage
                else [],
                "can_manage": can_manage,
                "is_owner": is_owner,
                # Why nobody can be invited on this plan (shown instead of the button).
                "invitation_refusal": membership_limit_refusal(organization=self.organization)
                if can_manage
                else None,
                "role_choices": Role.choices
                if is_owner
                else [(Role.ADMIN, "Admin"), (Role.MEMBER, "Member")],
                "action_error": error,
            },
            status=status,
        )

    def service_error_response(self, request: HttpRequest, error: ApplicationError) -> HttpResponse:
        return self.member_page(request, status=error.status_code, error=error.message)

    def target_membership(self, membership_id: int):
        return _found_or_404(
            membership_get(organization=self.organization, membership_id=membership_id)
        )


class MemberListView(_MemberPageMixin, View):
    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return self.member_page(request)


class MemberRoleChangeView(_MemberPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str, membership_id: int) -> HttpResponse:
        target = self.target_membership(membership_id)
        form = RoleChangeForm(request.POST)
        if not form.is_valid():
            return self.member_page(request, status=400, error="Choose owner, admin or member.")
        membership_role_change(
            actor=request.user, membership=target, role=form.cleaned_data["role"]
        )
        messages.success(request, f"{target.user.email} is now {target.get_role_display()}.")
        return redirect("accounts:member_list", org_slug=self.organization.slug)


class MemberRemoveView(_MemberPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str, membership_id: int) -> HttpResponse:
        target = self.target_membership(membership_id)
        is_self = target.user_id == request.user.pk
        membership_remove(actor=request.user, membership=target)
        if is_self:
            request.session.pop(SESSION_KEY_CURRENT_ORGANIZATION, None)
            messages.success(request, f"You left {self.organization.name}.")
            return redirect("home")
        messages.success(request, f"Removed {target.user.email}.")
        return redirect("accounts:member_list", org_slug=self.organization.slug)


class OrganizationLeaveView(_MemberPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        organization_leave(user=request.user, organization=self.organization)
        request.session.pop(SESSION_KEY_CURRENT_ORGANIZATION, None)
        messages.success(request, f"You left {self.organization.name}.")
        return redirect("home")


# --- Invitations --------------------------------------------------------------------------------


class InvitationCreateView(OrgMemberRequiredMixin, ServiceFormView):
    required_role = Role.ADMIN
    template_name = "accounts/invitation_create.html"
    form_class = InvitationForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "can_grant_owner": self.membership.role == Role.OWNER}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            organization=self.organization,
            membership=self.membership,
            # The plan's refusal in place of the form (the service refuses a post anyway).
            invitation_refusal=membership_limit_refusal(organization=self.organization),
            **kwargs,
        )

    def form_submit(self, form: forms.Form) -> HttpResponse:
        invitation, _token = invitation_create(
            organization=self.organization,
            invited_by=self.request.user,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            site_url=self.request.build_absolute_uri("/"),
        )
        messages.success(self.request, f"Invitation sent to {invitation.email}.")
        return redirect("accounts:member_list", org_slug=self.organization.slug)


class InvitationRevokeView(_MemberPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str, invitation_id: int) -> HttpResponse:
        invitation = _found_or_404(
            invitation_get(organization=self.organization, invitation_id=invitation_id)
        )
        invitation_revoke(actor=request.user, invitation=invitation)
        messages.success(request, f"Invitation to {invitation.email} withdrawn.")
        return redirect("accounts:member_list", org_slug=self.organization.slug)


class InvitationAcceptView(ServiceErrorMixin, View):
    """`/invitations/<token>/`: the link in the email.

    The token is the credential. Anonymous visitors are sent to signup (email prefilled) with
    `next` back here, and the token waits in the session so the first login returns here. A
    signed-in user whose address is not the invited one learns nothing about the org: they get
    the same 404 as for a wrong token.
    """

    template_name = "accounts/invitation_accept.html"
    invitation: Invitation

    def _invitation_or_404(self, request: HttpRequest, token: str) -> Invitation:
        invitation = _found_or_404(
            invitation_get_by_token(token=token), "This invitation link is not valid."
        )
        if request.user.is_authenticated and not invitation_email_matches(
            invitation=invitation, user=request.user
        ):
            raise Http404("This invitation link is not valid for your account.")
        self.invitation = invitation
        return invitation

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        invitation = self._invitation_or_404(request, token)
        if not request.user.is_authenticated:
            if not invitation.is_pending:
                return self._page(request, error=_unusable_message(invitation), status=410)
            request.session[SESSION_KEY_PENDING_INVITATION] = token
            messages.info(
                request,
                f"Create your account with {invitation.email} (or log in) to join "
                f"{invitation.organization.name}.",
            )
            query = urlencode({"email": invitation.email, "next": request.path})
            return HttpResponseRedirect(f"{reverse('account_signup')}?{query}")
        if not invitation.is_pending:
            return self._page(request, error=_unusable_message(invitation), status=410)
        return self._page(request)

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect(f"{reverse('account_login')}?{urlencode({'next': request.path})}")
        self._invitation_or_404(request, token)
        membership = invitation_accept(token=token, user=request.user)
        request.session.pop(SESSION_KEY_PENDING_INVITATION, None)
        request.session[SESSION_KEY_CURRENT_ORGANIZATION] = membership.organization.slug
        messages.success(request, f"Welcome to {membership.organization.name}.")
        return redirect("accounts:org_home", org_slug=membership.organization.slug)

    def service_error_response(self, request: HttpRequest, error: ApplicationError) -> HttpResponse:
        return self._page(request, error=error.message, status=error.status_code)

    def _page(self, request: HttpRequest, *, error: str | None = None, status: int = 200):
        return render(
            request,
            self.template_name,
            {"invitation": self.invitation, "error": error},
            status=status,
        )


def _unusable_message(invitation: Invitation) -> str:
    return {
        "accepted": "This invitation has already been used.",
        "revoked": "This invitation was withdrawn.",
        "expired": "This invitation has expired; ask for a new one.",
    }.get(invitation.status, "This invitation cannot be used.")


organization_create_view = OrganizationCreateView.as_view()
organization_home = OrganizationHomeView.as_view()
member_list = MemberListView.as_view()
member_role_change = MemberRoleChangeView.as_view()
member_remove = MemberRemoveView.as_view()
organization_leave_view = OrganizationLeaveView.as_view()
organization_settings = OrganizationSettingsView.as_view()
organization_time_zone = OrganizationTimeZoneView.as_view()
invitation_create_view = InvitationCreateView.as_view()
invitation_revoke_view = InvitationRevokeView.as_view()
invitation_accept_view = InvitationAcceptView.as_view()
