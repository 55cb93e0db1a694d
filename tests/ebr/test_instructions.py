"""Step instructions as Markdown with images: sanitised for the tablet, images frozen with their
version, served to logged-in users only, copied into a new version, printed in the PDF."""

from __future__ import annotations

import io
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from PIL import Image

from ebr.instructions import instructions_html
from ebr.models import MasterRecordVersion, StepTemplate
from ebr.models.master import InstructionImage
from ebr.selectors import master_version_content, step_instructions_html, version_diff
from ebr.services import master_records as master_services
from qms.audit import Event
from qms.models import AuditEvent, Signature
from qms.staleness import record_version
from tests.conftest import PASSWORD, login
from tests.ebr.conftest import create_batch, train

pytestmark = pytest.mark.django_db

MALICIOUS = """Mix **gently** and *slowly*.

<script>alert('x')</script>
<img src=x onerror="alert(1)">
[click me](javascript:alert(1)) [evil](JaVaScRiPt:alert(2)) <a href="javascript:alert(3)">raw</a>
![tracker](https://evil.example/pixel.png) ![inline](data:image/png;base64,iVBORw0KGgo=)
<div style="background:url(javascript:alert(4))" onclick="alert(5)">styled</div>
"""


def png(width: int = 40, height: int = 20, colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    """Instruction images go to a private folder of the test, never the developer's .local/media."""
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    return tmp_path


def draft_step(supervisor, code="MBR-IMG-001", instructions="Label the bag as shown: ![Label position](image:1)"):
    product = master_services.product_create(actor=supervisor, code=f"P-{code}", name="Test CAR-T")
    version = master_services.master_record_create(actor=supervisor, product=product, code=code, title="Images")
    stage = master_services.stage_add(actor=supervisor, version=version, name="Fill")
    return master_services.step_add(
        actor=supervisor, stage=stage, code="1.1", title="Label the bags", instructions=instructions,
        parameters=[{"code": "labelled", "label": "Bags labelled", "kind": "yes_no", "expected": "yes"}])


def make_effective(version, supervisor, qa_reviewer, qa_approver):
    master_services.version_submit(actor=supervisor, version=version, password=PASSWORD, username=supervisor.username)
    master_services.version_review(actor=qa_reviewer, version=version, password=PASSWORD,
                                   username=qa_reviewer.username)
    master_services.version_approve(actor=qa_approver, version=version, password=PASSWORD,
                                    username=qa_approver.username)
    return master_services.version_make_effective(actor=qa_approver, version=version)


def version_of(step: StepTemplate) -> MasterRecordVersion:
    return MasterRecordVersion.objects.get(pk=step.stage.version_id)


# --- sanitising -------------------------------------------------------------------------------------

class Elements(HTMLParser):
    """The elements and attributes a browser would build from the HTML (text is not markup)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        self.tags.add(tag)
        self.attributes += [(name, value or "") for name, value in attrs]


def assert_harmless(html: str) -> None:
    elements = Elements(html)
    assert elements.tags <= {"p", "strong", "em", "ul", "ol", "li", "a", "img", "h3", "h4", "figure", "figcaption",
                             "br", "code", "pre", "blockquote", "hr", "h5"}, elements.tags
    for name, value in elements.attributes:
        assert not name.startswith("on") and name != "style", name
        assert not value.strip().lower().startswith(("javascript:", "data:", "vbscript:")), value
        assert "evil.example" not in value


def test_malicious_instructions_render_without_script_handlers_styles_or_javascript_urls():
    html = instructions_html(MALICIOUS)

    assert "<strong>gently</strong>" in html and "<em>slowly</em>" in html
    assert_harmless(html)
    assert "script" not in Elements(html).tags and "div" not in Elements(html).tags
    # What was typed stays readable as text: nothing an author wrote disappears silently.
    assert "&lt;script&gt;" in html


def test_the_sanitiser_removes_what_the_markdown_parser_would_let_through():
    from ebr.instructions import sanitise

    cleaned = sanitise('<p onclick="x()">a</p><script>alert(1)</script><a href="javascript:alert(1)">b</a>'
                       '<img src="x" onerror="alert(1)" style="width:9px"><iframe src="/"></iframe>')

    assert_harmless(cleaned)
    assert "alert" not in cleaned and "iframe" not in cleaned


def test_the_sanitiser_keeps_images_to_the_image_view_and_links_to_this_or_named_sites():
    from ebr.instructions import sanitise

    cleaned = sanitise('<img src="https://tracker.example/t.png"><img src="/master-records/images/7/" alt="BSC">'
                       '<a href="//evil.example/x">a</a><a href="/\\evil.example/y">b</a>'
                       '<a href="https://sop.example/17">c</a>')

    assert "tracker.example" not in cleaned and "evil.example" not in cleaned
    assert 'src="/master-records/images/7/"' in cleaned and 'href="https://sop.example/17"' in cleaned


def test_pdf_blocks_print_an_inline_figure_after_the_text_around_it():
    from ebr.instructions import instructions_blocks

    blocks = instructions_blocks("Before ![BSC layout](image:1) after")

    assert [block.kind for block in blocks] == ["paragraph", "figure"]
    assert blocks[1].figure == 1


def test_headings_are_demoted_below_the_page_headings_and_links_get_no_opener():
    html = instructions_html("# Preparation\n\nSee [the SOP](https://sop.example/17).")

    assert "<h3>Preparation</h3>" in html and "<h1" not in html
    assert 'rel="noopener noreferrer"' in html


def test_authoring_page_and_tablet_never_show_a_malicious_instruction_as_html(client, supervisor):
    step = draft_step(supervisor, instructions=MALICIOUS)
    login(client, supervisor)

    page = client.get(f"/master-records/{step.stage.version.master_record.code}/v1/")

    body = page.content.decode()
    assert page.status_code == 200
    instructions = body.split('<div class="instructions">')[1].split("</div>")[0]
    assert "<strong>gently</strong>" in instructions
    assert_harmless(instructions)
    assert "script-src 'self'" in page["Content-Security-Policy"]


# --- images: upload, freeze, serve --------------------------------------------------------------------

def test_image_upload_on_a_draft_is_stored_by_hash_history_tracked_and_audited(supervisor, media):
    step = draft_step(supervisor)
    content = png()

    image = master_services.instruction_image_add(actor=supervisor, step=step, content=content,
                                                  caption="Label position")

    assert (image.number, image.content_type, image.width, image.height) == (1, "image/png", 40, 20)
    assert (media / image.file).read_bytes() == content
    assert image.history.count() == 1 and image.history.get().history_user == supervisor
    event = AuditEvent.objects.get(event_type=Event.RECORD_CREATED, target_type="ebr.instructionimage",
                                   target_id=str(image.pk))
    assert event.reason == "Instruction image added to draft"
    assert {"field": "sha256", "old": None, "new": image.sha256} in event.data["changes"]


@pytest.mark.parametrize(("content", "message"), [
    (b"GIF89a" + b"\x00" * 40, "Only PNG and JPEG"),
    (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "Only PNG and JPEG"),
    (b"\x89PNG\r\n\x1a\n" + b"not really a png", "not a readable PNG or JPEG"),
    (b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024 + 1), "larger than 2 MB"),
])
def test_upload_that_is_not_a_small_png_or_jpeg_is_refused(supervisor, content, message):
    step = draft_step(supervisor)

    with pytest.raises(ValidationError, match=message):
        master_services.instruction_image_add(actor=supervisor, step=step, content=content, caption="Bad")

    assert not InstructionImage.objects.exists()


def test_a_version_placing_an_image_its_step_does_not_have_is_not_submitted(supervisor):
    step = draft_step(supervisor)  # places image 1, which was never added
    version = version_of(step)

    with pytest.raises(ValidationError, match=r"step 1\.1 places image 1, which it does not have"):
        master_services.version_submit(actor=supervisor, version=version, password=PASSWORD,
                                       username=supervisor.username)

    version.refresh_from_db()
    assert version.status == "draft"
    assert not Signature.objects.filter(target_type="ebr.masterrecordversion", target_id=str(version.pk)).exists()


def test_an_approved_version_refuses_a_new_image(supervisor, qa_reviewer, qa_approver):
    step = draft_step(supervisor, instructions="Label the bags.")
    make_effective(version_of(step), supervisor, qa_reviewer, qa_approver)

    with pytest.raises(ValidationError, match="frozen"):
        master_services.instruction_image_add(actor=supervisor, step=step, content=png(), caption="Late")

    assert not step.images.exists()
    with pytest.raises(ValidationError, match="frozen"):
        master_services.step_instructions_update(actor=supervisor, step=step, instructions="Changed", reason="x")


def test_image_is_served_to_logged_in_users_only(client, supervisor, operator):
    step = draft_step(supervisor)
    image = master_services.instruction_image_add(actor=supervisor, step=step, content=png(), caption="Label")
    url = f"/master-records/images/{image.pk}/"

    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]

    login(client, operator)
    served = client.get(url)
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert served.content == png() and served["X-Content-Type-Options"] == "nosniff"
    assert "private" in served["Cache-Control"]


def test_an_image_altered_on_disk_is_not_served(client, supervisor, media):
    step = draft_step(supervisor)
    image = master_services.instruction_image_add(actor=supervisor, step=step, content=png(), caption="Label")
    (media / image.file).write_bytes(png(colour="blue"))
    login(client, supervisor)

    assert client.get(f"/master-records/images/{image.pk}/").status_code == 403


def test_uploading_the_genuine_image_again_repairs_a_file_altered_on_disk(client, supervisor, media):
    step = draft_step(supervisor)
    image = master_services.instruction_image_add(actor=supervisor, step=step, content=png(), caption="Label")
    (media / image.file).write_bytes(png(colour="blue"))

    again = master_services.instruction_image_add(actor=supervisor, step=step, content=png(), caption="Label again")
    login(client, supervisor)

    served = client.get(f"/master-records/images/{image.pk}/")
    assert served.status_code == 200 and served.content == png()
    # The altered file does not vanish silently: the upload that replaced it says so in the audit trail.
    events = AuditEvent.objects.filter(target_type="ebr.instructionimage")
    assert events.get(target_id=str(again.pk)).data["repaired_altered_file"] == image.file
    assert "repaired_altered_file" not in events.get(target_id=str(image.pk)).data


def test_author_uploads_an_image_and_places_it_through_the_pages(client, supervisor):
    step = draft_step(supervisor, instructions="Label the bag.")
    version = version_of(step)
    login(client, supervisor)
    base = f"/master-records/{version.master_record.code}/v1/"
    upload = io.BytesIO(png())
    upload.name = "label.png"

    # `seen`: the version of the page read, which every edit form of the page carries (qms/staleness.py)
    uploaded = client.post(f"{base}image/", {"step": step.pk, "caption": "Label position", "image": upload,
                                             "seen": record_version(version)})
    placed = client.post(f"{base}instructions/", {"step": step.pk, "reason": "Place the label figure",
                                                  "seen": record_version(version),
                                                  "instructions": "Label the bag:\n\n![Label position](image:1)"})
    refused = client.post(f"{base}image/", {"step": step.pk, "caption": "Notes", "seen": record_version(version),
                                            "image": io.BytesIO(b"%PDF-1.7 not an image")})

    assert uploaded.status_code == 302 and placed.status_code == 302
    assert refused.status_code == 422 and "Only PNG and JPEG" in refused.content.decode()
    image = step.images.get()
    page = client.get(base).content.decode()
    assert f'<img src="/master-records/images/{image.pk}/" alt="Label position"' in page
    assert AuditEvent.objects.filter(target_type="ebr.steptemplate", target_id=str(step.pk),
                                     reason="Place the label figure").exists()


# --- versions -----------------------------------------------------------------------------------------

def test_signed_content_covers_the_image_hash_and_a_new_version_copies_the_reference(
        supervisor, qa_reviewer, qa_approver, monkeypatch):
    from qms.services import change_control

    step = draft_step(supervisor)
    image = master_services.instruction_image_add(actor=supervisor, step=step, content=png(), caption="Label")
    first = make_effective(version_of(step), supervisor, qa_reviewer, qa_approver)
    monkeypatch.setattr(change_control, "change_control_is_approved", lambda number: number == "CC-OK")

    second = master_services.version_new_draft(actor=supervisor, master_record=first.master_record,
                                               change_control="CC-OK", summary_of_changes="Clearer wording")

    copied = InstructionImage.objects.get(step__stage__version=second)
    assert (copied.number, copied.caption, copied.file, copied.sha256) == (1, "Label", image.file, image.sha256)
    assert copied.pk != image.pk
    assert master_version_content(first)[0]["steps"][0]["images"] == [[1, "Label", image.sha256]]
    new_step = StepTemplate.objects.get(stage__version=second)
    master_services.step_instructions_update(actor=supervisor, step=new_step, reason="Clearer wording",
                                             instructions="Label **every** bag: ![Label](image:1)")
    rows = {row.key: row for row in version_diff(first, second)}
    assert rows["step 1.1 instructions"].changed
    assert "Label **every** bag" in rows["step 1.1 instructions"].right
    assert not rows["step 1.1 · image 1"].changed
    assert f"/master-records/images/{copied.pk}/" in step_instructions_html(new_step)


def test_versions_without_images_keep_the_content_they_were_signed_with(version):
    steps = [step for stage in master_version_content(version) for step in stage["steps"]]

    assert all("images" not in step for step in steps)


# --- the tablet and the PDF -----------------------------------------------------------------------------

@pytest.fixture
def batch_with_figure(supervisor, qa_reviewer, qa_approver, operator, verifier):
    step = draft_step(supervisor, instructions="Check:\n\n- the **label**\n- the *seal*\n\n"
                                               "![Label position](image:1)")
    master_services.instruction_image_add(actor=supervisor, step=step, content=png(300, 150), caption="Label position")
    master_services.instruction_image_add(actor=supervisor, step=step, content=png(colour="blue"),
                                          caption="Seal detail")
    version = make_effective(version_of(step), supervisor, qa_reviewer, qa_approver)
    for person in (operator, verifier):
        train(person, version, qa_approver, supervisor)
    from ebr.services import batches as batch_services

    return batch_services.batch_start(actor=supervisor, batch=create_batch(supervisor, version))


def test_tablet_step_page_shows_the_rendered_instructions_with_scaled_images(client, operator, batch_with_figure):
    images = list(InstructionImage.objects.filter(step__stage__version=batch_with_figure.master_version))
    login(client, operator)

    page = client.get(f"/execute/{batch_with_figure.number}/").content.decode()

    assert "<li>the <strong>label</strong></li>" in page and "<li>the <em>seal</em></li>" in page
    assert f'<img src="/master-records/images/{images[0].pk}/" alt="Label position"' in page
    # The image the text does not place is still shown, as a numbered figure.
    assert "<figcaption>Figure 2: Seal detail</figcaption>" in page
    assert " style=" not in page.split('class="instructions"')[1].split("</section>")[0]


def test_pdf_prints_the_instructions_text_lists_and_figures(batch_with_figure):
    from pypdf import PdfReader

    from ebr.pdf.content import record_data
    from ebr.pdf.render import document_render

    data = record_data(batch_with_figure)
    rendered = document_render(data, exported_at=timezone.now() - timedelta(seconds=1), exported_by="Auditor")

    reader = PdfReader(io.BytesIO(rendered.pdf))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert "Instructions" in text and "• the label" in text and "• the seal" in text
    assert "Figure 1: Label position" in text and "Figure 2: Seal detail" in text
    assert sum(len(page.images) for page in reader.pages) == 2
    assert [f.sha256 for f in data.figures[batch_with_figure.steps.get().template_id]] == [
        i.sha256 for i in InstructionImage.objects.filter(step__stage__version=batch_with_figure.master_version)]
