"""PAdES signing and verification of the PDF record, and the demo PKI (pyHanko, cryptography).

The facility signs every exported record with its own key (settings PDF_SIGNING_KEY,
PDF_SIGNING_CERT, PDF_SIGNING_CHAIN, PDF_SIGNING_KEY_PASSPHRASE or its *_FILE), as a
certification signature that permits no change (DocMDP level 1), and, when PDF_TSA_URL names
an RFC 3161 time-stamp authority, with a trusted time stamp (PAdES B-T; B-B without one).
An auditor checks the file with any PDF reader; `verify_pdf` checks it against the configured
trust roots (PDF_TRUST_ROOTS) and refuses anything changed after signing: a byte changed in
the signed range, or an incremental update appended (21 CFR 11.10(b) and (c), 11.70; EU GMP
Annex 11 §7.1 and §8).

The same step adds what PDF/A-2b needs beyond reportlab's output: XMP metadata declaring
pdfaid:part=2, conformance=B (kept consistent with the document information by pyHanko) and
an sRGB output intent. See ebr/pdf/__init__.py for what is and is not conformant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from PIL import ImageCms
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata import model as xmp
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from ebr.pdf.render import DocumentInfo

T = TypeVar("T")
SIGNATURE_FIELD = "BatchRecordSignature"
SIGNATURE_REASON = "Certified complete copy of the electronic batch record"


class SigningNotConfigured(ImproperlyConfigured):
    """The signing key or certificate is missing or unreadable; the message says what to set."""


# --- demo PKI ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pki:
    directory: Path
    ca_cert: Path
    ca_key: Path
    signing_cert: Path
    signing_key: Path


def _pki(directory: Path) -> Pki:
    return Pki(directory=directory, ca_cert=directory / "ca.crt", ca_key=directory / "ca.key",
               signing_cert=directory / "signing.crt", signing_key=directory / "signing.key")


def _name(common_name: str, organisation: str) -> Any:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def issue_certificate(*, subject: str, organisation: str, issuer_key: Any | None, issuer_cert: Any | None,
                      days: int, ca: bool = False, time_stamping: bool = False, rsa_bits: int = 0) -> tuple[Any, Any]:
    """A new key and a certificate for it, signed by `issuer_key` (self-signed when None).

    ECDSA P-256 unless `rsa_bits` is given: PAdES readers accept it, and loading the key for each
    export takes milliseconds instead of the quarter second an RSA-3072 key's validation costs.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits) if rsa_bits else ec.generate_private_key(
        ec.SECP256R1())
    name = _name(subject, organisation)
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer_cert.subject if issuer_cert is not None else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    usage = dict(digital_signature=not ca, content_commitment=not ca and not time_stamping, key_encipherment=False,
                 data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                 decipher_only=False)
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    if time_stamping:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    if issuer_cert is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
                                        critical=False)
    certificate = builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())
    return key, certificate


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(certificate: Any) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _usable(path: Path, margin_days: int = 30) -> bool:
    if not path.is_file():
        return False
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=margin_days)


def demo_pki_ensure(directory: Path | None = None) -> Pki:
    """A demo CA and a document-signing certificate under .local/pki; idempotent (kept while valid).

    For demonstrations and tests only: the keys are unencrypted files on the application server.
    A facility configures its own key and certificate (ideally in an HSM) through the settings.
    """
    pki = _pki(Path(directory) if directory is not None else Path(settings.PDF_PKI_DIR))
    pki.directory.mkdir(parents=True, exist_ok=True)
    organisation = settings.FACILITY_NAME
    if not (_usable(pki.ca_cert, margin_days=400) and pki.ca_key.is_file()):
        key, certificate = issue_certificate(subject=f"{organisation} DEMO batch record CA", organisation=organisation,
                                             issuer_key=None, issuer_cert=None, days=3650, ca=True)
        _write_private(pki.ca_key, _pem_key(key))
        pki.ca_cert.write_bytes(_pem_cert(certificate))
        pki.signing_cert.unlink(missing_ok=True)
    if not (_usable(pki.signing_cert) and pki.signing_key.is_file()):
        ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        key, certificate = issue_certificate(subject=f"{organisation} batch record signing (DEMO)",
                                             organisation=organisation, issuer_key=ca_key, issuer_cert=ca_cert,
                                             days=825)
        _write_private(pki.signing_key, _pem_key(key))
        pki.signing_cert.write_bytes(_pem_cert(certificate))
    return pki


# --- signing -----------------------------------------------------------------------------------------

def _signer() -> Any:
    key, cert = Path(settings.PDF_SIGNING_KEY), Path(settings.PDF_SIGNING_CERT)
    chain = [Path(p) for p in settings.PDF_SIGNING_CHAIN]
    missing = [str(p) for p in (key, cert, *chain) if not p.is_file()]
    if missing:
        raise SigningNotConfigured(
            f"PDF signing is not configured: {', '.join(missing)} not found. Set PDF_SIGNING_KEY, PDF_SIGNING_CERT "
            "and PDF_SIGNING_CHAIN to the facility's key and certificates, or run `manage.py seed_demo` for a "
            "demo PKI.")
    passphrase = settings.PDF_SIGNING_KEY_PASSPHRASE.encode("utf-8") or None
    signer = signers.SimpleSigner.load(str(key), str(cert), ca_chain_files=tuple(str(p) for p in chain),
                                       key_passphrase=passphrase)
    if signer is None:
        raise SigningNotConfigured(f"The PDF signing key {key} or certificate {cert} cannot be read "
                                   "(wrong PDF_SIGNING_KEY_PASSPHRASE, or not PEM/DER).")
    return signer


def _timestamper() -> Any | None:
    if not settings.PDF_TSA_URL:
        return None
    return HTTPTimeStamper(settings.PDF_TSA_URL, timeout=15)


def _pdfa_metadata(writer: Any, info: DocumentInfo, created: dt.datetime) -> None:
    meta = writer.document_meta
    meta.title, meta.author, meta.subject = info.title, info.author, info.subject
    meta.keywords, meta.creator, meta.created = list(info.keywords), info.creator, created
    meta.xmp_extra = [xmp.XmpStructure.of(
        (xmp.ExpandedName(xmp.NS["pdfaid"], "part"), xmp.XmpValue("2")),
        (xmp.ExpandedName(xmp.NS["pdfaid"], "conformance"), xmp.XmpValue("B")),
        (xmp.ExpandedName(xmp.NS["pdf"], "Trapped"), xmp.XmpValue("False")),
    )]


def _srgb_profile() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def _output_intent(writer: Any) -> None:
    profile = generic.StreamObject({generic.NameObject("/N"): generic.NumberObject(3)}, stream_data=_srgb_profile())
    profile.compress()
    name = generic.TextStringObject("sRGB IEC61966-2.1")
    intent = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/OutputIntent"),
        generic.NameObject("/S"): generic.NameObject("/GTS_PDFA1"),
        generic.NameObject("/OutputConditionIdentifier"): name,
        generic.NameObject("/Info"): name,
        generic.NameObject("/DestOutputProfile"): writer.add_object(profile),
    })
    writer.root[generic.NameObject("/OutputIntents")] = generic.ArrayObject([writer.add_object(intent)])
    writer.update_root()


def pdf_sign(pdf: bytes, info: DocumentInfo, *, created: dt.datetime) -> bytes:
    """Certify `pdf` with the facility's key (PAdES B-B, or B-T with a configured TSA); PDF/A metadata added."""
    signer = _signer()
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    _pdfa_metadata(writer, info, created)
    _output_intent(writer)
    signature_meta = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
        reason=SIGNATURE_REASON, location=settings.FACILITY_NAME, certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES)
    timestamper = _timestamper()
    output = _outside_event_loop(lambda: signers.sign_pdf(writer, signature_meta, signer=signer,
                                                          timestamper=timestamper))
    return bytes(output.getbuffer())


def _outside_event_loop(work: Callable[[], T]) -> T:
    """Run pyHanko's synchronous API (it calls asyncio.run) even from a thread that has an event loop running
    (an ASGI view, a Playwright-driven test): then in a short-lived thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


# --- verification ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verification:
    valid: bool
    reason: str
    signer: str = ""
    signed_at: dt.datetime | None = None
    timestamp: dt.datetime | None = None
    fingerprint: str = ""
    batch: str = ""


def _trust_roots() -> list[Any]:
    roots = [Path(p) for p in settings.PDF_TRUST_ROOTS]
    missing = [str(p) for p in roots if not p.is_file()]
    if missing or not roots:
        raise SigningNotConfigured(f"PDF trust roots not found: {', '.join(missing) or 'none set'} "
                                   "(set PDF_TRUST_ROOTS to the facility CA certificate(s)).")
    return [load_cert_from_pemder(str(p)) for p in roots]


def _keyword(keywords: list[str], prefix: str) -> str:
    for keyword in keywords:
        for part in keyword.split(","):
            if part.strip().startswith(prefix):
                return part.strip()[len(prefix):]
    return ""


def _judge(status: Any) -> str | None:
    """None when the signature is sound, trusted and covers the whole file; else why not, in one line."""
    if not status.intact:
        return "altered: the signed bytes no longer match the signature (the file was changed after signing)"
    if not status.valid:
        return "invalid: the cryptographic signature does not verify"
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        return "altered: content was appended after signing (the signature does not cover the whole file)"
    if not status.trusted:
        return "untrusted: the signing certificate does not chain to a trusted root (PDF_TRUST_ROOTS)"
    if status.docmdp_ok is False:
        return "altered: changes after signing that the certification does not permit"
    stamp = status.timestamp_validity
    if stamp is not None and not (stamp.intact and stamp.valid and stamp.trusted):
        return "invalid: the signature time stamp does not verify or its authority is not trusted"
    return None


def pdf_verify(data: bytes) -> Verification:
    """Validate the record's signature against the trust roots; any change after signing fails."""
    roots = _trust_roots()
    try:
        reader = PdfFileReader(io.BytesIO(data))
        signatures = reader.embedded_signatures
    except Exception as error:  # a damaged file is an invalid record, whatever the parser's complaint
        return Verification(False, f"not a readable PDF: {error}")
    if not signatures:
        return Verification(False, "unsigned: the file carries no digital signature")
    context = ValidationContext(trust_roots=roots, allow_fetching=False)
    try:
        statuses = _outside_event_loop(lambda: [validate_pdf_signature(signature, context)
                                                for signature in signatures])
    except Exception as error:
        return Verification(False, f"invalid: the signature cannot be validated ({error})")
    keywords = list(reader.document_meta_view.keywords or [])
    last = statuses[-1]
    details = {
        "signer": last.signing_cert.subject.human_friendly,
        "signed_at": last.signer_reported_dt,
        "timestamp": last.timestamp_validity.timestamp if last.timestamp_validity is not None else None,
        "fingerprint": _keyword(keywords, "ebr-record-sha256:"),
        "batch": _keyword(keywords, "ebr-batch:"),
    }
    for status in statuses:
        problem = _judge(status)
        if problem is not None:
            return Verification(False, problem, **details)
    return Verification(True, "valid: signed, trusted, and unchanged since signing", **details)
