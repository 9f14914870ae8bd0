"""One filter object for every usage read, parsed from query parameters (the dashboard's URL and
the organization API's alike), with errors that name the parameter at fault.

`range` takes what `clawtrace cost-report --range` takes, and means the same, in the
organization's time zone: `today`, `week`, `month`, `Nd` (the last N local days, today
included: `7d`, `30d`, `90d`), `all`, `YYYY-MM-DD` and `YYYY-MM-DD..YYYY-MM-DD` (inclusive local
days). The agent's parser is used as it is (`clawtrace.reports.range_parse`), so the two never
disagree on where a day starts. Every range is whole local days, so it is a whole number of
15-minute UTC buckets and of daily rollup rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from clawtrace import reports
from django.utils import timezone

from accounts.models import Membership, Organization
from accounts.tenancy import organization_scope
from clawtrace_site.exceptions import ApplicationError
from devices.models import Device

RANGE_PRESETS = ("today", "7d", "30d", "90d", "all")
DEFAULT_RANGE = "30d"
FILTER_PARAMS = ("range", "member", "device", "project", "model", "agent", "source")
# The longest value each label can have (the ingest contract's bounds).
_MAX_LENGTHS = {"project": 200, "model": 200, "agent": 128, "source": 16, "member": 254}


class InvalidParameter(ApplicationError):
    """A query parameter the read cannot use; `field` names it (both error shapes carry it)."""

    code = "invalid_parameter"
    status_code = 400

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}", extra={"field": name, "fields": {name: [message]}})
        self.field = name


@dataclass(frozen=True)
class UsageFilter:
    """What to read. Times are UTC: `since` inclusive, `until` exclusive, None for unbounded;
    `since_day`/`until_day` are the same bounds as local days of the organization's zone."""

    range: str = DEFAULT_RANGE
    since: datetime | None = None
    until: datetime | None = None
    since_day: date | None = None
    until_day: date | None = None
    # Devices the member and device parameters leave (None: every device).
    device_ids: frozenset[uuid.UUID] | None = None
    member_id: int | None = None  # the membership named by `member`
    device: str | None = None
    project: str | None = None
    model: str | None = None
    agent: str | None = None
    source: str | None = None
    values: dict[str, str] = field(default_factory=dict, compare=False)  # as given, for URLs

    @property
    def is_bounded(self) -> bool:
        return self.since is not None and self.until is not None

    def with_range(self, since: datetime | None, until: datetime | None, zone) -> UsageFilter:
        """The same filter over other times (whole local days of `zone`)."""
        return replace(
            self,
            since=since,
            until=until,
            since_day=since.astimezone(zone).date() if since else None,
            until_day=until.astimezone(zone).date() if until else None,
        )


def _label(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    value = str(value)
    if "\x00" in value:
        raise InvalidParameter(name, "must not contain NUL characters.")
    if len(value) > _MAX_LENGTHS.get(name, 200):
        raise InvalidParameter(name, f"at most {_MAX_LENGTHS.get(name, 200)} characters.")
    return value


def usage_range_bounds(
    text: str, *, organization: Organization, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """UTC bounds of a `range` value in the organization's zone."""
    now = now or timezone.now()
    stripped = text.strip().lower()
    if stripped.endswith("h") and stripped[:-1].isdigit():
        # The agent takes `24h` too; here every range is whole days (the daily rollups).
        raise InvalidParameter(
            "range",
            f"{text!r} is not one of {', '.join(RANGE_PRESETS)}, Nd, week, month, YYYY-MM-DD "
            "or YYYY-MM-DD..YYYY-MM-DD.",
        )
    try:
        since_ms, until_ms = reports.range_parse(text, organization.zone, now)
    except reports.ReportError as error:
        raise InvalidParameter("range", str(error).removeprefix("range: ")) from None

    def moment(ms: int | None) -> datetime | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)

    return moment(since_ms), moment(until_ms)


def usage_filter_parse(
    *,
    organization: Organization,
    params: Mapping[str, str],
    now: datetime | None = None,
    default_range: str = DEFAULT_RANGE,
) -> UsageFilter:
    """The filter in `params` (a QueryDict or a dict of strings), or `InvalidParameter`."""
    zone = organization.zone
    range_text = _label(params, "range") or default_range
    if len(range_text) > 40:
        raise InvalidParameter("range", "at most 40 characters.")
    since, until = usage_range_bounds(range_text, organization=organization, now=now)
    values = {name: str(params[name]) for name in FILTER_PARAMS if params.get(name)}
    device_ids: set[uuid.UUID] | None = None
    member_id = None
    with organization_scope(organization):
        member = _label(params, "member")
        if member is not None:
            # A well-formed id that names no member (of this organization) selects nothing,
            # like a model nobody used: the same answer whether it exists elsewhere or not.
            membership = _membership_find(member)
            member_id = membership.pk if membership is not None else None
            device_ids = (
                set(
                    Device.objects.filter(created_by_id=membership.user_id).values_list(
                        "pk", flat=True
                    )
                )
                if membership is not None
                else set()
            )
        device = _label(params, "device")
        if device is not None:
            found = _devices_find(device)
            device_ids = found if device_ids is None else device_ids & found
    source = _label(params, "source")
    return UsageFilter(
        range=range_text,
        since=since,
        until=until,
        since_day=since.astimezone(zone).date() if since else None,
        until_day=until.astimezone(zone).date() if until else None,
        device_ids=frozenset(device_ids) if device_ids is not None else None,
        member_id=member_id,
        device=device,
        project=_label(params, "project"),
        model=_label(params, "model"),
        agent=_label(params, "agent"),
        source=source,
        values=values,
    )


def _membership_find(value: str) -> Membership | None:
    """A member by membership id, or by email address (case-insensitive)."""
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return Membership.objects.filter(pk=int(value)).first()
    if "@" in value:
        return Membership.objects.filter(user__email__iexact=value).first()
    raise InvalidParameter("member", "a membership id or the member's email address.")


def _devices_find(value: str) -> set[uuid.UUID]:
    """A device by id, or the devices of that exact name."""
    try:
        device_id = uuid.UUID(value)
    except ValueError:
        return set(Device.objects.filter(name=value).values_list("pk", flat=True))
    return set(Device.objects.filter(pk=device_id).values_list("pk", flat=True))


def local_today(organization: Organization, now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(organization.zone).date()


def day_after(day: date) -> date:
    return day + timedelta(days=1)
