"""Signed PDF batch records: the complete record an auditor can verify without our software.

The document renders `ebr.selectors.batch_record()` (the same structure the batch screen
shows, so the two cannot disagree) plus sections contributed by providers (deviations and
CAPA, review flags, chain of custody, process data) and the batch's audit trail as an
appendix. It is signed PAdES (pyHanko) with the facility's key, optionally time-stamped by an
RFC 3161 authority, so that an accurate and complete copy of the record can be given to an
inspector (21 CFR 11.10(b), EU GMP Annex 11 §8.1) with every signature's manifestation
(21 CFR 11.50) and every correction's original value and reason (Annex 11 §8.2 / ALCOA+).

PDF/A-2b, honestly stated: what reportlab and pyHanko let us meet is done (all fonts are
embedded DejaVu subsets, no Helvetica; an XMP packet declaring pdfaid:part=2/conformance=B kept
consistent with the document information by pyHanko; an sRGB output intent; no encryption,
JavaScript, transparency groups or external content; the signature is an incremental update,
which PDF/A allows). It is NOT validated here with veraPDF, reportlab does not tag structure
(PDF/A-2b does not require it, 2a/2u would), and glyph-to-Unicode maps come from reportlab's
subsetting, which we have not audited; treat the file as "PDF/A-2b intended", not certified.

Modules: `fonts` (DejaVu, fast text measuring), `grid` (a fast splitting table), `content`
(canonical record content and its fingerprint), `audit` (the batch's audit-trail selector),
`sections` (the provider extension point), `charts` (process data), `render` (the document),
`signing` (PAdES, demo PKI, verification), `export` (build, sign, write atomically, audit).
"""
