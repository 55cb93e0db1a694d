"""Signed PDF batch records: the complete record an auditor can verify without our software.

The document renders `ebr.selectors.batch_record()` (the same structure the batch screen
shows, so the two cannot disagree) plus sections contributed by providers (deviations and
CAPA, review flags, chain of custody, equipment and materials, process data) and the batch's
audit trail as an appendix. It is signed PAdES (pyHanko) with the facility's key, optionally
time-stamped by an RFC 3161 authority, so that an accurate and complete copy of the record can
be given to an inspector (21 CFR 11.10(b), EU GMP Annex 11 §8.1), with every signature's
manifestation (21 CFR 11.50) and every correction's original value and reason (Annex 11 §8.2,
ALCOA+ "original").

Operating it
- Settings (environment, see ebr/settings.py): PDF_SIGNING_KEY, PDF_SIGNING_CERT,
  PDF_SIGNING_CHAIN (comma-separated), PDF_SIGNING_KEY_PASSPHRASE (or
  PDF_SIGNING_KEY_PASSPHRASE_FILE), PDF_TRUST_ROOTS (comma-separated, what `verify_pdf`
  trusts), PDF_TSA_URL (RFC 3161; empty: no time stamp), PDF_EXPORT_DIR (files made from the
  screen), PDF_FONT_DIR (DejaVu TrueType files; Debian package fonts-dejavu-core).
- Without them, the demo PKI under .local/pki is used: `seed_demo` creates a demo CA and a
  document-signing certificate there (idempotent). Readers such as Acrobat show the demo
  signature as "validity unknown" until the demo CA is trusted; a facility uses a certificate
  from a CA its inspectors trust (an AATL or EU-trusted-list issuer) and, ideally, a key in an
  HSM. When a TSA is configured, add its root to PDF_TRUST_ROOTS as well.
- `manage.py export_batch_pdf BATCH_NO --output PATH [--user USERNAME]` and
  `manage.py verify_pdf PATH`; from the batch page, QA and auditors export through Celery
  (`ebr.batch_pdf_export`) and download the file they asked for.

The record fingerprint (cover and every footer) is the SHA-256 of the canonical JSON of the
record's content (ebr/pdf/content.py), not of the file: exporting the same record twice gives
the same fingerprint; the export time, the exporter and export events are left out of it. It
holds the content in its stored form, not as printed: every moment in UTC, signatures, alarms
and custody gaps as data, units as UCUM codes, so that the facility's TIME_ZONE or a change in
how values print cannot change it (format ebr-batch-record-pdf/2; /1 held some times as printed
in the facility's zone, so every fingerprint changed with /2).

PDF/A-2b, honestly stated: what reportlab and pyHanko let us meet is done (all fonts are
embedded DejaVu subsets, no standard-14 font is referenced; an XMP packet declaring
pdfaid:part=2 and conformance=B, kept consistent with the document information dictionary by
pyHanko; an sRGB output intent; no encryption, JavaScript, transparency groups or external
content; the signature is an incremental update, which PDF/A allows). It is NOT validated with
veraPDF here (not installed); the sRGB profile comes from littlecms and is ICC v4, which some
PDF/A-2 validators question; reportlab writes no structure tree (PDF/A-2b does not require
one, 2a/2u would); reportlab's subset fonts carry ToUnicode maps we have not audited glyph by
glyph. Treat the file as "PDF/A-2b intended", not as certified PDF/A.

Modules: `fonts` (DejaVu, fast text measuring), `grid` (fast splitting tables and text),
`content` (canonical record content and its fingerprint), `audit` (the batch's audit trail),
`sections` (the provider extension point) and `providers` (the built-in sections), `charts`
(process data), `styles`, `cover` and `render` (the document), `signing` (PAdES, demo PKI,
verification), `export` (build, sign, write atomically, audit; the task's work).
"""
