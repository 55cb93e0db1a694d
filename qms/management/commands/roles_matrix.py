"""Print the role × capability matrix of qms/roles.py as a Markdown table (the README embeds it)."""

from django.core.management.base import BaseCommand

from qms.roles import MATRIX, Role


def matrix_markdown() -> str:
    roles = list(Role)
    lines = ["| capability | " + " | ".join(role.value for role in roles) + " |",
             "|---|" + "---|" * len(roles)]
    for capability, allowed in MATRIX.items():
        cells = " | ".join("✓" if role in allowed else "" for role in roles)
        lines.append(f"| `{capability.value}` | {cells} |")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Print the permission matrix (roles × capabilities) as Markdown."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        self.stdout.write(matrix_markdown())
