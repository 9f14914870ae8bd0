"""Organizations already on a paid plan before payments were recorded keep it: from now on the
plan is derived from payments and grants, so each gets a grant saying where its plan came
from (an operator can revoke it in the admin)."""

from django.db import migrations

REASON = "On this plan before billing recorded payments (kept by migration 0002)."


def plans_keep(apps, schema_editor):
    Organization = apps.get_model("accounts", "Organization")
    PlanGrant = apps.get_model("billing", "PlanGrant")
    PlanGrant.all_orgs.bulk_create(
        PlanGrant(organization_id=organization_id, plan=plan, reason=REASON)
        for organization_id, plan in Organization.objects.exclude(plan="free").values_list(
            "pk", "plan"
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_payments_events_grants"),
    ]

    operations = [
        migrations.RunPython(plans_keep, migrations.RunPython.noop),
    ]
