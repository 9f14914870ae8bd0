"""Rollups of the organization's events, the anomalies found in them, budgets, and the
organization API keys that read them.

Rollups (docs/scaling.md, "Rollups"):
- `UsageRollup`: one row per 15-minute UTC bucket and (device, source, agent, project, session,
  model, provider), the sums of that bucket's events. The source of truth of every read; a
  15-minute bucket starts on a multiple of 15 minutes of UTC, and so does every local midnight
  of every time zone in use (offsets are whole quarter hours), so a local day is a whole number
  of buckets in any zone.
- `UsageDailyRollup`: the same sums per local day of the organization's time zone, made from
  the 15-minute rows, so that a 90-day range reads ninety days' rows rather than 8,640 buckets'.
  Each row carries the zone it was made in; while it differs from the organization's (the zone
  was just changed) reads use the 15-minute rows and the sweep rebuilds the days.
- `ToolRollup` / `ToolDailyRollup`: tool calls per bucket (day) and tool, each turn's cost split
  evenly over the calls it made, as the agent's `tools_report` does.
- `UsageDailyBreakdown`, `SessionDailyRollup`, `ToolDailyTotal`: the daily rows summed again,
  per one dimension, per session, per tool, for the overview's unfiltered reads (each says
  why). Made from the daily rows whenever they are, so they are never out of step with them.

Sessions are part of the rollup key. A distinct count cannot be summed across buckets, but the
rollup rows of a range are its per-bucket session sets: counting distinct (source, session_id)
over them is exact for any range and filter, and costs little, because a session runs on one
device, in one project, with one agent, so adding it to the key multiplies the rows by about
the number of models a session uses.

`organization_id` leads every key and index, so that the tables distribute by it (Citus).
Members are not a column: a device belongs to the member who linked it (`Device.created_by`),
and reads map devices to members, so that a device handed to someone else never leaves rows
behind under its former owner.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import OrgOwnedModel


def _organization_fk() -> models.ForeignKey:
    """`OrgOwnedModel`'s foreign key without an index of its own: each table has a composite
    index leading with `organization_id` that serves every organization filter and the
    cascade."""
    return models.ForeignKey(
        "accounts.Organization",
        on_delete=models.CASCADE,
        related_name="%(class)ss",
        db_index=False,
    )


def _device_fk() -> models.ForeignKey:
    # Devices are revoked, never deleted while their events exist (ingest's RESTRICT); no
    # constraint, so a rebuild never waits on the devices table and a table distributed by
    # organization needs no foreign key to a table it is not co-located with.
    return models.ForeignKey(
        "devices.Device",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )


class _UsageSums(models.Model):
    """The sums every usage rollup row holds. Money is integer picodollars (10^-12 USD), as in
    the agent's store: exact on every database, and cheap to add up."""

    turns = models.PositiveIntegerField()
    input_tokens = models.PositiveBigIntegerField()
    output_tokens = models.PositiveBigIntegerField()
    cache_read_tokens = models.PositiveBigIntegerField()
    cache_write_5m_tokens = models.PositiveBigIntegerField()
    cache_write_1h_tokens = models.PositiveBigIntegerField()
    web_search_requests = models.PositiveBigIntegerField()
    # The events' own cost (`cost_usd`, the agent's `auto` mode), unpriced events counting 0.
    cost_pico = models.BigIntegerField()
    # Turns without a cost and their tokens (all kinds), as `clawtrace cost-report` reports.
    unpriced_turns = models.PositiveIntegerField()
    unpriced_tokens = models.PositiveBigIntegerField()
    sidechain_turns = models.PositiveIntegerField()
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()

    class Meta:
        abstract = True


class _UsageKey(models.Model):
    device = _device_fk()
    source = models.CharField(max_length=16)
    agent = models.CharField(max_length=128)
    project = models.CharField(max_length=200, null=True)  # noqa: DJ001 (null: not sent)
    session_id = models.CharField(max_length=200)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=64)

    class Meta:
        abstract = True


USAGE_KEY_FIELDS = ("device_id", "source", "agent", "project", "session_id", "model", "provider")
TOOL_KEY_FIELDS = ("device_id", "source", "agent", "project", "model", "tool")


class UsageRollup(OrgOwnedModel, _UsageKey, _UsageSums):
    organization = _organization_fk()
    bucket = models.DateTimeField(help_text="Start of the 15-minute UTC bucket.")

    class Meta(OrgOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "bucket", *USAGE_KEY_FIELDS],
                name="analytics_usage_rollup_key",
                nulls_distinct=False,
            ),
        ]
        # The unique index (organization, bucket, ...) answers every range read.

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:%M} {self.model}"


class UsageDailyRollup(OrgOwnedModel, _UsageKey, _UsageSums):
    organization = _organization_fk()
    day = models.DateField(help_text="The local day, in `time_zone`.")
    time_zone = models.CharField(max_length=64)

    class Meta(OrgOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", *USAGE_KEY_FIELDS],
                name="analytics_usage_daily_key",
                nulls_distinct=False,
            ),
        ]
        indexes = [
            # The top sessions' models, projects and devices: a handful of sessions' rows.
            models.Index(
                fields=["organization", "session_id", "day"], name="analytics_daily_session"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model}"


class UsageDimension(models.TextChoices):
    """The dimensions `UsageDailyBreakdown` sums over, one at a time."""

    TOTAL = "total", "Every usage row"
    DEVICE = "device", "Device"
    PROJECT = "project", "Project"
    MODEL = "model", "Model"
    AGENT = "agent", "Agent"


class UsageDailyBreakdown(OrgOwnedModel, _UsageSums):
    """The daily rollups summed per local day, source and the value of one dimension at a
    time: the overview's breakdowns without the session (and the other dimensions) in the key.

    `UsageDailyRollup` has a row per session and model of a day, so a month of a busy
    organization is tens of thousands of rows, and each breakdown of the overview page read them
    all. Here a day is a row per source and model, per source and project, and so on: a few
    hundred rows a month whatever the number of sessions. Each dimension holds the whole usage
    once (`total` is the day's usage per source), so a dimension's rows add up to the day.

    Only reads without a filter other than the source (and on plans that hide no project) can
    be answered from one dimension at a time; the others read `UsageDailyRollup`
    (`analytics.selectors.usage._usage_rows`). Made from the daily rows, in the same
    transaction, whenever they are."""

    organization = _organization_fk()
    day = models.DateField()
    time_zone = models.CharField(max_length=64)
    source = models.CharField(max_length=16)
    dimension = models.CharField(max_length=16, choices=UsageDimension.choices)
    # The dimension's value: the device's id as text, the project (None: no project sent), the
    # model or the agent; None on `total` rows.
    value = models.CharField(max_length=200, null=True)  # noqa: DJ001 (null: no project)
    # The model's provider on `model` rows (prices are per provider and model), else "".
    provider = models.CharField(max_length=64, blank=True)

    class Meta(OrgOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "dimension", "day", "source", "value", "provider"],
                name="analytics_usage_breakdown_key",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.dimension}={self.value}"


class SessionDailyRollup(OrgOwnedModel, _UsageSums):
    """The daily rollups summed per local day and session: a day's row per session, whatever
    the models, projects or agents it used. Counting a range's distinct sessions, and ranking
    its most expensive ones, reads these rather than every (session, model, agent...) row of
    `UsageDailyRollup`. Made from the daily rows, in the same transaction, whenever they are."""

    organization = _organization_fk()
    day = models.DateField()
    time_zone = models.CharField(max_length=64)
    source = models.CharField(max_length=16)
    session_id = models.CharField(max_length=200)

    class Meta(OrgOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "source", "session_id"],
                name="analytics_session_daily_key",
            ),
        ]
        indexes = [
            # The top sessions' own sums, once they are ranked: a handful of sessions' rows.
            models.Index(
                fields=["organization", "session_id", "day"], name="analytics_session_daily_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.session_id}"


class _ToolSums(models.Model):
    calls = models.PositiveIntegerField()
    turns = models.PositiveIntegerField()
    cost_pico = models.BigIntegerField(help_text="The turns' cost, split evenly over their calls.")

    class Meta:
        abstract = True


class _ToolKey(models.Model):
    device = _device_fk()
    source = models.CharField(max_length=16)
    agent = models.CharField(max_length=128)
    project = models.CharField(max_length=200, null=True)  # noqa: DJ001
    model = models.CharField(max_length=200)
    tool = models.CharField(max_length=64)

    class Meta:
        abstract = True


class ToolRollup(OrgOwnedModel, _ToolKey, _ToolSums):
    organization = _organization_fk()
    bucket = models.DateTimeField()

    class Meta(OrgOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "bucket", *TOOL_KEY_FIELDS],
                name="analytics_tool_rollup_key",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:%M} {self.tool}"


class ToolDailyRollup(OrgOwnedModel, _ToolKey, _ToolSums):
    organization = _organization_fk()
    day = models.DateField()
    time_zone = models.CharField(max_length=64)

    class Meta(OrgOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", *TOOL_KEY_FIELDS],
                name="analytics_tool_daily_key",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.tool}"


class ToolDailyTotal(OrgOwnedModel, _ToolSums):
    """`ToolDailyRollup` summed per local day, source and tool: the overview's cost per tool reads a
    row per tool and day instead of one per tool, device, project, model and agent. Made with
    the daily rows."""

    organization = _organization_fk()
    day = models.DateField()
    time_zone = models.CharField(max_length=64)
    source = models.CharField(max_length=16)
    tool = models.CharField(max_length=64)

    class Meta(OrgOwnedModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "source", "tool"],
                name="analytics_tool_daily_total_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.tool}"


class RollupState(OrgOwnedModel):
    """One row per organization: the lock every rollup write of the organization takes first
    (so that two workers never interleave), and the zone its daily rollups are in."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="+"
    )
    daily_time_zone = models.CharField(max_length=64, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    rebuilt_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rollups of {self.organization_id}"


class Project(OrgOwnedModel):
    """A project label the organization has sent, in the order the labels first arrived.

    A project exists only as a label on usage; this row records when the organization's first
    event with the label was received (not when it occurred), so that a plan that shows a
    number of projects shows the first ones the organization sent, and keeps showing them: an
    event with an old timestamp arriving later, or retention deleting a project's oldest
    events, cannot change which projects those are. Written by the rollup refresh (under the
    organization's `RollupState` lock) as labels appear, never updated."""

    organization = _organization_fk()
    label = models.CharField(max_length=200, blank=True)
    first_received_at = models.DateTimeField()

    class Meta(OrgOwnedModel.Meta):
        ordering = ["first_received_at", "id"]
        constraints = [
            # Also the index every read of an organization's projects uses.
            models.UniqueConstraint(
                fields=["organization", "label"], name="analytics_project_org_label_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.label or "(empty label)"


class RollupDirtyBucket(OrgOwnedModel):
    """A 15-minute bucket whose events changed since its rollups were made: an append-only
    queue. Ingest's receiver adds rows (never updates one, so it never waits on a worker that
    holds them), and the refresh task takes them with DELETE ... RETURNING, which sees only
    committed rows: a bucket marked while the task runs stays for the next run."""

    organization = _organization_fk()
    bucket = models.DateTimeField()
    # When it was queued: the sweep refreshes organizations whose buckets wait too long.
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta(OrgOwnedModel.Meta):
        indexes = [
            models.Index(fields=["organization", "bucket"], name="analytics_dirty_org_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:%M} of {self.organization_id}"


# --- Anomalies ----------------------------------------------------------------------------------


class AnomalyKind(models.TextChoices):
    DAILY_BUDGET = "daily_budget", "Daily spend over the limit"
    SESSION_SPIKE = "session_spike", "Expensive session"
    HOURLY_BURN = "hourly_burn", "Hourly spend over the limit"
    HOURLY_REQUESTS = "hourly_requests", "Requests per hour over the limit"
    HOURLY_TOKENS = "hourly_tokens", "Tokens per hour over the limit"
    HOUR_OF_WEEK = "hour_of_week", "Unusual hour for this organization"


class Anomaly(OrgOwnedModel):
    """Something unusual in an organization's usage, found by `anomalies_detect`. One row per
    (kind, window, subject): a later run over the same window updates the value, never adds a
    row, so the alert workers can fire once per row."""

    organization = _organization_fk()
    kind = models.CharField(max_length=32, choices=AnomalyKind.choices)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    # What the window is about beyond its time: a session's key for session spikes, else "".
    subject = models.CharField(max_length=220, blank=True, default="")
    value = models.DecimalField(max_digits=24, decimal_places=6)
    threshold = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    baseline = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    detected_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(OrgOwnedModel.Meta):
        verbose_name_plural = "anomalies"
        ordering = ["-window_start", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "window_start", "subject"],
                name="analytics_anomaly_once_per_window",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=AnomalyKind.values), name="analytics_anomaly_kind_known"
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "-window_start"], name="analytics_anomaly_org_window"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} at {self.window_start:%Y-%m-%d %H:%M}"


# --- Budgets ------------------------------------------------------------------------------------


class BudgetScope(models.TextChoices):
    ORGANIZATION = "organization", "Organization"
    MEMBER = "member", "Member"
    PROJECT = "project", "Project"


class Budget(OrgOwnedModel):
    """A monthly spending budget (USD, months of the organization's time zone): one for the
    organization, optionally one per member and one per project."""

    organization = _organization_fk()
    scope = models.CharField(max_length=16, choices=BudgetScope.choices)
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    project = models.CharField(max_length=200, blank=True, default="")
    monthly_usd = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(OrgOwnedModel.Meta):
        ordering = ["scope", "project", "member_id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope__in=BudgetScope.values), name="analytics_budget_scope"
            ),
            models.CheckConstraint(
                condition=models.Q(monthly_usd__gt=0), name="analytics_budget_positive"
            ),
            # Exactly the subject its scope names.
            models.CheckConstraint(
                condition=(
                    models.Q(scope="organization", member__isnull=True, project="")
                    | models.Q(scope="member", member__isnull=False, project="")
                    | (models.Q(scope="project", member__isnull=True) & ~models.Q(project=""))
                ),
                name="analytics_budget_subject_matches_scope",
            ),
            models.UniqueConstraint(
                fields=["organization", "scope", "member", "project"],
                name="analytics_budget_one_per_subject",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} budget {self.monthly_usd}"


# --- Organization API keys ----------------------------------------------------------------------


class OrganizationApiKey(OrgOwnedModel):
    """A read-only key (`cto_...`) for scripts and the menu bar app: the organization API
    (`/api/v1/usage`, `/sessions`, `/anomalies`). Stored as a SHA-256 digest; the value exists
    in one response only. Revoking is one-way."""

    name = models.CharField(max_length=100)
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, enough to tell keys apart on the settings page; never the rest.
    display_prefix = models.CharField(max_length=16, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(OrgOwnedModel.Meta):
        verbose_name = "organization API key"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="analytics_apikey_org_created")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
