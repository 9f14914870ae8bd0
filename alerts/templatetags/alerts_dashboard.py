"""The fired alerts the team dashboard shows beside its anomalies (analytics knows nothing of
alerts: its overview includes `alerts/_dashboard_fired_alerts.html` when this app is installed,
and that template asks this tag)."""

from django import template

from alerts.selectors import alert_recent_list

register = template.Library()

# The dashboard shows the latest few; the delivery log page has them all.
DASHBOARD_ALERTS_LIMIT = 5


@register.inclusion_tag("alerts/_dashboard_fired_alerts_list.html")
def dashboard_fired_alerts(organization):
    return {
        "alerts": alert_recent_list(organization=organization, limit=DASHBOARD_ALERTS_LIMIT),
        "organization": organization,
    }
