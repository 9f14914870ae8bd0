"""`{% organization_panel panel %}`: renders a panel of `accounts.panels` in the page's own
context (so it sees the organization, the membership and the request like the page does, and
no context processor runs again), with the panel's context on top."""

from django import template
from django.utils.safestring import SafeString

from accounts.panels import PanelContent

register = template.Library()


@register.simple_tag(takes_context=True)
def organization_panel(context: template.Context, panel: PanelContent) -> SafeString:
    panel_template = context.template.engine.get_template(panel.template_name)
    with context.push(**panel.context):
        return panel_template.render(context)
