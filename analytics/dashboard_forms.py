"""Forms of the dashboard: shapes only; the budget rules live in `analytics.services`."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from accounts.subscriptions import SubscriptionPlan
from analytics.models import BudgetScope


class _Form(forms.Form):
    """Labels without Django's trailing colon, as on the other pages."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class BudgetForm(_Form):
    """A monthly budget for the organization, one member or one project. `member` is a
    membership id of the organization (the view offers only those; the service checks again)."""

    scope = forms.ChoiceField(label="For", choices=BudgetScope.choices)
    member = forms.TypedChoiceField(
        label="Member", coerce=int, required=False, empty_value=None, choices=()
    )
    project = forms.CharField(label="Project", max_length=200, required=False, strip=True)
    monthly_usd = forms.DecimalField(
        label="Monthly budget (USD)",
        min_value=Decimal("0.01"),
        max_digits=12,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )

    def __init__(self, *args, member_choices: list[tuple[int, str]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["member"].choices = [("", "Choose a member"), *member_choices]

    def clean(self):
        cleaned = super().clean()
        scope = cleaned.get("scope")
        if scope == BudgetScope.MEMBER and not cleaned.get("member"):
            self.add_error("member", "Choose the member this budget is for.")
        if scope == BudgetScope.PROJECT and not cleaned.get("project"):
            self.add_error("project", "Name the project this budget is for.")
        return cleaned


class SubscriptionPlanForm(_Form):
    """What a member pays for their agent (the dashboard compares it with API prices)."""

    subscription_plan = forms.ChoiceField(label="Plan", choices=SubscriptionPlan.choices)
