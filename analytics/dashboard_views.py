"""The team dashboard (`/o/<org_slug>/usage/...`): the overview, the member, device, project and
session pages, and budgets.

Every filter lives in the query string (`range`, `member`, `device`, `project`, `model`,
`agent`, `source`, and `by` for the chart), parsed by the analytics filter object, so a view
can be bookmarked and shared; links keep it. Any page answers `?format=csv&table=<name>` with
the rows of one of its tables under the same filters (`analytics/tables.py` defines both).

The views are thin: parse, call the selectors (through the table definitions), render. They
run inside the organization's scope (`OrgMemberRequiredMixin`), and every object in a URL is
looked up in it, so another organization's member, device, project or session is a 404.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.apps import apps
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from accounts.mixins import OrgMemberRequiredMixin
from accounts.models import Role
from accounts.services import membership_subscription_plan_set
from analytics import selectors
from analytics.dashboard_forms import BudgetForm, SubscriptionPlanForm
from analytics.selectors.dashboard_extra import (
    budget_get,
    device_for_usage_get,
    device_owner_membership,
    filter_choices,
    member_for_usage_get,
    project_has_usage,
    usage_exists,
)
from analytics.selectors.memo import reads_memoized
from analytics.services import budget_delete, budget_set
from analytics.tables import BREAKDOWNS, TABLE_BUILDERS, Table, UsagePage, session_tables
from clawtrace_site.api import error_body
from clawtrace_site.exceptions import ApplicationError
from clawtrace_site.views import ServiceErrorMixin, form_error_add

# Query keys the pages read; any other key is left alone (and never put on a link).
SERIES_KEY = "by"
PAGE_KEYS = (*selectors.FILTER_PARAMS, SERIES_KEY)
CUSTOM_RANGE = "custom"
# A chart by hour is offered up to this span (the series selector's own limit is 93 days).
HOURLY_MAX_DAYS = 31


def _invalid_response(
    request: HttpRequest, error: ApplicationError, *, page_url: str
) -> HttpResponse:
    """A filter the page cannot use: a CSV request gets the JSON error shape the API uses, a
    page request the page saying which parameter is wrong, with a way back."""
    if request.GET.get("format") == "csv":
        fields = error.extra.get("fields") or {}
        field = error.extra.get("field") or next(iter(fields), None)
        return JsonResponse(
            error_body(error.code, error.message, str(field) if field else None),
            status=error.status_code,
        )
    return render(
        request,
        "analytics/filter_error.html",
        {"error": error, "reset_url": page_url},
        status=error.status_code,
    )


def _canonical_query(query: QueryDict) -> QueryDict | None:
    """The query as the page's own links write it, or None when it already is: the filter
    form sends every field (empty ones too) and a custom range as `from`/`to`, and the address
    bar should show the short form that a teammate can be sent.

    Raises `InvalidParameter` for a custom range without its days."""
    canonical = QueryDict(mutable=True)
    for key, values in query.lists():
        if key in ("from", "to"):
            continue
        if key in PAGE_KEYS:
            if values[-1] != "":
                canonical[key] = values[-1]
        else:
            canonical.setlist(key, values)
    if query.get("range") == CUSTOM_RANGE:
        first, last = query.get("from", ""), query.get("to", "")
        if not first:
            raise selectors.InvalidParameter("from", "choose the first day of the custom range.")
        if not last:
            raise selectors.InvalidParameter("to", "choose the last day of the custom range.")
        canonical["range"] = f"{first[:10]}..{last[:10]}"
    if canonical.urlencode() == query.urlencode():
        return None
    return canonical


def _series_grouping(value: str | None, filters: selectors.UsageFilter) -> str:
    """The chart's `by`: as asked, or what suits the range (hours for a day, weeks for all
    time or a long range, else days)."""
    if value:
        if value not in selectors.SERIES_GROUPINGS:
            raise selectors.InvalidParameter(
                SERIES_KEY, f"one of {', '.join(selectors.SERIES_GROUPINGS)}."
            )
        if value == "hour" and not _hourly_allowed(filters):
            raise selectors.InvalidParameter(
                SERIES_KEY, f"hour needs a range of at most {HOURLY_MAX_DAYS} days; use day."
            )
        return value
    if not filters.is_bounded:
        return "week"
    span = filters.until - filters.since
    if span <= timedelta(days=2):
        return "hour"
    return "week" if span > timedelta(days=120) else "day"


def _hourly_allowed(filters: selectors.UsageFilter) -> bool:
    return filters.is_bounded and filters.until - filters.since <= timedelta(days=HOURLY_MAX_DAYS)


def _csv_response(table: Table, organization_slug: str) -> HttpResponse:
    response = HttpResponse(table.csv_text(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="clawtrace-{organization_slug}-{table.name}.csv"'
    )
    return response


def _tokens_of(row: dict[str, Any]) -> int:
    return (
        row["input_tokens"]
        + row["output_tokens"]
        + row["cache_read_tokens"]
        + row["cache_write_tokens"]
    )


def series_summary(points: list[dict[str, Any]], by: str) -> str:
    """The chart in one sentence, for screen readers (the table under it has every point)."""
    if not points:
        return "No usage in this range."
    total = sum(point["cost_usd"] for point in points)
    peak = max(points, key=lambda point: point["cost_usd"])
    return (
        f"Cost by {by}, {len(points)} points from {points[0][by]} to {points[-1][by]}: "
        f"${total:,.2f} in all, the most ${peak['cost_usd']:,.2f} at {peak[by]}."
    )


@dataclass
class Subject:
    """What a drill-down page is about: the filter it fixes, and how to show it."""

    kind: str  # "member", "device", "project" or "" for the overview
    param: str = ""  # the filter value it sets
    title: str = ""
    obj: Any = None


class _UsagePageView(OrgMemberRequiredMixin, View):
    """The overview and the pages of one member, device or project: the same page with one
    filter fixed by the URL's path (and that one breakdown left out)."""

    template_name = "analytics/overview.html"
    tables: tuple[str, ...] = ()
    page_title = "Usage"

    def subject(self, **kwargs: Any) -> Subject:
        return Subject(kind="")

    def get(self, request: HttpRequest, org_slug: str, **kwargs: Any) -> HttpResponse:
        # The page's twenty reads each ask the same facts of the organization first: once.
        with reads_memoized():
            return self.page_response(request, **kwargs)

    def page_response(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        subject = self.subject(**kwargs)
        try:
            canonical = _canonical_query(request.GET)
        except selectors.InvalidParameter as error:
            return _invalid_response(request, error, page_url=request.path)
        if canonical is not None:
            text = canonical.urlencode()
            return redirect(request.path + (f"?{text}" if text else ""))
        params = request.GET.copy()
        if subject.kind:
            params[subject.kind] = subject.param
        try:
            filters = selectors.usage_filter_parse(organization=self.organization, params=params)
            by = _series_grouping(request.GET.get(SERIES_KEY), filters)
            page = UsagePage(
                organization=self.organization,
                filters=filters,
                # The fixed filter is in the path, not the query: links to other pages drop it.
                query={key: filters.values[key] for key in filters.values if key != subject.kind},
                by=by,
                path=request.path,
                fixed=subject.kind,
            )
            if request.GET.get("format") == "csv":
                name = request.GET.get("table", "")
                if name not in self.tables:
                    raise selectors.InvalidParameter("table", f"one of {', '.join(self.tables)}.")
                return _csv_response(TABLE_BUILDERS[name](page), self.organization.slug)
            context = self.page_context(page, subject)
        except selectors.InvalidParameter as error:
            return _invalid_response(request, error, page_url=request.path)
        return render(request, self.template_name, context)

    def page_context(self, page: UsagePage, subject: Subject) -> dict[str, Any]:
        organization = self.organization
        filters = page.filters
        tables = {name: TABLE_BUILDERS[name](page) for name in self.tables}
        for table in tables.values():
            table.csv_url = page.csv_url(table.name)
        series = tables["series"]
        periods = selectors.period_totals(organization=organization, filters=filters)
        return {
            "organization": organization,
            "membership": self.membership,
            "can_manage": self.membership.has_role_at_least(Role.ADMIN),
            "page": page,
            "page_title": subject.title or self.page_title,
            "subject": subject,
            "usage_filter": filters,
            "has_usage": usage_exists(organization=organization),
            "hidden_projects": selectors.hidden_projects(organization=organization),
            "choices": filter_choices(organization=organization, filters=filters),
            "range_presets": selectors.RANGE_PRESETS,
            "is_custom_range": filters.range not in selectors.RANGE_PRESETS,
            "custom_until_day": filters.until_day - timedelta(days=1)
            if filters.until_day
            else None,
            "series_groupings": [
                {
                    "by": by,
                    "url": page.url(by=by),
                    "is_current": by == page.by,
                    "is_allowed": by != "hour" or _hourly_allowed(filters),
                }
                for by in selectors.SERIES_GROUPINGS
            ],
            "explicit_by": self.request.GET.get(SERIES_KEY, ""),
            "series_chart_data": {
                "labels": [row[page.by] for row in series.rows],
                "cost": [row["cost_usd"] for row in series.rows],
                "turns": [row["turns"] for row in series.rows],
            },
            "series_summary": series_summary(series.rows, page.by),
            "period_cards": [
                ("Today", periods["today"]),
                ("This week", periods["week"]),
                ("This month", periods["month"]),
            ],
            "forecast": selectors.month_forecast(organization=organization, filters=filters),
            "tables": tables,
            "breakdowns": [tables[name] for name in BREAKDOWNS if name in tables],
            "budget_rows": self.budget_rows(tables, subject),
            "clear_filters_url": page.path,
            "overview_url": page.drill("overview"),
            # The alerts app (another issue's) fills `alerts/_dashboard_fired_alerts.html`;
            # without it the block renders nothing.
            "alerts_installed": apps.is_installed("alerts"),
        }

    def budget_rows(self, tables: dict[str, Table], subject: Subject) -> list[dict[str, Any]]:
        if "budgets" not in tables:
            return []
        return tables["budgets"].rows


class OverviewView(_UsagePageView):
    tables = (
        "series",
        *BREAKDOWNS,
        "sessions",
        "tools",
        "cache",
        "anomalies",
        "budgets",
        "plans",
    )


class MemberUsageView(_UsagePageView):
    template_name = "analytics/member_usage.html"
    tables = ("series", "devices", "projects", "models", "agents", "sessions", "tools", "cache")

    def subject(self, *, membership_id: int) -> Subject:
        membership = member_for_usage_get(
            organization=self.organization, membership_id=membership_id
        )
        if membership is None:
            raise Http404("No such member.")
        return Subject("member", str(membership.pk), membership.user.email, membership)

    def page_context(self, page: UsagePage, subject: Subject) -> dict[str, Any]:
        context = super().page_context(page, subject)
        plans = TABLE_BUILDERS["plans"](page)
        context["plan_row"] = next(
            (row for row in plans.rows if row["member_id"] == subject.obj.pk), None
        )
        context["budget_rows"] = [
            row
            for row in TABLE_BUILDERS["budgets"](page).rows
            if row["member_id"] == subject.obj.user_id
        ]
        # The member records their own plan; owners and admins anyone's (the service checks).
        context["can_set_plan"] = (
            subject.obj.user_id == self.request.user.pk
            or self.membership.has_role_at_least(Role.ADMIN)
        )
        context["plan_action"] = page.drill("member_plan", subject.obj.pk)
        context["plan_form"] = SubscriptionPlanForm(
            initial={"subscription_plan": subject.obj.subscription_plan}
        )
        return context


class MemberPlanView(OrgMemberRequiredMixin, ServiceErrorMixin, View):
    """Records a member's subscription plan, then back to their page (filters kept)."""

    def post(self, request: HttpRequest, org_slug: str, membership_id: int) -> HttpResponse:
        membership = member_for_usage_get(
            organization=self.organization, membership_id=membership_id
        )
        if membership is None:
            raise Http404("No such member.")
        form = SubscriptionPlanForm(request.POST)
        if not form.is_valid():
            error = ApplicationError(
                "Choose one of the plans listed.",
                code="invalid_input",
                extra={"fields": {"subscription_plan": ["Choose one of the plans listed."]}},
            )
            return self.service_error_response(request, error)
        membership_subscription_plan_set(
            actor=request.user, membership=membership, plan=form.cleaned_data["subscription_plan"]
        )
        messages.success(request, f"Plan recorded: {membership.get_subscription_plan_display()}.")
        back = reverse("dashboard:member", args=[self.organization.slug, membership.pk])
        query = {key: value for key, value in request.GET.items() if key in PAGE_KEYS and value}
        return redirect(back + (f"?{urlencode(query)}" if query else ""))


class DeviceUsageView(_UsagePageView):
    template_name = "analytics/device_usage.html"
    tables = ("series", "projects", "models", "agents", "sessions", "tools", "cache")

    def subject(self, *, device_id: uuid.UUID) -> Subject:
        device = device_for_usage_get(organization=self.organization, device_id=device_id)
        if device is None:
            raise Http404("No such device.")
        return Subject("device", str(device.pk), device.name, device)

    def page_context(self, page: UsagePage, subject: Subject) -> dict[str, Any]:
        context = super().page_context(page, subject)
        owner = device_owner_membership(organization=self.organization, device=subject.obj)
        context["device_owner"] = owner
        context["device_owner_url"] = page.drill("member", owner.pk) if owner else None
        return context


class ProjectUsageView(_UsagePageView):
    template_name = "analytics/project_usage.html"
    tables = ("series", "members", "devices", "models", "agents", "sessions", "tools", "cache")

    def subject(self, *, project: str) -> Subject:
        if not project_has_usage(organization=self.organization, project=project):
            raise Http404("No such project.")
        return Subject("project", project, project)

    def page_context(self, page: UsagePage, subject: Subject) -> dict[str, Any]:
        context = super().page_context(page, subject)
        context["budget_rows"] = [
            row for row in TABLE_BUILDERS["budgets"](page).rows if row["project"] == subject.param
        ]
        return context


class SessionUsageView(OrgMemberRequiredMixin, View):
    """One session: its turns over time, models, tools and cost (metadata only: the hosted
    side never holds any text). `?source=` tells apart two agents' sessions of one id."""

    tables = ("turns", "models", "tools")

    def get(self, request: HttpRequest, org_slug: str, session_id: str) -> HttpResponse:
        source = request.GET.get("source") or None
        try:
            session = selectors.session_detail(
                organization=self.organization, session_id=session_id, source=source
            )
        except selectors.InvalidParameter:
            session = None
        if session is None:
            raise Http404("No such session.")
        tables = session_tables(session)
        back_query = {
            key: value for key, value in request.GET.items() if key in PAGE_KEYS and value
        }
        back_query.pop("source", None)
        page_query = {"source": source} if source else {}
        for table in tables.values():
            table.csv_url = (
                request.path + "?" + urlencode({**page_query, "format": "csv", "table": table.name})
            )
        if request.GET.get("format") == "csv":
            name = request.GET.get("table", "")
            if name not in tables:
                error = selectors.InvalidParameter("table", f"one of {', '.join(tables)}.")
                return _invalid_response(request, error, page_url=request.path)
            return _csv_response(tables[name], self.organization.slug)
        device = (
            device_for_usage_get(
                organization=self.organization, device_id=uuid.UUID(session["device_id"])
            )
            if session["device_id"]
            else None
        )
        turns = session["turns"]
        return render(
            request,
            "analytics/session_usage.html",
            {
                "organization": self.organization,
                "membership": self.membership,
                "session": session,
                "device": device,
                "tables": tables,
                "back_url": UsagePage(
                    organization=self.organization,
                    filters=selectors.UsageFilter(),
                    query=back_query,
                    by="day",
                    path=request.path,
                ).drill("overview"),
                "session_tokens": _tokens_of(session["totals"]),
                "session_chart_data": {
                    # In the organization's zone, as the page's other times.
                    "labels": [
                        datetime.fromisoformat(turn["occurred_at"])
                        .astimezone(self.organization.zone)
                        .isoformat()
                        for turn in turns
                    ],
                    "cost": [turn["cost_usd"] or 0 for turn in turns],
                    "tokens": [_tokens_of(turn) for turn in turns],
                },
                "session_summary": (
                    f"{len(turns)} turn{'s' if len(turns) != 1 else ''} from "
                    f"{session['started_at'][:16].replace('T', ' ')} UTC to "
                    f"{session['ended_at'][:16].replace('T', ' ')} UTC, costing "
                    f"${session['totals']['cost_usd']:,.2f} in all."
                ),
            },
        )


# --- Budgets ------------------------------------------------------------------------------------


class BudgetsView(OrgMemberRequiredMixin, ServiceErrorMixin, View):
    """Every budget with this month's spend and forecast; owners and admins set and remove
    them here (the service checks the role again)."""

    def member_choices(self) -> list[tuple[int, str]]:
        return [
            (member["id"], member["label"])
            for member in filter_choices(
                organization=self.organization, filters=selectors.UsageFilter(range="month")
            )["members"]
        ]

    def page(self, request: HttpRequest, *, form: BudgetForm | None = None, status: int = 200):
        page = UsagePage(
            organization=self.organization,
            filters=selectors.UsageFilter(),
            query={},
            by="day",
            path=request.path,
        )
        table = TABLE_BUILDERS["budgets"](page)
        table.csv_url = page.url(format="csv", table="budgets")
        return render(
            request,
            "analytics/budgets.html",
            {
                "organization": self.organization,
                "membership": self.membership,
                "can_manage": self.membership.has_role_at_least(Role.ADMIN),
                "budgets": table,
                "budget_rows": table.rows,
                "form": form or BudgetForm(member_choices=self.member_choices()),
                "overview_url": page.drill("overview"),
            },
            status=status,
        )

    def get(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        if request.GET.get("format") == "csv":
            if request.GET.get("table") != "budgets":
                error = selectors.InvalidParameter("table", "budgets is this page's one table.")
                return _invalid_response(request, error, page_url=request.path)
            page = UsagePage(self.organization, selectors.UsageFilter(), {}, "day", request.path)
            return _csv_response(TABLE_BUILDERS["budgets"](page), self.organization.slug)
        return self.page(request)

    def post(self, request: HttpRequest, org_slug: str) -> HttpResponse:
        form = BudgetForm(request.POST, member_choices=self.member_choices())
        if not form.is_valid():
            return self.page(request, form=form, status=400)
        member = None
        if form.cleaned_data["member"]:
            membership = member_for_usage_get(
                organization=self.organization, membership_id=form.cleaned_data["member"]
            )
            member = membership.user if membership is not None else None
        try:
            budget_set(
                organization=self.organization,
                actor=request.user,
                scope=form.cleaned_data["scope"],
                monthly_usd=form.cleaned_data["monthly_usd"],
                member=member,
                project=form.cleaned_data["project"],
            )
        except ApplicationError as error:
            form_error_add(form, error)
            return self.page(request, form=form, status=error.status_code)
        messages.success(request, "Budget saved.")
        return redirect("dashboard:budgets", org_slug=self.organization.slug)


class BudgetDeleteView(OrgMemberRequiredMixin, ServiceErrorMixin, View):
    def post(self, request: HttpRequest, org_slug: str, budget_id: int) -> HttpResponse:
        budget = budget_get(organization=self.organization, budget_id=budget_id)
        if budget is None:
            raise Http404("No such budget.")
        budget_delete(budget=budget, actor=request.user)
        messages.success(request, "Budget removed.")
        return redirect("dashboard:budgets", org_slug=self.organization.slug)


overview = OverviewView.as_view()
member_usage = MemberUsageView.as_view()
member_plan = MemberPlanView.as_view()
device_usage = DeviceUsageView.as_view()
project_usage = ProjectUsageView.as_view()
session_usage = SessionUsageView.as_view()
budgets = BudgetsView.as_view()
budget_delete_view = BudgetDeleteView.as_view()
