"""Electronic signatures (21 CFR 11.50, 11.70, 11.100, 11.200, 11.300).

`sign()` is the only way a signature comes into being. It re-authenticates the signer with
their password at every signing and, at the first signing of a session (or after the idle
timeout ended the previous one), with their username too (11.200(a)(1)). The signature keeps
the printed name, meaning, server time and a SHA-256 of the canonical JSON of exactly what was
signed, so it cannot be moved to another record (11.70) and shows as invalid once the record
changes. A wrong password refuses the signing, is recorded, and counts toward the lockout.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from django.apps import apps
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.sessions.backends.base import SessionBase
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone

from qms.audit import Event, record_event, record_security_event
from qms.models import Signature, User
from qms.roles import admin_with_gmp

SESSION_USERNAME_CONFIRMED = "signature_username_confirmed"


class Meaning(StrEnum):
    """What a signature means. Extend here; stored as text."""

    AUTHORED = "authored"
    REVIEWED = "reviewed"
    APPROVED = "approved"
    PERFORMED = "performed"
    VERIFIED = "verified"
    RELEASED = "released"
    REJECTED = "rejected"
    ACKNOWLEDGED = "acknowledged"
    WITHDRAWN = "withdrawn"  # the signer withdraws a draft they may author, e.g. a master record version
    CONFIRMED = "confirmed"  # the signer vouches for a fact another recorded, e.g. a trainer for a training record
    GRANTED = "granted"  # the signer grants a request on record, e.g. a later due date for an investigation


class SignatureRefused(PermissionError):
    """The signing did not happen; the message says why in words a signer understands."""


class SegregationOfDuties(PermissionError):
    """The same person may not hold both roles in one record (EU GMP Part I 2.x, Annex 11)."""


class Signable(Protocol):
    pk: Any

    def signed_content(self) -> dict[str, Any]: ...


def canonical_json(content: Any) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      cls=DjangoJSONEncoder)


def content_of(target: models.Model) -> dict[str, Any]:
    """The content a signature covers: the model's `signed_content()`, else its own fields."""
    if hasattr(target, "signed_content"):
        content = target.signed_content()
    else:
        content = {f.attname: f.value_from_object(target) for f in target._meta.concrete_fields}
    return json.loads(canonical_json(content))


def content_hash(target: models.Model) -> str:
    return hashlib.sha256(canonical_json(content_of(target)).encode("utf-8")).hexdigest()


def request_for_authentication(request: HttpRequest | None) -> HttpRequest:
    # django-axes counts failures per request; commands and tasks sign without one.
    if request is not None:
        return request
    synthetic = HttpRequest()
    synthetic.META["REMOTE_ADDR"] = "127.0.0.1"
    synthetic.META["HTTP_USER_AGENT"] = "ebr-service"
    return synthetic


def username_required(session: SessionBase | None) -> bool:
    """11.200(a)(1)(i): the first signing of a session asks for both components."""
    return session is None or not session.get(SESSION_USERNAME_CONFIRMED, False)


def _refuse(signer: User, target: models.Model, meaning: str, why: str) -> SignatureRefused:
    record_security_event(actor=signer, event=Event.SIGNATURE_REFUSED, target=target,
                          reason=why, data={"meaning": meaning})
    return SignatureRefused(why)


def _check_identity(*, signer: User, password: str, username: str | None, meaning: str,
                    target: models.Model, session: SessionBase | None,
                    request: HttpRequest | None) -> None:
    if not signer.is_active:
        raise _refuse(signer, target, meaning, "This account is deactivated and cannot sign.")
    if username_required(session) and not username:
        raise SignatureRefused("Enter your username and password to sign.")
    if username is not None and username != signer.username:
        raise _refuse(signer, target, meaning, "You can only sign as yourself: the username is not yours.")
    authenticated = authenticate(request_for_authentication(request), username=signer.username, password=password,
                                 purpose="signature")
    if authenticated is None or authenticated.pk != signer.pk:
        left = attempts_left(signer)
        if left <= 0:
            raise _refuse(signer, target, meaning, "This account is locked; an administrator must unlock it.")
        # Said before the lock falls, not after: a gloved hand mistyping on a tablet can stop in time.
        raise _refuse(signer, target, meaning, "Wrong password: the signature was not applied. "
                                               f"{left} more wrong attempt{'s' if left > 1 else ''} will lock the "
                                               "account.")


def sign(*, signer: User, password: str, meaning: Meaning | str, target: models.Model,
         reason: str = "", username: str | None = None, session: SessionBase | None = None,
         request: HttpRequest | None = None) -> Signature:
    """Apply `signer`'s e-signature with `meaning` to `target` as it is now (11.50, 11.70, 11.200).

    Call it inside the service's transaction, after locking the target and before changing it,
    so that the signature and the change commit or fail together.
    """
    _transaction_guard()
    meaning = Meaning(meaning)
    if signer.must_change_password:
        # The password was set by an administrator who therefore knows it: a signature with it is
        # not provably the holder's (11.100(a), 11.300(b)).
        raise _refuse(signer, target, meaning.value,
                      "Change the password an administrator gave you (My account) before signing.")
    if admin_with_gmp(signer.role_names):
        # An account given both before the roles were kept apart (qms.services.users._roles_apply):
        # who administers the accounts and passwords must not also sign the records (Annex 11 §12.1).
        raise _refuse(signer, target, meaning.value,
                      "This account holds the administrator role and a GMP role: an administrator must remove one "
                      "of them (Users → Roles) before it can sign.")
    _check_identity(signer=signer, password=password, username=username, meaning=meaning,
                    target=target, session=session, request=request)
    content = content_of(target)
    signature = Signature.objects.create(
        signer=signer, printed_name=signer.full_name, username=signer.username,
        meaning=meaning.value, signed_at=timezone.now(),
        target_type=target._meta.label_lower, target_id=str(target.pk), target_label=str(target)[:200],
        content=content,
        content_hash=hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest(),
        reason=reason,
    )
    record_event(actor=signer, event=Event.SIGNATURE_APPLIED, target=target, reason=reason,
                 data={"signature": signature.pk, "meaning": meaning.value})
    if session is not None:
        session[SESSION_USERNAME_CONFIRMED] = True
    return signature


def attempts_left(user: User) -> int:
    """Wrong passwords (logins, signatures, password changes) the account may still take before it
    locks (21 CFR 11.300(d)); 0 when locked."""
    from qms.services.users import failed_attempts  # not at the top: users imports this module

    return max(0, settings.AXES_FAILURE_LIMIT - failed_attempts(user.username))


def user_is_locked(user: User) -> bool:
    return attempts_left(user) == 0


# --- validity and manifestation -------------------------------------------------------------

@dataclass(frozen=True)
class SignatureManifestation:
    """What a reader sees of a signature, on screen and in exports (11.50)."""

    signature_id: int
    printed_name: str
    username: str
    meaning: str
    signed_at: datetime
    signed_at_display: str
    valid: bool
    reason: str = ""  # what the signer wrote: tells an approval from a closure signed with the same meaning

    @property
    def status(self) -> str:
        return "valid" if self.valid else "invalid — record changed after signing"

    def __str__(self) -> str:
        return f"{self.meaning.capitalize()} by {self.printed_name} on {self.signed_at_display} ({self.status})"


def signature_target(signature: Signature) -> models.Model | None:
    model = apps.get_model(signature.target_type)
    return model._default_manager.filter(pk=signature.target_id).first()


def signature_is_valid(signature: Signature, target: models.Model | None = None) -> bool:
    """True while the signed record's content is exactly what was signed (11.70)."""
    target = target if target is not None else signature_target(signature)
    return target is not None and content_hash(target) == signature.content_hash


def format_local(moment: datetime) -> str:
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def manifestation(signature: Signature, target: models.Model | None = None) -> SignatureManifestation:
    return SignatureManifestation(
        signature_id=signature.pk, printed_name=signature.printed_name, username=signature.username,
        meaning=signature.meaning, signed_at=signature.signed_at,
        signed_at_display=format_local(signature.signed_at),
        valid=signature_is_valid(signature, target), reason=signature.reason,
    )


def signatures_for(target: models.Model) -> list[SignatureManifestation]:
    signatures = Signature.objects.filter(target_type=target._meta.label_lower, target_id=str(target.pk))
    current = content_hash(target)
    return [
        SignatureManifestation(
            signature_id=s.pk, printed_name=s.printed_name, username=s.username, meaning=s.meaning,
            signed_at=s.signed_at, signed_at_display=format_local(s.signed_at),
            valid=s.content_hash == current, reason=s.reason,
        )
        for s in signatures
    ]


# --- segregation of duties ------------------------------------------------------------------

def is_apart_from(actor: User, others: Iterable[User | None]) -> bool:
    """The boolean companion of `ensure_not_among`: screens ask it before offering a signature,
    so that they never offer what the service would refuse."""
    return not any(other is not None and other.pk == actor.pk for other in others)


def ensure_not_among(actor: User, others: Iterable[User | None], rule: str) -> None:
    """Refuse when `actor` is one of `others` (e.g. a verifier who performed the step)."""
    if not is_apart_from(actor, others):
        raise SegregationOfDuties(rule)


def may_verify(*, verifier: User, performer: User | None) -> bool:
    """The boolean companion of `ensure_verifier_not_performer`."""
    return is_apart_from(verifier, [performer])


def may_approve(*, approver: User, authors: Iterable[User]) -> bool:
    """The boolean companion of `ensure_approver_not_author`."""
    return is_apart_from(approver, authors)


def ensure_verifier_not_performer(*, verifier: User, performer: User | None) -> None:
    performers = [performer] if performer is not None else []
    ensure_not_among(verifier, performers, "The verifier of a step must not be the person who performed it.")


def ensure_approver_not_author(*, approver: User, authors: Iterable[User]) -> None:
    ensure_not_among(approver, authors, "An approver must not be an author of what they approve.")


def ensure_releaser_not_executor(*, releaser: User, executors: Iterable[User]) -> None:
    ensure_not_among(releaser, executors, "QA release must not be signed by anyone who executed the batch.")


def _transaction_guard() -> None:
    """A signature is meaningful only inside the transaction that makes the signed change."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("sign() must run inside the service's transaction")
