from __future__ import annotations

from django import forms
from django.utils import timezone

from devices.selectors import user_code_normalize


class UserCodeForm(forms.Form):
    user_code = forms.CharField(
        label="Code shown by the agent",
        max_length=20,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "placeholder": "WDJB-MJHT",
            }
        ),
    )

    def clean_user_code(self) -> str:
        code = user_code_normalize(self.cleaned_data["user_code"])
        if code is None:
            raise forms.ValidationError("A code is eight letters, like WDJB-MJHT.")
        return code


class DeviceDecisionForm(UserCodeForm):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("deny", "Deny")])
    organization = forms.CharField(max_length=60, required=False)


class DeviceRenameForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)


class EnrollmentKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100, strip=True, help_text="Say where it is used: 'CI runners'."
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires (optional, UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("Choose a moment in the future.")
        return value
