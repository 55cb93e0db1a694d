"""Every URL pattern of the project, classified: who may use it, how to address it, which methods.

The authorisation, IDOR and CSRF tests are generated from this table and from the role matrix
(qms/roles.py). `test_every_url_pattern_is_classified` walks `django.urls.get_resolver()` and
fails as soon as a pattern is added (or removed) without being classified here.

Kinds:
- page:   HTML behind the login (LoginRequiredMiddleware); anonymous → 302 to /login/.
- public: no login needed (login form, logout, health check, the admin's own login form).
- api:    DRF views; refusals are 401/403 JSON with an `errors` list.
- admin:  the Django admin; only `is_staff` accounts, and no role makes an account staff.

For transition endpoints the view itself checks one capability (`capability`), and for batch
and master-record transitions the service checks the action's own capability (`acts`): the
view lets every reader in, the service refuses (tests/security/test_authorization.py proves
both layers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, reverse

from qms.roles import MATRIX, Capability, Role
from tests.security.world import World

C = Capability
Kwargs = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    key: str  # URL name (namespace:name), or the route text of an unnamed pattern
    kind: str
    capability: Capability | None  # None: any logged-in person (or anyone, for public)
    methods: tuple[str, ...] = ("GET",)
    kwargs: Kwargs = lambda world: {}
    label: str = ""
    instrument: bool = False  # the instrument token may use it (API only)
    refused_status: int = 403
    ok: tuple[int, ...] = (200,)  # allowed GET answers
    acts: frozenset[Role] | None = None  # roles the service lets do the action (view lets readers in)
    raw_path: Callable[[World], str] | None = None
    objects: tuple[str, ...] = ()  # kwargs that address stored objects (IDOR tests)
    gate: Capability | None = None  # checked before the object is loaded, when `capability` is checked after

    @property
    def id(self) -> str:
        return f"{self.key}[{self.label}]" if self.label else self.key

    def path(self, world: World) -> str:
        if self.raw_path is not None:
            return self.raw_path(world)
        return reverse(self.key, kwargs=self.kwargs(world))

    def allows(self, role: Role | None) -> bool:
        """Does the view let a logged-in person with `role` (None: no role) in?"""
        if self.capability is None:
            return True
        return role is not None and role in MATRIX[self.capability]


def roles(*capabilities: Capability) -> frozenset[Role]:
    return frozenset(role for capability in capabilities for role in MATRIX[capability])


# --- address builders --------------------------------------------------------------------------

def batch(world: World) -> dict[str, Any]:
    return {"number": world.running.number}


def step(world: World) -> dict[str, Any]:
    return {"number": world.running.number, "step_pk": world.step.pk}


def master_version_for(world: World, action: str) -> Any:
    """The version in the state the action starts from (a wrong state is another test's subject)."""
    if action in {"review", "approve", "return"}:
        return world.in_review
    return world.approved if action == "effective" else world.draft


def master_target(world: World, action: str) -> dict[str, Any]:
    version = master_version_for(world, action)
    return {"code": version.master_record.code, "version": version.version}


def training_record_pk(world: World) -> int:
    """The operator's training on the world's version (already confirmed: an action on it is refused)."""
    from qms.models import TrainingRecord

    return TrainingRecord.objects.filter(user=world.person("operator")).values_list("pk", flat=True)[0]


def _with(builder: Kwargs, **extra: Any) -> Kwargs:
    return lambda world: {**builder(world), **extra}


# --- the table ---------------------------------------------------------------------------------

PAGES: list[Case] = [
    Case("home", "page", None),
    Case("healthz", "public", None, ok=(200, 503)),
    Case("login", "public", None, ("GET", "POST"), ok=(200, 302)),
    Case("logout", "public", None, ("GET", "POST"), ok=(302,)),
    Case("user_list", "page", C.USER_MANAGE, ("GET", "POST")),
    Case("user_roles", "page", C.USER_MANAGE, ("GET", "POST"), kwargs=lambda w: {"pk": w.person("operator").pk},
         objects=("pk",)),
    Case("user_password_reset", "page", C.USER_MANAGE, ("GET", "POST"),
         kwargs=lambda w: {"pk": w.person("operator").pk}, objects=("pk",)),
    Case("password_change", "page", None, ("GET", "POST")),
    Case("audit_trail", "page", C.AUDIT_TRAIL_VIEW),
    Case("audit_trail_csv", "page", C.AUDIT_TRAIL_EXPORT),
    Case("record_history", "page", C.AUDIT_TRAIL_VIEW,
         kwargs=lambda w: {"target_type": "ebr.batch", "target_id": str(w.running.pk)}),
    Case("batch_list", "page", C.BATCH_VIEW),
    Case("batch_create", "page", C.BATCH_MANAGE, ("GET", "POST")),
    Case("batch_detail", "page", C.BATCH_VIEW, kwargs=batch, objects=("number",)),
    Case("custody_add", "page", C.BATCH_VIEW, ("POST",), kwargs=batch, objects=("number",),
         acts=roles(C.BATCH_MANAGE, C.BATCH_EXECUTE)),
    Case("batch_audit_trail", "page", C.AUDIT_TRAIL_VIEW, kwargs=batch, objects=("number",)),
    Case("process_data", "page", C.BATCH_VIEW, kwargs=lambda w: {"number": w.process_batch.number},
         objects=("number",)),
    Case("batch_alarms", "page", C.BATCH_VIEW, kwargs=lambda w: {"number": w.process_batch.number},
         objects=("number",)),
    Case("alarm_acknowledge", "page", C.BATCH_MANAGE, ("POST",),
         kwargs=lambda w: {"number": w.process_batch.number, "pk": w.alarm.pk}, objects=("number", "pk")),
    # People who may not export get an empty answer instead of a refusal: the batch page loads it for all.
    Case("batch_pdf_panel", "page", C.AUDIT_TRAIL_EXPORT, kwargs=batch, refused_status=204, objects=("number",)),
    Case("batch_pdf_request", "page", C.AUDIT_TRAIL_EXPORT, ("POST",), kwargs=batch, objects=("number",)),
    Case("batch_pdf_download", "page", C.AUDIT_TRAIL_EXPORT,
         kwargs=lambda w: {"number": w.running.number, "pk": w.export.pk}, ok=(404,), objects=("number", "pk")),
    Case("execution_list", "page", C.BATCH_EXECUTE),
    Case("step_page", "page", C.BATCH_EXECUTE, kwargs=batch, objects=("number",)),
    Case("entry_submit", "page", C.BATCH_EXECUTE, ("POST",),
         kwargs=lambda w: {**step(w), "parameter_pk": w.parameter_pk}, objects=("number", "step_pk", "parameter_pk")),
    Case("step_perform", "page", C.BATCH_EXECUTE, ("POST",), kwargs=step, objects=("number", "step_pk")),
    Case("step_verify", "page", C.BATCH_VERIFY, ("POST",), kwargs=step, objects=("number", "step_pk")),
    # GET lists; a POST creates a master record (the view checks MASTER_RECORD_AUTHOR itself).
    Case("master_record_list", "page", C.BATCH_VIEW, label="GET"),
    Case("master_record_list", "page", C.MASTER_RECORD_AUTHOR, ("POST",), label="POST"),
    Case("instruction_image", "page", C.BATCH_VIEW, kwargs=lambda w: {"pk": w.image.pk}, objects=("pk",)),
    Case("master_version", "page", C.BATCH_VIEW,
         kwargs=lambda w: {"code": w.version.master_record.code, "version": w.version.version},
         objects=("code", "version")),
    Case("master_diff", "page", C.BATCH_VIEW,
         kwargs=lambda w: {"code": w.version.master_record.code, "old": w.version.version, "new": w.version.version},
         objects=("code", "old", "new")),
    Case("qa_dashboard", "page", C.QA_DASHBOARD),
    Case("notifications", "page", None),
    Case("notifications_read_all", "page", None, ("POST",)),
    Case("notification_read", "page", None, ("POST",), kwargs=lambda w: {"pk": w.notifications["operator"].pk}),
    Case("deviation_list", "page", C.DEVIATION_VIEW),
    Case("deviation_new", "page", C.DEVIATION_OPEN, ("GET", "POST")),
    Case("deviation_detail", "page", C.DEVIATION_VIEW, kwargs=lambda w: {"number": w.deviation.number},
         objects=("number",)),
    Case("capa_list", "page", C.CAPA_VIEW),
    Case("capa_new", "page", C.CAPA_MANAGE, ("GET", "POST")),
    Case("capa_detail", "page", C.CAPA_VIEW, kwargs=lambda w: {"number": w.capa.number}, objects=("number",)),
    Case("change_control_list", "page", C.CHANGE_CONTROL_VIEW),
    Case("change_control_new", "page", C.CHANGE_CONTROL_AUTHOR, ("GET", "POST")),
    Case("change_control_detail", "page", C.CHANGE_CONTROL_VIEW, kwargs=lambda w: {"number": w.change.number},
         objects=("number",)),
    Case("training_list", "page", C.TRAINING_VIEW),
    Case("training_new", "page", C.TRAINING_RECORD, ("GET", "POST")),
    Case("training_matrix", "page", C.TRAINING_VIEW),
    Case("training_expiring", "page", C.TRAINING_VIEW),
    # Every reader reaches the view; the service lets only the trainer the record names decide.
    *[Case("training_action", "page", C.TRAINING_VIEW, ("POST",), label=action,
           kwargs=lambda w, a=action: {"pk": training_record_pk(w), "action": a}, objects=("pk",))
      for action in ("confirm", "decline")],
    Case("review_queue", "page", C.REVIEW_QUEUE),
    Case("review_monitoring", "page", C.REVIEW_QUEUE),
    Case("record_search", "page", C.RECORD_SEARCH),
    Case("batch_review", "page", C.REVIEW_QUEUE, kwargs=lambda w: {"number": w.completed.number},
         objects=("number",)),
    Case("review_rerun", "page", C.REVIEW_QUEUE, ("POST",), kwargs=lambda w: {"number": w.completed.number},
         objects=("number",)),
    Case("flag_disposition", "page", C.REVIEW_QUEUE, ("POST",),
         kwargs=lambda w: {"number": w.completed.number, "pk": w.flag.pk}, objects=("number", "pk")),
    # API: humans by session, instruments by token.
    Case("api_readings", "api", C.READINGS_POST, ("POST",), instrument=True),
    Case("api_batch_readings", "api", C.BATCH_VIEW, kwargs=lambda w: {"batch": w.process_batch.number},
         instrument=True, objects=("batch",)),
    # The contract is published to anyone (specs/instrument-api.md): it describes the API and holds no data.
    Case("schema", "public", None),
    Case("api_docs", "api", None),
]

# Transitions addressed by action name. Batch and master-record actions: the view admits every
# reader and the service checks the action's capability (`acts`); QMS records: the view checks
# the action's capability from the record's step table before reading the form.
BATCH_ACTIONS: dict[str, frozenset[Role]] = {
    "start": roles(C.BATCH_MANAGE), "hold": roles(C.BATCH_MANAGE), "resume": roles(C.BATCH_MANAGE),
    "abort": roles(C.BATCH_MANAGE), "review": roles(C.REVIEW_QUEUE), "audit_review": roles(C.AUDIT_TRAIL_REVIEW),
    "release": roles(C.BATCH_RELEASE), "reject": roles(C.BATCH_RELEASE),
}
MASTER_ACTIONS: dict[str, frozenset[Role]] = {
    "stage": roles(C.MASTER_RECORD_AUTHOR), "step": roles(C.MASTER_RECORD_AUTHOR),
    "parameter": roles(C.MASTER_RECORD_AUTHOR), "submit": roles(C.MASTER_RECORD_AUTHOR),
    "new_version": roles(C.MASTER_RECORD_AUTHOR), "review": roles(C.MASTER_RECORD_REVIEW),
    "return": roles(C.MASTER_RECORD_REVIEW, C.MASTER_RECORD_APPROVE), "approve": roles(C.MASTER_RECORD_APPROVE),
    "effective": roles(C.MASTER_RECORD_APPROVE), "material": roles(C.MASTER_RECORD_AUTHOR),
    "instructions": roles(C.MASTER_RECORD_AUTHOR), "image": roles(C.MASTER_RECORD_AUTHOR),
    "withdraw": roles(C.MASTER_RECORD_AUTHOR),
}
DEVIATION_ACTIONS: dict[str, Capability] = {
    "triage": C.DEVIATION_TRIAGE, "investigate": C.DEVIATION_INVESTIGATE, "capa_decide": C.DEVIATION_INVESTIGATE,
    "subject_add": C.DEVIATION_INVESTIGATE, "submit": C.DEVIATION_INVESTIGATE, "return": C.DEVIATION_CLOSE,
    "close": C.DEVIATION_CLOSE, "extend": C.DEVIATION_EXTEND, "cancel": C.DEVIATION_CANCEL,
}
CAPA_ACTIONS: dict[str, Capability] = {
    "deviation_link": C.CAPA_MANAGE, "action_add": C.CAPA_MANAGE, "effectiveness_plan": C.CAPA_MANAGE,
    "effectiveness_record": C.CAPA_MANAGE, "close": C.CAPA_CLOSE, "cancel": C.CAPA_CLOSE,
}
CAPA_ITEM_ACTIONS: dict[str, Capability] = {"action_complete": C.CAPA_ACTION_COMPLETE, "action_cancel": C.CAPA_MANAGE}
CHANGE_ACTIONS: dict[str, Capability] = {
    "assess": C.CHANGE_CONTROL_AUTHOR, "approve": C.CHANGE_CONTROL_APPROVE, "reject": C.CHANGE_CONTROL_APPROVE,
    "task_add": C.CHANGE_CONTROL_AUTHOR, "implement": C.CHANGE_CONTROL_AUTHOR, "close": C.CHANGE_CONTROL_APPROVE,
    "cancel": C.CHANGE_CONTROL_APPROVE,
}
CHANGE_ITEM_ACTIONS: dict[str, Capability] = {"task_complete": C.CHANGE_CONTROL_IMPLEMENT,
                                              "task_cancel": C.CHANGE_CONTROL_AUTHOR}
USER_ACTIONS = ("unlock", "deactivate", "reactivate")


def _action_cases() -> Iterator[Case]:
    for action, acts in BATCH_ACTIONS.items():
        yield Case("batch_action", "page", C.BATCH_VIEW, ("POST",), _with(batch, action=action), action, acts=acts,
                   objects=("number",))
    for action, acts in MASTER_ACTIONS.items():
        yield Case("master_version_action", "page", C.BATCH_VIEW, ("POST",),
                   lambda w, a=action: {**master_target(w, a), "action": a}, action, acts=acts,
                   objects=("code", "version"))
    for action, capability in DEVIATION_ACTIONS.items():
        yield Case("deviation_action", "page", capability, ("POST",),
                   lambda w, a=action: {"number": w.deviation.number, "action": a}, action, objects=("number",),
                   gate=C.DEVIATION_VIEW)
    for action, capability in CAPA_ACTIONS.items():
        yield Case("capa_action", "page", capability, ("POST",),
                   lambda w, a=action: {"number": w.capa.number, "action": a}, action, objects=("number",),
                   gate=C.CAPA_VIEW)
    for action, capability in CAPA_ITEM_ACTIONS.items():
        yield Case("capa_item_action", "page", capability, ("POST",),
                   lambda w, a=action: {"number": w.capa.number, "action": a, "item": w.capa_action.pk}, action,
                   objects=("number", "item"), gate=C.CAPA_VIEW)
    for action, capability in CHANGE_ACTIONS.items():
        yield Case("change_control_action", "page", capability, ("POST",),
                   lambda w, a=action: {"number": w.change.number, "action": a}, action, objects=("number",),
                   gate=C.CHANGE_CONTROL_VIEW)
    for action, capability in CHANGE_ITEM_ACTIONS.items():
        yield Case("change_control_item_action", "page", capability, ("POST",),
                   lambda w, a=action: {"number": w.change.number, "action": a, "item": w.change_task.pk}, action,
                   objects=("number", "item"), gate=C.CHANGE_CONTROL_VIEW)
    for action in USER_ACTIONS:
        yield Case("user_action", "page", C.USER_MANAGE, ("POST",),
                   lambda w, a=action: {"pk": w.person("operator").pk, "action": a}, action, objects=("pk",))


# The admin: the models registered there are listed explicitly, so registering another one (or
# adding any other admin URL) shows up as an unclassified pattern.
ADMIN_MODELS = ("auth.group", "axes.accessattempt", "axes.accesslog", "axes.accessfailurelog")
ADMIN_SITE = {"admin:index": {}, "admin:logout": {}, "admin:password_change": {}, "admin:password_change_done": {},
              "admin:autocomplete": {}, "admin:jsi18n": {},
              "admin:view_on_site": {"content_type_id": "1", "object_id": "1"},
              "admin:app_list": {"app_label": "auth"}}


def _admin_cases() -> Iterator[Case]:
    yield Case("admin:login", "public", None, ("GET", "POST"), ok=(200,))
    changing = {"admin:logout", "admin:password_change"}  # POST only where a POST changes something
    for name, kwargs in ADMIN_SITE.items():
        methods = ("GET", "POST") if name in changing else ("GET",)
        yield Case(name, "admin", None, methods, lambda w, k=kwargs: k)
    for model in ADMIN_MODELS:
        app, name = model.split(".")
        for suffix, kwargs in (("changelist", {}), ("add", {}), ("history", {"object_id": "1"}),
                               ("delete", {"object_id": "1"}), ("change", {"object_id": "1"})):
            methods = ("GET",) if suffix == "history" else ("GET", "POST")  # changelist: bulk actions
            yield Case(f"admin:{app}_{name}_{suffix}", "admin", None, methods, lambda w, k=kwargs: k)
        yield Case(f"admin/{app}/{name}/<path:object_id>/", "admin", None, ("GET",),
                   raw_path=lambda w, a=app, n=name: f"/admin/{a}/{n}/1/")
    yield Case("admin/(?P<url>.*)$", "admin", None, ("GET", "POST"), raw_path=lambda w: "/admin/no-such-page/")


CASES: list[Case] = [*PAGES, *_action_cases(), *_admin_cases()]


def url_keys() -> set[str]:
    """Every URL pattern of the project: its full name, or its route text when it has none."""

    def walk(resolver: URLResolver, prefix: str, namespace: str | None) -> Iterator[str]:
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
                yield from walk(pattern, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                if pattern.name:
                    yield f"{namespace}:{pattern.name}" if namespace else pattern.name
                else:
                    yield prefix + str(pattern.pattern)

    return set(walk(get_resolver(), "", None))


@dataclass(frozen=True)
class Principal:
    """Who asks: a person of one role, a person without a role, anonymous, or an instrument."""

    name: str
    role: Role | None = None
    human: bool = True
    logged_in: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


HUMANS = [Principal(role.value, role) for role in Role if role is not Role.INSTRUMENT]
PRINCIPALS = [*HUMANS, Principal("nobody"), Principal("anonymous", logged_in=False),
              Principal("instrument", Role.INSTRUMENT, human=False, logged_in=False)]
