"""The nightly retention job: delete what is older than the organization's plan keeps.

What the plan keeps is asked of the limits registry on every run (`accounts.limits`, which
billing answers with the plan that applies now: the paid one, or the largest with billing off),
so a change of plan takes effect on the next one. The deleting is done by the apps that own the
rows, the raw events first (`ingest.services.events_before_delete`), then their rollups
(`analytics.services.rollups_before_delete`: every 15-minute and daily rollup table, all that
the dashboard and the organization API read), a small batch per transaction, so no statement
holds its locks for long: ingest, which locks the same event keys, and a rollup refresh, which
takes the same rollup lock, wait at most one batch.

History is kept in whole local days of the organization's zone (`Organization.time_zone`): a
plan's N days are kept back to the start of the local day N days ago (the local date of now
minus N x 24 hours): at least N x 24 hours, and the rest of that local day. The daily rollups cannot
be cut inside a day, and a local midnight is a 15-minute bucket boundary, so the events, the
15-minute rollups and the daily rollups all end at the same instant and the dashboard shows
exactly the history the events still hold. The downgrade check below compares the same cutoffs.

A shorter retention (a downgrade after a refund or a lost dispute, or the first run over an
organization that already holds older history) never deletes at once. If the shorter cutoff
would remove rows the longer one keeps, the owners are e-mailed first, the warning is recorded
(`RetentionState.warned_at`, so it goes once), and the job keeps the longer retention until the
grace period (`RETENTION_DOWNGRADE_GRACE_DAYS`) has passed. Rows older than the longer
retention were out of range anyway and go as usual. An upgrade meanwhile cancels the pending
change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.limits import OrganizationLimits, organization_limits
from accounts.models import Organization
from accounts.selectors import owner_email_list
from accounts.tenancy import organization_scope
from analytics.services import local_midnight, rollups_before_delete
from billing.plans import LONGEST_RETENTION_DAYS
from ingest.selectors import event_exists_between
from ingest.services import events_before_delete
from retention.models import RetentionState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionRun:
    organization_id: int
    # None, and no cutoff, when the organization's history is unlimited.
    plan_days: int | None
    enforced_days: int | None
    cutoff: datetime | None
    deleted_events: int
    # 15-minute and daily rollup rows, all tables together.
    deleted_rollup_rows: int
    # False when it stopped at `max_batches` with rows left (the task runs again).
    finished: bool
    warned: bool


class _WarningNotSent(Exception):
    pass


def _warning_send(
    *,
    organization: Organization,
    limits: OrganizationLimits,
    state: RetentionState,
    plan_days: int,
    applies_from: datetime,
) -> None:
    recipients = owner_email_list(organization=organization)
    if not recipients:
        raise _WarningNotSent("no owner to warn")
    site = settings.SITE_URL.rstrip("/")
    context = {
        "organization": organization,
        "plan_name": limits.plan_name,
        "plan_days": plan_days,
        "enforced_days": state.enforced_days,
        "applies_from": applies_from,
        "pricing_url": site + reverse("pricing"),
        "settings_url": site + reverse("accounts:org_settings", args=[organization.slug]),
    }
    subject = " ".join(render_to_string("retention/email/warning_subject.txt", context).split())
    body = render_to_string("retention/email/warning_message.txt", context)
    EmailMessage(
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}", body=body, to=recipients
    ).send(fail_silently=False)


def retention_cutoff(*, organization: Organization, now: datetime, days: int) -> datetime:
    """The first instant `days` days of retention keep: the local midnight (in the
    organization's zone) that starts the local date of `now - days`. Everything before it
    goes: events, 15-minute rollups of earlier buckets, daily rollups of earlier days."""
    zone = organization.zone
    return local_midnight((now - timedelta(days=days)).astimezone(zone).date(), zone)


def _enforced_days_resolve(
    *, organization: Organization, limits: OrganizationLimits, plan_days: int, now: datetime
):
    """The retention to apply tonight, and whether the owners were warned just now."""
    with transaction.atomic(), organization_scope(organization):
        state, _created = RetentionState.objects.select_for_update().get_or_create(
            organization=organization, defaults={"enforced_days": LONGEST_RETENTION_DAYS}
        )
        warned = False
        if plan_days >= state.enforced_days:
            # Same or longer (an upgrade, also one during a grace period): at once.
            state.enforced_days, state.pending_days, state.applies_from = plan_days, None, None
        elif state.pending_days is not None and plan_days >= state.pending_days:
            # Announced already (or less than announced): apply once the grace period is over.
            if now >= state.applies_from:
                state.enforced_days, state.pending_days, state.applies_from = plan_days, None, None
        elif not event_exists_between(
            organization=organization,
            start=retention_cutoff(organization=organization, now=now, days=state.enforced_days),
            end=retention_cutoff(organization=organization, now=now, days=plan_days),
        ):
            # Nothing became out of range because of the change: nothing to warn about.
            state.enforced_days, state.pending_days, state.applies_from = plan_days, None, None
        else:
            applies_from = now + timedelta(days=settings.RETENTION_DOWNGRADE_GRACE_DAYS)
            try:
                with transaction.atomic():  # a savepoint: a failure here leaves the state usable
                    _warning_send(
                        organization=organization,
                        limits=limits,
                        state=state,
                        plan_days=plan_days,
                        applies_from=applies_from,
                    )
            except Exception:
                # Not recorded, so tried again next night; meanwhile the longer retention holds
                # and nothing the warning is about is deleted.
                logger.exception(
                    "retention warning not sent; keeping the longer retention",
                    extra={"organization_id": organization.pk},
                )
            else:
                state.pending_days, state.warned_at, state.applies_from = (
                    plan_days,
                    now,
                    applies_from,
                )
                warned = True
        state.last_run_at = now
        state.full_clean()
        state.save()
    return state.enforced_days, warned


def organization_retention_apply(
    *,
    organization: Organization,
    now: datetime | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
) -> RetentionRun:
    """One night's retention for one organization: settle the retention in force (warning the
    owners about a shorter one), then delete what is older than it (`retention_cutoff`), oldest
    first, in batches: the events, then the rollups. At most `max_batches` batches (events and
    rollups together); `finished` is False when rows may be left."""
    now = now or timezone.now()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    max_batches = max_batches or settings.RETENTION_BATCHES_PER_RUN
    limits = organization_limits(organization=organization)
    if limits.retention_days is None:
        # Unlimited history (no plan table registered, `accounts.limits`' default): nothing
        # to delete and nothing to settle.
        return RetentionRun(
            organization_id=organization.pk,
            plan_days=None,
            enforced_days=None,
            cutoff=None,
            deleted_events=0,
            deleted_rollup_rows=0,
            finished=True,
            warned=False,
        )
    plan_days = limits.retention_days
    enforced_days, warned = _enforced_days_resolve(
        organization=organization, limits=limits, plan_days=plan_days, now=now
    )
    cutoff = retention_cutoff(organization=organization, now=now, days=enforced_days)
    deleted_events = deleted_rollup_rows = 0
    events_left, finished = True, False
    for _batch in range(max_batches):
        # The rollups after the events: until the events are gone a refresh could make rows
        # of them again.
        if events_left:
            count = events_before_delete(
                organization=organization, before=cutoff, batch_size=batch_size
            )
            deleted_events += count
            events_left = count == batch_size
        else:
            count = rollups_before_delete(
                organization=organization, before=cutoff, batch_size=batch_size
            )
            deleted_rollup_rows += count
            if count < batch_size:
                finished = True
                break
    with organization_scope(organization):
        RetentionState.objects.filter(organization=organization).update(
            last_deleted_count=deleted_events
        )
    run = RetentionRun(
        organization_id=organization.pk,
        plan_days=plan_days,
        enforced_days=enforced_days,
        cutoff=cutoff,
        deleted_events=deleted_events,
        deleted_rollup_rows=deleted_rollup_rows,
        finished=finished,
        warned=warned,
    )
    logger.info(
        "retention applied",
        extra={
            "organization_id": organization.pk,
            "plan_days": plan_days,
            "enforced_days": enforced_days,
            "cutoff": cutoff.isoformat(),
            "deleted_events": deleted_events,
            "deleted_rollup_rows": deleted_rollup_rows,
            "finished": finished,
            "warned": warned,
        },
    )
    return run
