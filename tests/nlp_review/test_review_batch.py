"""Review runs (versioned, idempotent), signed dispositions, the release gate and the command."""

import json
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command

from ebr.services.release import batch_audit_trail_review, batch_release, batch_review_start, release_blockers
from nlp_review.models import BatchReview, Disposition, RecordText, ReviewFlag, ReviewStatus
from nlp_review.services import batch_review_run, flag_disposition, open_flags_count
from qms.audit import Event, SystemActor
from qms.models import AuditEvent, Deviation, Signature
from qms.signatures import SignatureRefused
from tests.conftest import PASSWORD
from tests.ebr.conftest import batch, resources, version  # noqa: F401  (fixtures)
from tests.ebr.test_release import run_batch

pytestmark = pytest.mark.django_db

ACTOR = SystemActor("system:tests")
GLOVE = "Glove torn during transfer in BSC, changed gloves."


@pytest.fixture
def completed(batch, operator, verifier):  # noqa: F811
    return run_batch(batch, operator, verifier, comments={"temp": GLOVE, "viability": "clumping seen in the flask"})


def run(batch, request_id=None):  # noqa: F811
    return batch_review_run(batch=batch, actor=ACTOR, request_id=request_id or f"test-{uuid.uuid4()}")


def sign_args(person):
    return {"password": PASSWORD, "username": person.username}


def test_review_flags_text_and_is_idempotent_on_request_id(completed):
    review = run(completed, "outbox-test-1")
    again = run(completed, "outbox-test-1")

    assert again.pk == review.pk and review.status == ReviewStatus.DONE and review.version == 1
    flags = list(review.flags.all())
    glove = [f for f in flags if f.rule == "aseptic.glove_breach"]
    assert glove and glove[0].severity == "critical" and glove[0].source_kind == "entry_comment"
    assert glove[0].source_text[glove[0].start:glove[0].end] == glove[0].evidence
    assert ReviewFlag.objects.filter(review=review).count() == len(flags)  # nothing doubled by the re-send
    assert review.critical_count >= 1 and review.risk_score >= 100
    assert review.progress_done == review.progress_total
    assert review.history.count() >= 2 and glove[0].history.count() == 1
    assert AuditEvent.objects.filter(event_type=Event.REVIEW_RUN_FINISHED, target_id=str(review.pk)).exists()
    assert RecordText.objects.filter(batch=completed, text=GLOVE).exists()


def test_rerun_makes_a_new_version_and_keeps_the_old(completed):
    first = run(completed)
    second = run(completed)

    assert (first.version, second.version) == (1, 2)
    assert BatchReview.objects.filter(batch=completed).count() == 2
    assert first.flags.count() == second.flags.count() > 0
    assert open_flags_count(completed.pk) == second.flags.count()


def test_disposition_is_signed_audited_and_kept_with_the_rule_version(completed, qa_reviewer):
    review = run(completed)
    flag = review.flags.filter(rule="aseptic.glove_breach").first()

    flag_disposition(actor=qa_reviewer, flag=flag, outcome=Disposition.NO_IMPACT,
                     reason="Gloves changed at once; EM within limits", **sign_args(qa_reviewer))

    flag.refresh_from_db()
    assert flag.disposition == Disposition.NO_IMPACT and flag.dispositioned_by == qa_reviewer
    assert flag.rule_version == review.pipeline_version
    signature = Signature.objects.get(pk=flag.signature_id)
    assert signature.meaning == "reviewed" and signature.target_type == "nlp_review.reviewflag"
    assert AuditEvent.objects.filter(event_type=Event.REVIEW_FLAG_DISPOSITIONED, target_id=str(flag.pk),
                                     data__signature=signature.pk).exists()
    with pytest.raises(ValidationError):
        flag_disposition(actor=qa_reviewer, flag=flag, outcome=Disposition.NO_IMPACT, reason="again",
                         **sign_args(qa_reviewer))


def test_disposition_raising_a_deviation_links_batch_and_step(completed, qa_reviewer):
    flag = run(completed).flags.filter(rule="aseptic.glove_breach").first()

    flag_disposition(actor=qa_reviewer, flag=flag, outcome=Disposition.DEVIATION_RAISED,
                     reason="Aseptic breach needs investigation", **sign_args(qa_reviewer))

    flag.refresh_from_db()
    deviation = Deviation.objects.get(number=flag.deviation_number)
    assert deviation.source == "review_flag"
    assert {(s.subject_type, s.subject_id) for s in deviation.subjects.all()} == {
        ("ebr.batch", str(completed.pk)), ("ebr.stepexecution", str(flag.step_id))}


def test_disposition_refused_without_password_or_for_an_operator(completed, qa_reviewer, operator):
    flag = run(completed).flags.first()

    with pytest.raises(SignatureRefused):
        flag_disposition(actor=qa_reviewer, flag=flag, outcome=Disposition.NO_IMPACT, reason="fine",
                         password="wrong", username=qa_reviewer.username)
    with pytest.raises(PermissionDenied):
        flag_disposition(actor=operator, flag=flag, outcome=Disposition.NO_IMPACT, reason="fine",
                         **sign_args(operator))
    flag.refresh_from_db()
    assert flag.disposition == Disposition.NONE


def test_release_blocked_until_every_flag_of_the_latest_review_is_dispositioned(
        completed, qa_reviewer, qa_approver):
    batch_review_start(actor=qa_reviewer, batch=completed)
    run(completed)  # an older version: its flags no longer count
    review = run(completed)
    completed.refresh_from_db()
    assert any("review flag" in blocker for blocker in release_blockers(completed))

    for flag in review.flags.all():
        flag_disposition(actor=qa_reviewer, flag=flag, outcome=Disposition.NO_IMPACT, reason="Assessed",
                         **sign_args(qa_reviewer))
    # The audit trail last, as QA does: it then covers the dispositions too.
    batch_audit_trail_review(actor=qa_reviewer, batch=completed, reason="Audit trail reviewed",
                             **sign_args(qa_reviewer))

    completed.refresh_from_db()
    assert release_blockers(completed) == []
    released = batch_release(actor=qa_approver, batch=completed, reason="Meets specifications",
                             **sign_args(qa_approver))
    assert released.status == "released"


def test_release_stays_blocked_while_a_re_run_has_not_finished(completed, qa_reviewer, qa_approver):
    from nlp_review.services import latest_review, review_rerun_request

    batch_review_start(actor=qa_reviewer, batch=completed)
    batch_audit_trail_review(actor=qa_reviewer, batch=completed, reason="Audit trail reviewed",
                             **sign_args(qa_reviewer))
    first = run(completed)  # finished; its flags are never dispositioned
    review_rerun_request(actor=qa_reviewer, batch=completed, reason="New pipeline version")
    rerun = BatchReview.objects.create(batch=completed, version=first.version + 1, request_id="rerun-failed",
                                       status=ReviewStatus.FAILED, requested_by_label="system:tests")
    completed.refresh_from_db()

    assert any("latest run has not finished" in blocker for blocker in release_blockers(completed))
    with pytest.raises(ValidationError):
        batch_release(actor=qa_approver, batch=completed, reason="Meets specifications", **sign_args(qa_approver))
    completed.refresh_from_db()
    assert completed.status == "in_review" and latest_review(completed.pk) == rerun


def test_a_re_run_that_reaches_the_worker_after_release_adds_no_review(completed, qa_reviewer, qa_approver,
                                                                        capsys):
    from nlp_review.services import ReviewRefused, latest_review, review_rerun_request
    from nlp_review.tasks import review_batch

    batch_review_start(actor=qa_reviewer, batch=completed)
    decided_on = run(completed)
    for flag in decided_on.flags.all():
        flag_disposition(actor=qa_reviewer, flag=flag, outcome=Disposition.NO_IMPACT, reason="Assessed",
                         **sign_args(qa_reviewer))
    request_id = review_rerun_request(actor=qa_reviewer, batch=completed, reason="New pipeline version")
    batch_audit_trail_review(actor=qa_reviewer, batch=completed, reason="Audit trail reviewed",
                             **sign_args(qa_reviewer))
    completed.refresh_from_db()
    batch_release(actor=qa_approver, batch=completed, reason="Meets specifications", **sign_args(qa_approver))

    with pytest.raises(ReviewRefused, match="released"):
        run(completed, request_id)
    assert review_batch.run(completed.pk, request_id) == {"refused": f"Batch {completed.number} is released: its "
                                                          "review is part of that decision's record and is not run "
                                                          "again."}
    call_command("review_batch", completed.number)  # the command shows the review the release rested on, exit 0

    shown = capsys.readouterr()
    assert "released" in shown.err and f"Shown: review v{decided_on.version}, the latest." in shown.err
    assert shown.out.startswith(f"{completed.number}: review v{decided_on.version}, risk score "
                                f"{decided_on.risk_score}")
    assert latest_review(completed.pk) == decided_on
    assert BatchReview.objects.filter(batch=completed).count() == 1
    released = AuditEvent.objects.filter(event_type="BATCH_RELEASED", target_id=str(completed.pk)).get()
    assert released.data["review_version"] == decided_on.version


def test_a_closed_batch_shows_its_latest_finished_review_not_a_run_that_never_finished(completed, capsys):
    from ebr.models import Batch

    finished = run(completed)
    BatchReview.objects.create(batch=completed, version=finished.version + 1, status=ReviewStatus.QUEUED,
                               request_id=f"rerun-{uuid.uuid4()}", requested_by_label="qa")  # never ran
    Batch.objects.filter(pk=completed.pk).update(status="aborted")  # a decided batch, set up directly

    call_command("review_batch", completed.number)

    shown = capsys.readouterr()
    assert (f"Shown: review v{finished.version}, the latest finished (v{finished.version + 1} is queued)."
            in shown.err)
    assert shown.out.startswith(f"{completed.number}: review v{finished.version}, risk score")


def test_a_decided_batch_shows_the_review_finished_by_the_decision_not_one_that_finished_later(
        completed, supervisor, capsys):
    """A run already under way when the batch was aborted finished afterwards: nobody decided on it."""
    from django.apps import apps
    from django.utils import timezone

    from ebr.models import Batch
    from nlp_review.services import decision_review
    from qms.audit import Event, record_event

    decided_on = run(completed)
    Batch.objects.filter(pk=completed.pk).update(status="aborted")  # a decided batch, set up directly
    record_event(actor=supervisor, event=Event.BATCH_ABORTED, target=completed, reason="Bag damaged")
    later = BatchReview.objects.create(batch=completed, version=decided_on.version + 1, status=ReviewStatus.DONE,
                                       request_id=f"rerun-{uuid.uuid4()}", requested_by_label="qa",
                                       finished_at=timezone.now() + timedelta(seconds=5))

    call_command("review_batch", completed.number)

    shown = capsys.readouterr()
    assert (f"Shown: review v{decided_on.version}, the latest finished before the decision (v{later.version} is "
            "done)." in shown.err)
    assert shown.out.startswith(f"{completed.number}: review v{decided_on.version}, risk score")
    assert decision_review(completed.pk) == decided_on
    pdf_flags = apps.get_app_config("nlp_review").review_flags_for_pdf(completed.pk)
    assert len(pdf_flags) == decided_on.flags.count()


def test_the_review_a_decision_names_is_the_records_whatever_the_clocks_say(completed, supervisor):
    """A worker's clock ahead of the web server's must not let a later run pass for the one decided on."""
    from django.utils import timezone

    from ebr.models import Batch
    from nlp_review.services import decision_review
    from qms.audit import Event, record_event

    decided_on = run(completed)
    BatchReview.objects.create(batch=completed, version=decided_on.version + 1, status=ReviewStatus.DONE,
                               request_id=f"rerun-{uuid.uuid4()}", requested_by_label="qa",
                               finished_at=timezone.now() - timedelta(minutes=1))
    Batch.objects.filter(pk=completed.pk).update(status="rejected")  # a decided batch, set up directly
    record_event(actor=supervisor, event=Event.BATCH_REJECTED, target=completed, reason="Out of specification",
                 data={"review_version": decided_on.version})

    assert decision_review(completed.pk) == decided_on


def test_re_run_needs_a_reason_and_a_batch_awaiting_its_decision(completed, qa_reviewer):
    from ebr.models import Batch
    from nlp_review.services import review_rerun_request
    from qms.models import OutboxMessage

    with pytest.raises(ValidationError, match="why"):
        review_rerun_request(actor=qa_reviewer, batch=completed, reason="  ")
    Batch.objects.filter(pk=completed.pk).update(status="released")  # a decided batch, set up directly
    with pytest.raises(ValidationError, match="released"):
        review_rerun_request(actor=qa_reviewer, batch=completed, reason="Curious")

    assert not OutboxMessage.objects.filter(task_name="nlp_review.review_batch", kwargs__batch_id=completed.pk,
                                            kwargs__request_id__startswith="rerun-").exists()


def test_linking_a_flag_to_another_batch_s_or_a_cancelled_deviation_is_refused(completed, qa_reviewer, operator):
    from qms.services.deviations import deviation_cancel
    from tests.qms import quality

    flag = run(completed).flags.filter(rule="aseptic.glove_breach").first()
    elsewhere = quality.deviation(operator)  # raised against another batch
    own = quality.deviation(operator, subjects=[quality.Subject("ebr.batch", str(completed.pk), completed.number)])
    deviation_cancel(actor=qa_reviewer, deviation=own, reason="Raised twice")

    for number in (elsewhere.number, own.number, "DEV-1999-0001"):
        with pytest.raises(ValidationError, match="not cancelled"):
            flag_disposition(actor=qa_reviewer, flag=flag, outcome=Disposition.DEVIATION_LINKED, reason="Known",
                             deviation=number, **sign_args(qa_reviewer))
    flag.refresh_from_db()
    assert flag.disposition == Disposition.NONE


def test_review_batch_command_prints_json_and_exits_2_on_unknown_batch(completed, capsys):
    call_command("review_batch", completed.number, "--json")
    output = json.loads(capsys.readouterr().out)
    assert output["batch"] == completed.number and output["risk_score"] >= 100
    assert {"category", "severity", "rule", "evidence", "start", "end"} <= set(output["flags"][0])

    with pytest.raises(SystemExit) as exit_info:
        call_command("review_batch", "NO-SUCH-BATCH")
    assert exit_info.value.code == 2


def test_a_run_resumed_after_the_record_s_texts_changed_stops_instead_of_skipping_texts(
        completed, operator, monkeypatch):
    import nlp_review.pipeline as pipeline
    import nlp_review.services as services
    from nlp_review.services import ReviewRecordChanged
    from tests.qms import quality

    monkeypatch.setattr(services, "CHUNK_SIZE", 1)
    real = pipeline.review_texts
    calls = []

    def worker_dies_on_the_second_chunk(texts, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(texts)
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(pipeline, "review_texts", worker_dies_on_the_second_chunk)
    with pytest.raises(RuntimeError):
        run(completed, "resume-1")
    flags_before = ReviewFlag.objects.filter(review__request_id="resume-1").count()
    # Meanwhile a deviation is raised against the batch: one more text, before the alarm texts.
    quality.deviation(operator, subjects=[quality.Subject("ebr.batch", str(completed.pk), completed.number)])
    monkeypatch.setattr(pipeline, "review_texts", real)

    with pytest.raises(ReviewRecordChanged, match="request a new review"):
        run(completed, "resume-1")

    review = BatchReview.objects.get(request_id="resume-1")
    assert review.status != ReviewStatus.DONE
    assert ReviewFlag.objects.filter(review=review).count() == flags_before


def test_a_batch_number_typed_in_lower_case_is_found(completed, capsys):
    """Batch numbers are stored in upper case; an administrator typing b-2026-0001 means the same batch."""
    call_command("review_batch", completed.number.lower())

    assert capsys.readouterr().out.startswith(f"{completed.number}: review v")
