"""Monthly budgets: one for the organization, optionally one per member and one per project.
Owners and admins set them; the dashboard shows each as progress with the forecast against it
(`analytics.selectors.budget_status_list`)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Organization, User
from accounts.tenancy import organization_scope
from analytics.models import Budget, BudgetScope
from analytics.services.roles import admin_ensure
from clawtrace_site.exceptions import ApplicationError

MAX_BUDGET_USD = Decimal("10000000")


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_input", extra={"fields": {field: [message]}})


def _amount_clean(value) -> Decimal:
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise _invalid("monthly_usd", "A budget is an amount in USD, e.g. 500.") from None
    if not amount.is_finite() or not Decimal("0.01") <= amount <= MAX_BUDGET_USD:
        raise _invalid("monthly_usd", f"A budget is from $0.01 to ${MAX_BUDGET_USD:,}.")
    return amount


@transaction.atomic
def budget_set(
    *,
    organization: Organization,
    actor: User,
    scope: str,
    monthly_usd,
    member: User | None = None,
    project: str = "",
) -> Budget:
    """Create or change the budget of one subject (the organization, a member, a project)."""
    admin_ensure(organization=organization, actor=actor, what="set budgets")
    if scope not in BudgetScope.values:
        raise _invalid("scope", "A budget is for the organization, a member or a project.")
    amount = _amount_clean(monthly_usd)
    project = (project or "").strip()[:200]
    with organization_scope(organization):
        if scope == BudgetScope.MEMBER:
            if member is None or not Membership.objects.filter(user=member).exists():
                raise _invalid("member", "Choose a member of the organization.")
        else:
            member = None
        if scope == BudgetScope.PROJECT and not project:
            raise _invalid("project", "Name the project.")
        if scope != BudgetScope.PROJECT:
            project = ""
        budget, _created = Budget.objects.select_for_update().get_or_create(
            organization=organization,
            scope=scope,
            member=member,
            project=project,
            defaults={"monthly_usd": amount},
        )
        if budget.monthly_usd != amount:
            budget.monthly_usd = amount
            budget.updated_at = timezone.now()
            budget.save(update_fields=["monthly_usd", "updated_at"])
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget, actor: User) -> None:
    admin_ensure(organization=budget.organization, actor=actor, what="set budgets")
    with organization_scope(budget.organization):
        Budget.objects.filter(pk=budget.pk).delete()
