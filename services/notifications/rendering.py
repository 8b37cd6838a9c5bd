"""Messages rendered from Jinja2 templates: a subject, a short summary, plain text and HTML.

Each kind has one file, `templates/<kind>.jinja`, with the blocks `subject`, `summary` (the
in-app and webhook line), `text` and `html` (autoescaped, so a display name can never inject
markup). A network may override any block with its own wording and branding; overrides are
stored per network and rendered in Jinja2's sandbox, after a validation that renders them
against a sample of everything the kind's templates may use, so a mistake is refused when it
is saved, not discovered when a message fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

TEMPLATES = Path(__file__).parent / "templates"
PARTS = ("subject", "summary", "text", "html")
MAX_OVERRIDE_CHARS = 50_000

_options: dict[str, Any] = dict(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_defaults = Environment(
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False), **_options
)
_sandbox_text = SandboxedEnvironment(autoescape=False, **_options)
_sandbox_html = SandboxedEnvironment(autoescape=True, **_options)


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    summary: str
    text: str
    html: str
    title: str = ""  # the in-app headline: the `title` block, or the subject

    @property
    def headline(self) -> str:
        return self.title or self.subject


def _render_block(kind: str, part: str, context: dict[str, Any]) -> str:
    template = _defaults.get_template(f"{kind}.jinja")
    return "".join(template.blocks[part](template.new_context(context)))


def _environment(part: str) -> SandboxedEnvironment:
    return _sandbox_html if part == "html" else _sandbox_text


def render(kind: str, context: dict[str, Any], overrides: dict[str, str] | None = None) -> RenderedMessage:
    parts: dict[str, str] = {}
    for part in PARTS:
        source = (overrides or {}).get(part)
        if source:
            parts[part] = _environment(part).from_string(source).render(context)
        else:
            parts[part] = _render_block(kind, part, context)
    title = ""
    if not (overrides or {}).get("subject"):
        template = _defaults.get_template(f"{kind}.jinja")
        if "title" in template.blocks:
            title = " ".join(_render_block(kind, "title", context).split())
    return RenderedMessage(
        title=title,
        subject=" ".join(parts["subject"].split()),
        summary=" ".join(parts["summary"].split()),
        text=parts["text"].strip() + "\n",
        html=parts["html"].strip() + "\n",
    )


class InvalidTemplate(ValueError):
    pass


def validate_override(kind: str, overrides: dict[str, str], sample: dict[str, Any]) -> None:
    """Refuse an override that does not parse, escapes the sandbox or uses a name the kind
    does not provide (rendered against the sample with undefined names as errors)."""
    for part, source in overrides.items():
        if len(source) > MAX_OVERRIDE_CHARS:
            raise InvalidTemplate(f"{part}: longer than {MAX_OVERRIDE_CHARS} characters")
        try:
            rendered = _environment(part).from_string(source).render(sample)
        except TemplateError as exc:
            where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
            raise InvalidTemplate(f"{part}{where}: {exc.message or exc}") from exc
        except Exception as exc:  # anything a template can raise while rendering
            raise InvalidTemplate(f"{part}: {exc}") from exc
        if part in ("subject", "summary") and not rendered.strip():
            raise InvalidTemplate(f"{part}: renders to nothing")
