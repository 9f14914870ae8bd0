from __future__ import annotations

from datetime import timedelta

import factory
from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import Invitation, Membership, Organization, Role, User
from clawtrace_site.tokens import generate_secret, hash_secret


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def verified(user: User, create: bool, extracted: bool | None, **kwargs) -> None:
        """A verified primary EmailAddress, as allauth leaves it after confirmation; pass
        `verified=False` for a user who has not confirmed yet."""
        if create:
            EmailAddress.objects.create(
                user=user, email=user.email, primary=True, verified=extracted is not False
            )


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"organization-{n}")
    plan = "free"


class OrgOwnedFactory(factory.django.DjangoModelFactory):
    """Factories write through `all_orgs`: they build fixtures, not requests."""

    class Meta:
        abstract = True

    @classmethod
    def _get_manager(cls, model_class):
        return model_class.all_orgs

    organization = factory.SubFactory(OrganizationFactory)


class MembershipFactory(OrgOwnedFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class InvitationFactory(OrgOwnedFactory):
    class Meta:
        model = Invitation

    email = factory.Sequence(lambda n: f"invitee{n}@example.com")
    role = Role.MEMBER
    token_hash = factory.LazyFunction(lambda: hash_secret(generate_secret("cti_")))
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))
