"""nlp_review/pipeline/ imports no Django and loads nothing at import (STYLE.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
import nlp_review.pipeline as pipeline
assert "spacy" not in sys.modules, "spaCy loaded at import"
review = pipeline.review_text("label not checked")
assert review.flags[0].rule == "identity.check", review
assert not any(name == "django" or name.startswith("django.") for name in sys.modules), "Django imported"
print("pure")
"""


def test_pipeline_runs_without_django() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pure"
