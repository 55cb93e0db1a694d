"""The permission matrix in the README is the one the code enforces."""

from pathlib import Path

from qms.management.commands.roles_matrix import matrix_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_shows_the_enforced_permission_matrix():
    text = README.read_text()
    start = text.index("<!-- roles-matrix:start -->") + len("<!-- roles-matrix:start -->")
    end = text.index("<!-- roles-matrix:end -->")

    assert text[start:end].strip() == matrix_markdown(), "run: python manage.py roles_matrix, paste into README"
