from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from accounts.models import User
from accounts.services import user_signup_finalize

SESSION_KEY_PENDING_INVITATION = "pending_invitation_token"


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request: HttpRequest, user: User, form, commit: bool = True) -> User:
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            # allauth's documented extension point for "a user was just created"; doing the
            # work here rather than in a user_signed_up receiver keeps it in the same call
            # chain as the signup (no signal indirection).
            user_signup_finalize(user=user)
        return user
