"""Alerts: rules from `[alerts]`, once-per-window persistence, desktop/webhook/e-mail channels."""
