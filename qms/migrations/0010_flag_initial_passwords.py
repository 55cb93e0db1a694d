"""Accounts an administrator created before 0008 still hold the password that administrator chose:
flag them to change it before anything else, as 0008 does for every new account (21 CFR 11.300(b),
11.100(a)). An account is flagged when its creation was recorded with a person as actor (not the
system: the demo seed, a bootstrap command) and its holder never recorded a PASSWORD_CHANGED. Each
flag is recorded in the audit trail as USER_CHANGED by system:migration, with the rule as reason.
"""

from django.db import migrations
from django.utils import timezone

REASON = ("An administrator created this account before first-login password changes were enforced and its "
          "holder never changed the password the administrator set (21 CFR 11.300(b)).")


def initial_passwords_flag(apps, schema_editor):  # type: ignore[no-untyped-def]
    User = apps.get_model("qms", "User")
    AuditEvent = apps.get_model("qms", "AuditEvent")
    created_by_a_person = AuditEvent.objects.filter(event_type="USER_CREATED", target_type="qms.user",
                                                    actor__isnull=False).values_list("target_id", flat=True)
    changed = AuditEvent.objects.filter(event_type="PASSWORD_CHANGED").values_list("actor_id", flat=True)
    # Deactivated accounts too: reactivated later, they would log in with the administrator's password.
    accounts = (User.objects.filter(must_change_password=False,
                                    pk__in=[int(pk) for pk in created_by_a_person if pk.isdigit()])
                .exclude(pk__in=[pk for pk in changed if pk is not None]).exclude(groups__name="instrument"))
    now = timezone.now()
    for account in accounts:
        account.must_change_password = True
        account.save(update_fields=["must_change_password"])
        AuditEvent.objects.create(
            occurred_at=now, actor_id=None, actor_label="system:migration", event_type="USER_CHANGED",
            target_type="qms.user", target_id=str(account.pk), target_label=f"{account.full_name} ({account.username})"[:200], reason=REASON,
            data={"changes": [{"field": "must_change_password", "old": False, "new": True}]})


class Migration(migrations.Migration):

    dependencies = [
        ("qms", "0009_training_trainer_confirmation"),
    ]

    operations = [
        migrations.RunPython(initial_passwords_flag, migrations.RunPython.noop),
    ]
