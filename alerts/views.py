"""The organization's alert pages, under its settings: rules (every member reads them; owners
and admins create, edit, disable and delete them) and the delivery log (owners and admins).

Views are thin (style.md): reads through `alerts.selectors`, writes through `alerts.services`.
A rule id of another organization is a 404 before any role check, so that a URL never tells a
member whether some other organization's rule exists; a member asking to change a rule of
their own organization gets 403.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views import View

from accounts.mixins import OrgMemberRequiredMixin
from accounts.models import Role
from alerts.channels import webhook_host
from alerts.forms import AlertRuleForm, RuleEnabledForm
from alerts.models import AlertRule
from alerts.selectors import (
    alert_recent_list,
    alert_rule_get,
    alert_rule_list,
    alert_rule_recipient_membership_ids,
    delivery_attempt_list,
    delivery_unfinished_list,
    recipient_choices,
)
from alerts.services import (
    alert_rule_create,
    alert_rule_delete,
    alert_rule_enabled_set,
    alert_rule_update,
)
from clawtrace_site.views import ServiceErrorMixin, ServiceFormView


class _AlertsMixin(OrgMemberRequiredMixin):
    @property
    def can_manage(self) -> bool:
        return self.membership.has_role_at_least(Role.ADMIN)

    def manage_ensure(self) -> None:
        if not self.can_manage:
            raise PermissionDenied("Only owners and admins can change alert rules.")

    def rule_or_404(self, rule_id: int) -> AlertRule:
        rule = alert_rule_get(organization=self.organization, rule_id=rule_id)
        if rule is None:
            raise Http404("No such alert rule.")
        return rule

    def page_context(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "organization": self.organization,
            "membership": self.membership,
            "can_manage": self.can_manage,
            **kwargs,
        }


class _RulesPageMixin(_AlertsMixin, ServiceErrorMixin):
    """The rules page, and the actions on it: a refused action shows its message there."""

    def rules_page(
        self, request: HttpRequest, *, status: int = 200, error: str | None = None
    ) -> HttpResponse:
        rules = alert_rule_list(organization=self.organization)
        for rule in rules:
            rule.webhook_host = webhook_host(rule.webhook_url)
        return render(
            request,
            "alerts/rule_list.html",
            self.page_context(
                rules=rules,
                alerts=alert_recent_list(organization=self.organization),
                action_error=error,
            ),
            status=status,
        )

    def service_error_response(self, request, error) -> HttpResponse:
        return self.rules_page(request, status=error.status_code, error=error.message)


class AlertRuleListView(_RulesPageMixin, View):
    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return self.rules_page(request)


class _RuleFormView(_AlertsMixin, ServiceFormView):
    template_name = "alerts/rule_form.html"
    form_class = AlertRuleForm
    rule: AlertRule | None = None

    def get_form_kwargs(self) -> dict[str, Any]:
        return {
            **super().get_form_kwargs(),
            "memberships": recipient_choices(organization=self.organization),
        }

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(**self.page_context(rule=self.rule, **kwargs))


class AlertRuleCreateView(_RuleFormView):
    required_role = Role.ADMIN

    def get_initial(self) -> dict[str, Any]:
        # The creator is the obvious first recipient.
        return {"is_enabled": True, "recipients": [str(self.membership.pk)]}

    def form_submit(self, form: forms.Form) -> HttpResponse:
        rule = alert_rule_create(
            organization=self.organization, actor=self.request.user, fields=form.rule_fields()
        )
        messages.success(self.request, f"Created the rule \u201c{rule.name}\u201d.")
        return redirect("alerts:rule_list", org_slug=self.organization.slug)


class AlertRuleUpdateView(_RuleFormView):
    def setup_rule(self, rule_id: int) -> None:
        self.rule = self.rule_or_404(rule_id)
        self.manage_ensure()

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.setup_rule(kwargs["rule_id"])
        return super().get(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.setup_rule(kwargs["rule_id"])
        return super().post(request, *args, **kwargs)

    def get_initial(self) -> dict[str, Any]:
        return AlertRuleForm.initial_for(
            self.rule, alert_rule_recipient_membership_ids(rule=self.rule)
        )

    def form_submit(self, form: forms.Form) -> HttpResponse:
        rule = alert_rule_update(rule=self.rule, actor=self.request.user, fields=form.rule_fields())
        messages.success(self.request, f"Saved the rule \u201c{rule.name}\u201d.")
        return redirect("alerts:rule_list", org_slug=self.organization.slug)


class AlertRuleEnabledView(_RulesPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str, rule_id: int) -> HttpResponse:
        rule = self.rule_or_404(rule_id)
        self.manage_ensure()
        form = RuleEnabledForm(request.POST)
        if not form.is_valid():
            return self.rules_page(request, status=400, error="Choose enable or disable.")
        rule = alert_rule_enabled_set(
            rule=rule, actor=request.user, is_enabled=form.cleaned_data["is_enabled"]
        )
        state = "enabled" if rule.is_enabled else "disabled"
        messages.success(request, f"The rule \u201c{rule.name}\u201d is {state}.")
        return redirect("alerts:rule_list", org_slug=self.organization.slug)


class AlertRuleDeleteView(_RulesPageMixin, View):
    def post(self, request: HttpRequest, org_slug: str, rule_id: int) -> HttpResponse:
        rule = self.rule_or_404(rule_id)
        self.manage_ensure()
        name = rule.name
        alert_rule_delete(rule=rule, actor=request.user)
        messages.success(request, f"Deleted the rule \u201c{name}\u201d.")
        return redirect("alerts:rule_list", org_slug=self.organization.slug)


class DeliveryLogView(_AlertsMixin, View):
    required_role = Role.ADMIN

    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        return render(
            request,
            "alerts/delivery_log.html",
            self.page_context(
                attempts=delivery_attempt_list(organization=self.organization),
                unfinished=delivery_unfinished_list(organization=self.organization),
            ),
        )


rule_list = AlertRuleListView.as_view()
rule_create = AlertRuleCreateView.as_view()
rule_update = AlertRuleUpdateView.as_view()
rule_enabled = AlertRuleEnabledView.as_view()
rule_delete = AlertRuleDeleteView.as_view()
delivery_log = DeliveryLogView.as_view()
