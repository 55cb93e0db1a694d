"""deploy/gunicorn.conf.py: what a web worker does once it has loaded the application."""

from __future__ import annotations

import gc
import runpy
from pathlib import Path

from django.urls import get_resolver

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"


def test_a_worker_loads_the_url_configuration_and_freezes_what_start_up_made() -> None:
    """No user waits for the URL configuration's import on a worker's first request, and the objects
    start-up made are kept out of every later garbage collection (issue #6: CPU per instrument post)."""
    config = runpy.run_path(str(CONFIG))
    resolver = get_resolver()
    resolver.__dict__.pop("url_patterns", None)
    resolver.__dict__.pop("urlconf_module", None)
    gc.unfreeze()
    try:
        config["post_worker_init"](object())

        assert "url_patterns" in resolver.__dict__  # loaded, not waiting for the first request
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
