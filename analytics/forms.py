"""Forms validate shapes only; who may do what is the services' to say."""

from __future__ import annotations

from django import forms


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        strip=True,
        label="Name",
        label_suffix="",
        help_text="Say what uses it: 'menu bar app', 'finance export'.",
    )
