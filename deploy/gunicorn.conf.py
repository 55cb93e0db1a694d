"""gunicorn settings for the eBR/QMS web process: `gunicorn -c deploy/gunicorn.conf.py ebr.wsgi`.

Every value can be changed from the environment, and a malformed value stops start-up with a
message naming the variable, like the Django settings do (ebr/config.py).

| variable                     | default                       |
|------------------------------|-------------------------------|
| GUNICORN_BIND                | 127.0.0.1:8000 (comma list; `unix:/path` allowed) |
| GUNICORN_WORKERS             | 2 x usable CPUs + 1, at most 9 |
| GUNICORN_THREADS             | 4 per worker                  |
| GUNICORN_TIMEOUT             | 60 s (worker heartbeat)       |
| GUNICORN_GRACEFUL_TIMEOUT    | 30 s                          |
| GUNICORN_KEEPALIVE           | 5 s                           |
| GUNICORN_MAX_REQUESTS        | 1000 (0 disables recycling)   |
| GUNICORN_MAX_REQUESTS_JITTER | 100                           |
| FORWARDED_ALLOW_IPS          | 127.0.0.1,::1 (the nginx host; `*` only when nothing but nginx can reach gunicorn) |
| GUNICORN_CONTROL_SOCKET      | unset: no control socket      |
| LOG_LEVEL                    | INFO (shared with Django)     |
"""

from __future__ import annotations

import gc
import os
import sys

MAX_DEFAULT_WORKERS = 9


def _fail(message: str) -> None:
    sys.stderr.write(f"gunicorn.conf.py: {message}\n")
    raise SystemExit(2)


def _env_int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        _fail(f"{name}={text!r} is not a whole number")
    if not minimum <= value <= maximum:
        _fail(f"{name}={value} must be between {minimum} and {maximum}")
    return value


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours taskset / cpuset limits
    except AttributeError:
        return os.cpu_count() or 1


# --- sockets -------------------------------------------------------------------------------
bind = [part.strip() for part in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",") if part.strip()]
backlog = 512

# --- workers ---------------------------------------------------------------------------------
# gthread: a few processes, each with a small thread pool. Requests are short (PDF rendering and
# NLP review run in Celery), so threads cover waiting on PostgreSQL without many processes.
worker_class = "gthread"
workers = _env_int("GUNICORN_WORKERS", min(2 * _usable_cpus() + 1, MAX_DEFAULT_WORKERS), minimum=1, maximum=64)
threads = _env_int("GUNICORN_THREADS", 4, minimum=1, maximum=32)

# For gthread this is the worker heartbeat, not a per-request limit: a worker silent this long
# is killed and replaced. nginx's proxy_read_timeout bounds a single request.
timeout = _env_int("GUNICORN_TIMEOUT", 60, minimum=10, maximum=600)
# On SIGTERM/HUP, running requests get this long to finish (a signature must not be cut off).
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=5, maximum=300)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5, minimum=1, maximum=300)

# Recycle workers now and then, staggered so that they never all restart together.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1000, minimum=0, maximum=1_000_000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 100, minimum=0, maximum=100_000)

# The heartbeat file is touched constantly; keep it in memory when /dev/shm is usable.
# gunicorn creates it with mkstemp (random name, mode 0600), so a shared directory is fine.
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None

# Request limits: the defaults, written down. Body size is limited by nginx (client_max_body_size).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# --- behind nginx ------------------------------------------------------------------------------
# Only the proxy may say the request came over HTTPS. Django trusts X-Forwarded-Proto through
# SECURE_PROXY_SSL_HEADER in any case, so the real boundary is that nothing but nginx can reach
# this port. Only X-Forwarded-Proto is honoured: gunicorn's other default scheme headers
# (X-Forwarded-Ssl, X-Forwarded-Protocol) would make a request fail when a client sends them.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# --- control socket (gunicorn >= 25.1; older versions ignore these names) -------------------------
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
if _control_socket:
    control_socket = _control_socket
    control_socket_mode = 0o600
else:
    control_socket_disable = True

# --- logging ---------------------------------------------------------------------------------------
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").strip().lower() or "info"
loglevel = {"warn": "warning", "fatal": "critical"}.get(loglevel, loglevel)  # spellings logging accepts
if loglevel not in {"debug", "info", "warning", "error", "critical"}:
    _fail(f"LOG_LEVEL={loglevel!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
# No query string and no referrer (whose URL carries the previous page's query string): query
# strings may carry batch, patient or record identifiers, which do not belong in access logs.
# %(U)s is the path only. The client address is the one nginx saw (X-Real-IP), then the peer.
access_log_format = '%({x-real-ip}i)s %(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'

proc_name = "ebr-web"


# --- after a worker has loaded the application ------------------------------------------------------
def post_worker_init(worker: object) -> None:
    """Load the URL configuration now, then move everything loaded so far out of the collector's sight.

    Django imports the URL configuration (and with it every view module) on the first request;
    done here, no user waits for it. gc.freeze() then puts the tens of thousands of objects that
    start-up created, and that live as long as the worker, in the permanent generation: every
    full collection during requests would otherwise walk all of them again (measured: about 5 %
    of a worker's CPU time under instrument posts, issue #6). Objects created later are collected
    as before.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (the import is the point)
    gc.freeze()

