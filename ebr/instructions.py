"""Step instructions: Markdown rendered to sanitised HTML (tablet, desktop) and to plain runs (PDF).

What an author writes is an approved GMP instruction, but it is still text typed into a web
form: it is rendered with raw HTML disabled, then cleaned again with an allow-list sanitiser
(nh3, the ammonia crate) so that no script, event handler, style or javascript: URL can reach
an operator's tablet, whatever the Markdown parser lets through. No inline style or script is
produced, so the site's Content-Security-Policy holds; images are scaled by app.css.

Images are referenced per step as `![caption](image:<number>)` and resolved to the served URL of
that step's InstructionImage; any other image source (remote URLs, data:) is dropped. Images the
text does not place are appended as numbered figures, so nothing approved is hidden.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import nh3
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from markdown_it import MarkdownIt
from markdown_it.token import Token
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_REF = re.compile(r"^image:(\d+)$")
ALLOWED_TAGS = {"p", "br", "strong", "em", "ul", "ol", "li", "h3", "h4", "h5", "blockquote", "code", "pre", "hr",
                "a", "img", "figure", "figcaption"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
LINK_SCHEMES = {"http", "https", "mailto"}
SERVED_IMAGE = re.compile(r"^/master-records/images/\d+/$")


@dataclass(frozen=True)
class FigureRef:
    """What the renderers need of an InstructionImage."""

    number: int
    caption: str
    url: str


def _parser() -> MarkdownIt:
    # CommonMark without raw HTML; no tables or linkify: a small, predictable language for authors.
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def _image_number(image: Token) -> int | None:
    """N of an `image:N` source; None for any other source."""
    match = IMAGE_REF.match(str(image.attrGet("src") or ""))
    return int(match.group(1)) if match else None


def image_numbers(markdown: str) -> set[int]:
    """The image numbers the text places inline."""
    numbers = set()
    for token in _parser().parse(markdown or ""):
        for child in token.children or []:
            number = _image_number(child) if child.type == "image" else None
            if number is not None:
                numbers.add(number)
    return numbers


def _resolve_images(tokens: Iterable[Token], figures: dict[int, FigureRef]) -> None:
    for token in tokens:
        if token.type in {"heading_open", "heading_close"}:
            # The page has its own h1/h2: an author's "#" becomes h3, "##" h4, the rest h5.
            token.tag = f"h{min(int(token.tag[1]) + 2, 5)}"
        for child in token.children or []:
            if child.type != "image":
                continue
            number = _image_number(child)
            figure = figures.get(number) if number is not None else None
            if figure is None:
                # Unknown or foreign source: show the caption as text, never fetch anything.
                child.type, child.tag, child.nesting = "text", "", 0
                child.content = f"[image not available: {child.content or child.attrGet('src')}]"
                child.children, child.attrs = None, {}
                continue
            child.attrSet("src", figure.url)
            child.attrSet("title", figure.caption)


def _figures_html(figures: Iterable[FigureRef]) -> str:
    parts = []
    for figure in figures:
        caption = nh3.clean_text(figure.caption)
        parts.append(f'<figure><img src="{nh3.clean_text(figure.url)}" alt="{caption}">'
                     f"<figcaption>Figure {figure.number}: {caption}</figcaption></figure>")
    return "".join(parts)


def _url_allowed(element: str, attribute: str, value: str) -> str | None:
    """Images only from this application's image view; no protocol-relative (`//host`) URL."""
    if element == "img" and attribute == "src":
        return value if SERVED_IMAGE.match(value) else None
    if attribute in {"href", "src"} and value.strip()[:2].replace("\\", "/") == "//":
        return None  # "//host" and "/\\host" both lead a browser to another site
    return value


def sanitise(html: str) -> str:
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=LINK_SCHEMES,
                     link_rel="noopener noreferrer", strip_comments=True, attribute_filter=_url_allowed)


def instructions_html(markdown: str, figures: Iterable[FigureRef] = ()) -> str:
    """Sanitised HTML of the instructions, images resolved, unplaced images appended as figures."""
    by_number = {figure.number: figure for figure in figures}
    parser = _parser()
    tokens = parser.parse(markdown or "")
    _resolve_images(tokens, by_number)
    body = parser.renderer.render(tokens, parser.options, {})
    placed = image_numbers(markdown)
    unplaced = [figure for number, figure in sorted(by_number.items()) if number not in placed]
    return sanitise(body + _figures_html(unplaced))


# --- the PDF: blocks of styled runs, no HTML ------------------------------------------------------

@dataclass(frozen=True)
class Block:
    """One paragraph-like block: kind is paragraph, heading, bullet, number, quote, code or figure.

    `runs` are (text, style) pairs, style one of "", "b", "i", "bi", "code": plain text, never markup.
    """

    kind: str
    runs: tuple[tuple[str, str], ...] = ()
    marker: str = ""        # "•" or "3." for list items
    depth: int = 0
    figure: int | None = None

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.runs)


class _Inline:
    """Inline tokens to styled runs; images reported to `on_image`, link targets printed after the text."""

    def __init__(self, on_image: Callable[[int | None, str], None]) -> None:
        self.on_image = on_image
        self.runs: list[tuple[str, str]] = []
        self.bold = self.italic = False
        self.links: list[str] = []

    def style(self) -> str:
        return ("b" if self.bold else "") + ("i" if self.italic else "")

    def feed(self, child: Token) -> None:
        kind = child.type
        if kind == "text":
            self.runs.append((child.content, self.style()))
        elif kind == "code_inline":
            self.runs.append((child.content, "code"))
        elif kind in {"softbreak", "hardbreak"}:
            self.runs.append((" ", self.style()))
        elif kind in {"strong_open", "strong_close"}:
            self.bold = kind == "strong_open"
        elif kind in {"em_open", "em_close"}:
            self.italic = kind == "em_open"
        elif kind == "image":
            self.on_image(_image_number(child), child.content)
        elif kind == "link_open":
            self.links.append(str(child.attrGet("href") or ""))
        elif kind == "link_close" and self.links:
            href = self.links.pop()
            if href:  # paper cannot be clicked: print the target
                self.runs.append((f" ({href})", self.style()))


class _BlockBuilder:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.lists: list[list[int]] = []   # per open list: [next number] or [] for bullets
        self.kind = "paragraph"
        self.marker = ""
        self.placed: set[int] = set()

    def image(self, number: int | None, caption: str) -> None:
        if number is not None:
            self.placed.add(number)
        self.blocks.append(Block("figure", runs=((caption, ""),), figure=number))

    def open(self, token: Token) -> None:
        if token.type == "bullet_list_open":
            self.lists.append([])
        elif token.type == "ordered_list_open":
            self.lists.append([int(token.attrGet("start") or 1)])
        elif token.type == "list_item_open" and self.lists:
            counter = self.lists[-1]
            self.kind, self.marker = ("number", f"{counter[0]}.") if counter else ("bullet", "•")
            if counter:
                counter[0] += 1
        elif token.type == "heading_open":
            self.kind = "heading"
        elif token.type == "blockquote_open":
            self.kind = "quote"

    def close(self, token: Token) -> None:
        if token.type in {"bullet_list_close", "ordered_list_close"} and self.lists:
            self.lists.pop()
        if token.type in {"heading_close", "blockquote_close", "list_item_close"}:
            self.kind, self.marker = "paragraph", ""

    def add(self, token: Token) -> None:
        if token.type == "inline":
            # Figures of a paragraph print right after its text, not before it.
            figures: list[tuple[int | None, str]] = []
            inline = _Inline(lambda number, caption: figures.append((number, caption)))
            for child in token.children or []:
                inline.feed(child)
            if "".join(text for text, _ in inline.runs).strip():
                depth = max(len(self.lists) - 1, 0)
                self.blocks.append(Block(self.kind, runs=tuple(inline.runs), marker=self.marker, depth=depth))
                self.marker = ""  # a second paragraph in the same item carries no marker
            for number, caption in figures:
                self.image(number, caption)
        elif token.type in {"fence", "code_block"}:
            self.blocks.append(Block("code", runs=((token.content.rstrip("\n"), "code"),)))
        elif token.nesting == 1:
            self.open(token)
        elif token.nesting == -1:
            self.close(token)


def instructions_blocks(markdown: str, figure_numbers: Iterable[int] = ()) -> list[Block]:
    """The instructions as printable blocks; images become figure blocks (unplaced ones at the end)."""
    builder = _BlockBuilder()
    for token in _parser().parse(markdown or ""):
        builder.add(token)
    for number in sorted(set(figure_numbers) - builder.placed):
        builder.blocks.append(Block("figure", figure=number))
    return builder.blocks


# --- image files ----------------------------------------------------------------------------------

MAX_IMAGE_BYTES = 2 * 1024 * 1024          # a photo of a label or a diagram; more is a mistake
MAX_IMAGE_PIXELS = 4096 * 4096
_FORMATS = {b"\x89PNG\r\n\x1a\n": ("PNG", "image/png", "png"), b"\xff\xd8\xff": ("JPEG", "image/jpeg", "jpg")}


class ImageRefused(ValueError):
    """The upload is not an image we accept; the message tells the author why."""


@dataclass(frozen=True)
class ImageFacts:
    content_type: str
    extension: str
    sha256: str
    size: int
    width: int
    height: int


def _decoded_size(content: bytes, expected: str) -> tuple[int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(content)) as image:
                if image.format != expected:
                    raise ImageRefused(f"The file claims to be {expected} but is not.")
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageRefused(f"The image is too large ({width}×{height} pixels; 4096×4096 at most).")
                image.load()  # decode it whole: a truncated or corrupt file is refused now, not on a tablet
        except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombWarning,
                Image.DecompressionBombError) as error:
            raise ImageRefused("The file is not a readable PNG or JPEG image.") from error
    return width, height


def image_inspect(content: bytes) -> ImageFacts:
    """Check an upload by its content: PNG or JPEG only, size-capped, fully decodable."""
    if not content:
        raise ImageRefused("The file is empty.")
    if len(content) > MAX_IMAGE_BYTES:
        raise ImageRefused(f"The image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB.")
    kind = next((value for magic, value in _FORMATS.items() if content.startswith(magic)), None)
    if kind is None:
        raise ImageRefused("Only PNG and JPEG images are accepted.")
    width, height = _decoded_size(content, kind[0])
    return ImageFacts(content_type=kind[1], extension=kind[2], sha256=hashlib.sha256(content).hexdigest(),
                      size=len(content), width=width, height=height)


@dataclass(frozen=True)
class StoredImage:
    name: str
    repaired: bool  # the file under this hash had been altered on disk and was replaced by these bytes


def image_store(content: bytes, facts: ImageFacts) -> StoredImage:
    """Store the bytes once under their hash (not public: served by a logged-in view only).

    A file found altered under the hash is replaced by the genuine bytes, and the caller records
    that it was (the altered file is evidence: it must not vanish without an audit entry)."""
    name = f"instruction-images/{facts.sha256}.{facts.extension}"
    repaired = default_storage.exists(name) and not _stored_intact(name, facts.sha256)
    if repaired:
        log.warning("instruction image %s did not match its SHA-256 and is replaced by the uploaded bytes", name)
        default_storage.delete(name)
    if not default_storage.exists(name):
        stored = default_storage.save(name, ContentFile(content))
        if stored != name:  # a concurrent upload of the same bytes won: keep one file
            default_storage.delete(stored)
    return StoredImage(name, repaired)


def _stored_intact(name: str, sha256: str) -> bool:
    with default_storage.open(name, "rb") as stored:
        return hashlib.sha256(stored.read()).hexdigest() == sha256


def image_read(name: str, sha256: str) -> bytes:
    """The stored bytes, refused if they no longer match the hash the version was signed with."""
    with default_storage.open(name, "rb") as stored:
        content = stored.read()
    if hashlib.sha256(content).hexdigest() != sha256:
        raise ImageRefused(f"{name} does not match its recorded SHA-256: the file was altered.")
    return content
