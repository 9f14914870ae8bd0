from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.subscriptions import SubscriptionPlan
from accounts.tenancy import OrgOwnedModel


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra_fields) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields) -> User:
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields) -> User:
        extra_fields["is_staff"] = True
        extra_fields["is_superuser"] = True
        return self._create_user(email, password, **extra_fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Logs in by email (allauth); there is no username."""

    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(
        default=False, help_text="Can log into the operators' admin site."
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            # Emails are stored lower-cased; the constraint makes a mixed-case duplicate
            # impossible even if some path forgets to normalise.
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email).lower()


class PlanCode(models.TextChoices):
    """The tiers an organization can be on. What each one allows and costs is billing's
    (`billing/plans.py`, one `Plan` per code, checked by billing's tests); accounts only stores
    which tier applies, and the database refuses any other value. The codes live here because
    accounts imports no app above it (style.md 1)."""

    FREE = "free", "Free"
    PRO = "pro", "Pro"
    TEAM = "team", "Team"


DEFAULT_TIME_ZONE = "UTC"


def time_zone_validate(value: str) -> None:
    """An IANA time zone name that zoneinfo knows (`Asia/Kolkata`, `America/St_Johns`, `UTC`).
    Checked against the list of available zones rather than by loading it: `ZoneInfo` would
    also accept a path-like key that happens to name a file."""
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            "%(value)s is not a time zone name such as Europe/Paris or Asia/Kolkata.",
            code="invalid_time_zone",
            params={"value": str(value)[:64]},
        )


class Organization(models.Model):
    """The tenant: every org-owned row hangs off one of these."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60, unique=True)
    plan = models.CharField(max_length=20, choices=PlanCode.choices, default=PlanCode.FREE)
    is_personal = models.BooleanField(
        default=False, help_text="Created for its first member at signup."
    )
    # Every "today", "this week" and "this month" of the dashboard and the API is in this zone
    # (usage is rolled up in 15-minute UTC buckets, so any offset, :30 and :45 included, works).
    time_zone = models.CharField(
        max_length=64, default=DEFAULT_TIME_ZONE, validators=[time_zone_validate]
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(plan__in=PlanCode.values),
                name="accounts_organization_plan_known",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


ROLE_RANK = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Membership(OrgOwnedModel):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    # What the member pays for their agent (accounts/subscriptions.py has the prices).
    subscription_plan = models.CharField(
        max_length=20, choices=SubscriptionPlan.choices, default=SubscriptionPlan.API
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(OrgOwnedModel.Meta):
        ordering = ["organization_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user"], name="accounts_membership_org_user_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="accounts_membership_role_known"
            ),
            models.CheckConstraint(
                condition=models.Q(subscription_plan__in=SubscriptionPlan.values),
                name="accounts_membership_subscription_plan_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.organization_id} ({self.role})"

    def has_role_at_least(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


class Invitation(OrgOwnedModel):
    """A pending seat. Only the SHA-256 of the token is stored; the link in the email is the
    only place the token ever exists."""

    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(OrgOwnedModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "email"], name="accounts_invitation_org_email"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="accounts_invitation_role_known"
            ),
            # One open invitation per address and org: re-inviting revokes the previous one.
            models.UniqueConstraint(
                fields=["organization", "email"],
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="accounts_invitation_one_open_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"Invitation {self.pk} to {self.organization_id}"

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and not self.is_expired

    @property
    def status(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "pending"
