"""Forms validate shapes only; rules (roles, last owner) live in services."""

import zoneinfo

from django import forms

from accounts.models import Role
from accounts.services import ORGANIZATION_NAME_MAX_LENGTH


class _Form(forms.Form):
    """Labels without Django's trailing colon, to match the allauth pages' look."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class OrganizationForm(_Form):
    name = forms.CharField(
        max_length=ORGANIZATION_NAME_MAX_LENGTH,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "Acme Robotics", "autofocus": True}),
    )


def _time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


class OrganizationTimeZoneForm(_Form):
    time_zone = forms.ChoiceField(
        label="Time zone",
        choices=_time_zone_choices,
        help_text="Days, weeks and months of the dashboard and the API start at midnight here.",
    )


class OrganizationSwitchForm(_Form):
    organization = forms.SlugField(max_length=60)


class InvitationForm(_Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autofocus": True}))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, can_grant_owner: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_grant_owner:
            self.fields["role"].choices = [(Role.ADMIN, "Admin"), (Role.MEMBER, "Member")]


class RoleChangeForm(_Form):
    role = forms.ChoiceField(choices=Role.choices)
