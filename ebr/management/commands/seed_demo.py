"""Idempotent demo facility: users per role (passwords printed: demo only), CAR-T process, batches."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from qms.audit import SystemActor
from qms.models import User
from qms.roles import Role
from qms.services.users import user_create

SEEDER = SystemActor("system:seed_demo")

# username, printed name, job title, roles, demo password
DEMO_USERS: list[tuple[str, str, str, list[Role], str]] = [
    ("operator", "Olivia Martin", "Cleanroom operator", [Role.OPERATOR], "atmp-demo-key-01"),
    ("operator2", "Oscar Dubois", "Cleanroom operator", [Role.OPERATOR], "atmp-demo-key-02"),
    ("supervisor", "Sofia Bernard", "Production supervisor", [Role.SUPERVISOR], "atmp-demo-key-03"),
    ("qa_reviewer", "Quentin Robert", "QA specialist", [Role.QA_REVIEWER], "atmp-demo-key-04"),
    ("qa_approver", "Claire Petit", "Qualified Person", [Role.QA_APPROVER], "atmp-demo-key-05"),
    ("auditor", "Arthur Moreau", "Inspector (read-only)", [Role.AUDITOR], "atmp-demo-key-06"),
    ("admin", "Alice Laurent", "System administrator", [Role.ADMIN], "atmp-demo-key-07"),
]


class Command(BaseCommand):
    help = "Create the demo facility (idempotent): users per role, and later issues' demo data."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        from ebr.pdf.signing import demo_pki_ensure
        from ebr.seed import facility_seed

        for username, full_name, title, roles, password in DEMO_USERS:
            self._user(username, full_name, title, roles, password)
        people = {username: (User.objects.get(username=username), password)
                  for username, _, _, _, password in DEMO_USERS}
        facility = facility_seed(people)
        demo_pki_ensure()  # the demo CA and PDF signing certificate under .local/pki, kept while valid
        for batch in facility["batches"]:
            self.stdout.write(f"batch {batch.number} {batch.status}")
        for equipment in facility["equipment"]:
            self.stdout.write(f"equipment {equipment.code} {equipment.equipment_type}")

    @transaction.atomic
    def _user(self, username: str, full_name: str, title: str, roles: list[Role], password: str) -> None:
        existing = User.objects.filter(username=username).first()
        if existing is None:
            user_create(actor=SEEDER, username=username, full_name=full_name, password=password,
                        roles=roles, job_title=title, reason="Demo facility (seed_demo)")
            state = "created"
        else:
            state = "exists" if existing.check_password(password) else "exists, password changed since seeding"
        roles_text = ",".join(role.value for role in roles)
        shown = password if state != "exists, password changed since seeding" else "(changed)"
        self.stdout.write(f"user {username} {roles_text} password {shown} ({state})")
