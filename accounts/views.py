"""HTML views for organizations, members and invitations.

Every view under `/o/<org_slug>/` uses `OrgMemberRequiredMixin`, so org-owned rows are read
through the scoped managers only. Domain errors from services become a form error or a message
on the same page, with the error's 4xx status; never a 500.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import BadRequest
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_POST

from accounts.adapter import SESSION_KEY_PENDING_INVITATION
from accounts.forms import InvitationForm, OrganizationForm, OrganizationSwitchForm, RoleChangeForm
from accounts.models import Invitation, Membership, Organization, Role
from accounts.selectors import (
    invitation_get_by_token,
    invitation_list_pending,
    membership_for_user_get,
    membership_list,
)
from accounts.services import (
    invitation_accept,
    invitation_create,
    invitation_email_matches,
    invitation_revoke,
    membership_remove,
    membership_role_change,
    organization_create,
    organization_leave,
    organization_update,
)
from accounts.tenancy import (
    SESSION_KEY_CURRENT_ORGANIZATION,
    OrgMemberRequiredMixin,
    current_organization_resolve,
)
from billing.plans import Plan, plan_get
from clawtrace_site.exceptions import ApplicationError


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


class OrganizationCreateView(LoginRequiredMixin, View):
    template_name = "accounts/org_create.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, self.template_name, {"form": OrganizationForm()})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = OrganizationForm(request.POST)
        if form.is_valid():
            try:
                organization = organization_create(
                    name=form.cleaned_data["name"], owner=request.user
                )
            except ApplicationError as error:
                form.add_error("name", error.message)
            else:
                request.session[SESSION_KEY_CURRENT_ORGANIZATION] = organization.slug
                messages.success(request, f"Created {organization.name}.")
                return redirect("accounts:org_home", org_slug=organization.slug)
        return render(request, self.template_name, {"form": form}, status=400)


@require_POST
@login_required
def organization_switch(request: HttpRequest) -> HttpResponse:
    form = OrganizationSwitchForm(request.POST)
    if not form.is_valid():
        raise BadRequest("Choose an organization to switch to.")
    membership = membership_for_user_get(
        user=request.user, organization_slug=form.cleaned_data["organization"]
    )
    if membership is None:
        raise Http404("No such organization.")
    request.session[SESSION_KEY_CURRENT_ORGANIZATION] = membership.organization.slug
    return redirect("accounts:org_home", org_slug=membership.organization.slug)


class OrganizationHomeView(OrgMemberRequiredMixin, View):
    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        memberships = membership_list(organization=self.organization)
        return render(
            request,
            "accounts/org_home.html",
            {
                "organization": self.organization,
                "membership": self.membership,
                "member_count": memberships.count(),
                "pending_invitation_count": len(
                    invitation_list_pending(organization=self.organization)
                ),
                "plan": _plan_for(self.organization),
            },
        )


def _plan_for(organization: Organization) -> Plan:
    return plan_get(organization.plan)


class _MemberPageMixin(OrgMemberRequiredMixin):
    """Renders the members page, optionally with an error from a failed action."""

    def member_page(
        self,
        request: HttpRequest,
        *,
        status: int = 200,
        error: str | None = None,
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
                "role_choices": Role.choices
                if is_owner
                else [
                    (Role.ADMIN, "Admin"),
                    (Role.MEMBER, "Member"),
                ],
                "action_error": error,
            },
            status=status,
        )


class MemberListView(_MemberPageMixin, View):
    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return self.member_page(request)


class MemberRoleChangeView(_MemberPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str, membership_id: int) -> HttpResponse:
        target = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id)
        form = RoleChangeForm(request.POST)
        if not form.is_valid():
            return self.member_page(request, status=400, error="Choose owner, admin or member.")
        try:
            membership_role_change(
                actor=request.user, membership=target, role=form.cleaned_data["role"]
            )
        except ApplicationError as error:
            return self.member_page(request, status=error.status_code, error=error.message)
        messages.success(request, f"{target.user.email} is now {target.get_role_display()}.")
        return redirect("accounts:member_list", org_slug=self.organization.slug)


class MemberRemoveView(_MemberPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str, membership_id: int) -> HttpResponse:
        target = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id)
        is_self = target.user_id == request.user.pk
        try:
            membership_remove(actor=request.user, membership=target)
        except ApplicationError as error:
            return self.member_page(request, status=error.status_code, error=error.message)
        if is_self:
            request.session.pop(SESSION_KEY_CURRENT_ORGANIZATION, None)
            messages.success(request, f"You left {self.organization.name}.")
            return redirect("home")
        messages.success(request, f"Removed {target.user.email}.")
        return redirect("accounts:member_list", org_slug=self.organization.slug)


class OrganizationLeaveView(_MemberPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        try:
            organization_leave(user=request.user, organization=self.organization)
        except ApplicationError as error:
            return self.member_page(request, status=error.status_code, error=error.message)
        request.session.pop(SESSION_KEY_CURRENT_ORGANIZATION, None)
        messages.success(request, f"You left {self.organization.name}.")
        return redirect("home")


class OrganizationSettingsView(OrgMemberRequiredMixin, View):
    template_name = "accounts/org_settings.html"

    def _render(self, request: HttpRequest, form: OrganizationForm, status: int = 200):
        return render(
            request,
            self.template_name,
            {
                "organization": self.organization,
                "membership": self.membership,
                "form": form,
                "can_edit": self.membership.has_role_at_least(Role.ADMIN),
                "plan": _plan_for(self.organization),
            },
            status=status,
        )

    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return self._render(request, OrganizationForm(initial={"name": self.organization.name}))

    def post(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        form = OrganizationForm(request.POST)
        if not form.is_valid():
            return self._render(request, form, status=400)
        try:
            organization_update(
                organization=self.organization, actor=request.user, name=form.cleaned_data["name"]
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
            return self._render(request, form, status=error.status_code)
        messages.success(request, "Saved.")
        return redirect("accounts:org_settings", org_slug=self.organization.slug)


class InvitationCreateView(OrgMemberRequiredMixin, View):
    required_role = Role.ADMIN
    template_name = "accounts/invitation_create.html"

    def _render(self, request: HttpRequest, form: InvitationForm, status: int = 200):
        return render(
            request,
            self.template_name,
            {"organization": self.organization, "membership": self.membership, "form": form},
            status=status,
        )

    def _form(self, data=None) -> InvitationForm:
        return InvitationForm(data, can_grant_owner=self.membership.role == Role.OWNER)

    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return self._render(request, self._form())

    def post(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        form = self._form(request.POST)
        if not form.is_valid():
            return self._render(request, form, status=400)
        try:
            invitation, _token = invitation_create(
                organization=self.organization,
                invited_by=request.user,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                site_url=request.build_absolute_uri("/"),
            )
        except ApplicationError as error:
            field = "email" if error.code in {"already_member", "invalid_input"} else None
            form.add_error(field, error.message)
            return self._render(request, form, status=error.status_code)
        messages.success(request, f"Invitation sent to {invitation.email}.")
        return redirect("accounts:member_list", org_slug=self.organization.slug)


class InvitationRevokeView(_MemberPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str, invitation_id: int) -> HttpResponse:
        invitation = get_object_or_404(Invitation.objects, pk=invitation_id)
        try:
            invitation_revoke(actor=request.user, invitation=invitation)
        except ApplicationError as error:
            return self.member_page(request, status=error.status_code, error=error.message)
        messages.success(request, f"Invitation to {invitation.email} withdrawn.")
        return redirect("accounts:member_list", org_slug=self.organization.slug)


class InvitationAcceptView(View):
    """`/invitations/<token>/`: the link in the email.

    The token is the credential. Anonymous visitors are sent to signup (email prefilled) with
    `next` back here, and the token waits in the session so the first login returns here. A
    signed-in user whose address is not the invited one learns nothing about the org: they get
    the same 404 as for a wrong token.
    """

    template_name = "accounts/invitation_accept.html"

    def _invitation_or_404(self, request: HttpRequest, token: str) -> Invitation:
        invitation = invitation_get_by_token(token=token)
        if invitation is None:
            raise Http404("This invitation link is not valid.")
        if request.user.is_authenticated and not invitation_email_matches(
            invitation=invitation, user=request.user
        ):
            raise Http404("This invitation link is not valid for your account.")
        return invitation

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        invitation = self._invitation_or_404(request, token)
        if not request.user.is_authenticated:
            if not invitation.is_pending:
                return render(
                    request,
                    self.template_name,
                    {"invitation": invitation, "error": _unusable_message(invitation)},
                    status=410,
                )
            request.session[SESSION_KEY_PENDING_INVITATION] = token
            messages.info(
                request,
                f"Create your account with {invitation.email} (or log in) to join "
                f"{invitation.organization.name}.",
            )
            query = urlencode({"email": invitation.email, "next": request.path})
            return HttpResponseRedirect(f"{reverse('account_signup')}?{query}")
        context = self._context(invitation)
        return render(request, self.template_name, context, status=410 if context["error"] else 200)

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect(f"{reverse('account_login')}?{urlencode({'next': request.path})}")
        invitation = self._invitation_or_404(request, token)
        try:
            membership = invitation_accept(token=token, user=request.user)
        except ApplicationError as error:
            context = self._context(invitation)
            context["error"] = error.message
            return render(request, self.template_name, context, status=error.status_code)
        request.session.pop(SESSION_KEY_PENDING_INVITATION, None)
        request.session[SESSION_KEY_CURRENT_ORGANIZATION] = membership.organization.slug
        messages.success(request, f"Welcome to {membership.organization.name}.")
        return redirect("accounts:org_home", org_slug=membership.organization.slug)

    def _context(self, invitation: Invitation) -> dict[str, Any]:
        return {
            "invitation": invitation,
            "error": None if invitation.is_pending else _unusable_message(invitation),
        }


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
invitation_create_view = InvitationCreateView.as_view()
invitation_revoke_view = InvitationRevokeView.as_view()
invitation_accept_view = InvitationAcceptView.as_view()
