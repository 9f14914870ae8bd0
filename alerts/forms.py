"""Forms validate shapes only; the rules (roles, recipients of this organization, which URLs a
webhook may have) are the service's, which puts its messages on these fields."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from accounts.models import Membership
from alerts.channels import WEBHOOK_URL_MAX_LENGTH
from alerts.models import AlertRule, Trigger
from alerts.services import RULE_NAME_MAX_LENGTH, THRESHOLD_MAX_USD, RuleFields


class AlertRuleForm(forms.Form):
    name = forms.CharField(
        max_length=RULE_NAME_MAX_LENGTH,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "Daily spend over $50", "autofocus": True}),
    )
    trigger = forms.ChoiceField(label="When", choices=Trigger.choices)
    threshold_usd = forms.DecimalField(
        label="Threshold (USD)",
        required=False,
        min_value=Decimal("0.01"),
        max_value=THRESHOLD_MAX_USD,
        decimal_places=2,
        help_text="Only for the spend rules: the amount per day or per month.",
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    email_enabled = forms.BooleanField(label="Send an e-mail", required=False)
    recipients = forms.MultipleChoiceField(
        label="E-mail these members",
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    webhook_url = forms.CharField(
        label="Webhook URL (optional)",
        required=False,
        max_length=WEBHOOK_URL_MAX_LENGTH,
        strip=True,
        help_text="A Slack or Discord incoming webhook, or any https endpoint taking JSON "
        "with a text or content field.",
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.slack.com/services/…"}),
    )
    is_enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    def __init__(self, *args, memberships: list[Membership], **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["recipients"].choices = [
            (str(membership.pk), f"{membership.user.email} ({membership.get_role_display()})")
            for membership in memberships
        ]

    @staticmethod
    def initial_for(rule: AlertRule, recipient_ids: list[int]) -> dict:
        return {
            "name": rule.name,
            "trigger": rule.trigger,
            "threshold_usd": rule.threshold_usd,
            "email_enabled": rule.email_enabled,
            "recipients": [str(pk) for pk in recipient_ids],
            "webhook_url": rule.webhook_url,
            "is_enabled": rule.is_enabled,
        }

    def rule_fields(self) -> RuleFields:
        data = self.cleaned_data
        return RuleFields(
            name=data["name"],
            trigger=data["trigger"],
            threshold_usd=data.get("threshold_usd"),
            email_enabled=data.get("email_enabled", False),
            recipient_membership_ids=tuple(int(pk) for pk in data.get("recipients", [])),
            webhook_url=data.get("webhook_url", ""),
            is_enabled=data.get("is_enabled", False),
        )


class RuleEnabledForm(forms.Form):
    is_enabled = forms.TypedChoiceField(
        choices=[("1", "Enable"), ("0", "Disable")], coerce=lambda value: value == "1"
    )
