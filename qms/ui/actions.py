"""One mechanism for the action buttons of a record page: a form, a service call, a message.

A POST to /<record>/<number>/<action>/ binds the action's form, calls its service, and either
redirects back to the record (success) or shows the record again with that form, its errors
and what was typed (HTTP 422). The role check comes from the record's step table in states.py.

Actions marked `versioned` carry the version of the record the page was rendered from, in a
hidden field `seen` the service checks under the record's lock (qms/staleness.py, 21 CFR 11.50
and 11.70: no signature or save over content the person never saw).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect

from qms.roles import can
from qms.staleness import CHANGED_SINCE
from qms.states import Step
from qms.ui.common import run_service

FormFactory = Callable[[HttpRequest, Any, Any, Any], forms.Form]  # (request, record, item, data)
ServiceCall = Callable[[HttpRequest, Any, Any, forms.Form, dict[str, Any]], Any]  # (request, record, item, form, data)


@dataclass(frozen=True)
class Action:
    step: str
    form: FormFactory
    call: ServiceCall
    done: str  # message after success; {record} and {item} are filled in
    per_item: bool = False
    versioned: bool = False  # its form carries `seen`, its service refuses a stale one


def versioned(actions: Mapping[str, Action]) -> dict[str, Action]:
    """The record's actions, every one carrying the version of the record its form was read from."""
    return {name: replace(spec, versioned=True) for name, spec in actions.items()}


SEEN_MISSING = "This form does not say which version of the record you read: reload the page and try again."


def seen_field() -> forms.CharField:
    """The hidden field a form carries the version of the record its page showed in (qms.staleness)."""
    return forms.CharField(widget=forms.HiddenInput, max_length=200, error_messages={"required": SEEN_MISSING})


def form_key(action: str, item: Any = None) -> str:
    return f"{action}_{item.pk}" if item is not None else action


def action_form(actions: Mapping[str, Action], action: str, request: HttpRequest, record: Any, item: Any = None,
                data: Any = None, seen: str | None = None) -> forms.Form:
    """The action's form, its fields prefixed so that many forms can share one page; a versioned
    action's form holds `seen`, the version of the record the page shows (qms.staleness)."""
    form = actions[action].form(request, record, item, data)
    form.prefix = form_key(action, item)
    if actions[action].versioned:
        form.fields["seen"] = seen_field()
        form.initial["seen"] = seen
    return form


def forms_seen(bound: Mapping[str, forms.Form] | None, seen: str) -> None:
    """A form shown again (refused) carries the version the page now shows, not the one it was
    posted with: the person reads the current content, then signs or saves again. What they
    typed stays; the password never does (its widget does not render it)."""
    for form in (bound or {}).values():
        if "seen" in form.fields and form.is_bound:
            read = form.data.get(form.add_prefix("seen"))
            told = any(str(error).startswith(CHANGED_SINCE) for error in form.non_field_errors())
            if read and read != seen and not told:
                # Refused for another reason (an empty reason, say) before the service compared the
                # versions: the record changed meanwhile all the same, and the person must know it
                # before the form, now on the current version, is sent again.
                form.add_error(None, f"{CHANGED_SINCE}: review the changes, then submit again.")
            posted = form.data.copy() if isinstance(form.data, QueryDict) else dict(form.data)
            posted[form.add_prefix("seen")] = seen
            form.data = posted


def action_post(request: HttpRequest, *, record: Any, item: Any, action: str, actions: Mapping[str, Action],
                steps: Mapping[str, Step], page: Callable[..., HttpResponse], detail_url: str) -> HttpResponse:
    spec = actions[action]
    if not can(request.user, steps[spec.step].capability):
        raise PermissionDenied("Your role does not allow this.")
    form = action_form(actions, action, request, record, item, request.POST)
    if run_service(form, lambda data: spec.call(request, record, item, form, data)):
        messages.success(request, spec.done.format(record=record, item=item))
        return redirect(detail_url)
    return page(request, record, bound={form_key(action, item): form}, active=form_key(action, item), status=422)


@dataclass(frozen=True)
class ItemAction:
    """An action button beside one item (a CAPA action, a change task), ready for _action.html."""

    key: str
    form: forms.Form
    url: str
    label: str
    button: str
    signed: bool = False
    danger: bool = False


def item_actions(forms_by_key: Mapping[str, forms.Form], item: Any, url_name: str, number: str,
                 buttons: Mapping[str, tuple[str, str, bool, bool]]) -> list[ItemAction]:
    """The item's actions whose forms the page built, with their addresses and labels."""
    from django.urls import reverse

    found = []
    for action, (label, button, signed, danger) in buttons.items():
        key = form_key(action, item)
        if key in forms_by_key:
            found.append(ItemAction(key, forms_by_key[key], reverse(url_name, args=[number, action, item.pk]),
                                    label, button, signed, danger))
    return found


def refusals(bound: Mapping[str, forms.Form] | None, shown: Mapping[str, forms.Form]) -> list[str]:
    """Errors of a posted form the page does not show (the step is no longer possible)."""
    messages_: list[str] = []
    for key, form in (bound or {}).items():
        if key not in shown:
            messages_.extend(str(error) for errors in form.errors.values() for error in errors)
    return messages_
