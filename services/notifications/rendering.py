"""Messages rendered from Jinja2 templates: a subject, a short summary, plain text and HTML.

Each kind has one file, `templates/<kind>.jinja`, with the blocks `subject`, `summary` (the
in-app and webhook line), `text` and `html` (autoescaped, so a display name can never inject
markup). A network may override any block with its own wording and branding; overrides are
stored per network and rendered in Jinja2's sandbox in a child process with time, output and
memory limits (sandbox.py), after a validation that renders them against a sample of everything
the kind's templates may use, so a mistake or a template over the limits is refused when it is
saved, not discovered when a message fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notifications.sandbox import TemplateFailed, TemplateSandbox

TEMPLATES = Path(__file__).parent / "templates"
PARTS = ("subject", "summary", "text", "html")
MAX_OVERRIDE_CHARS = 20_000  # per part; the API refuses longer ones with a 422

_options: dict[str, Any] = dict(
    loader=FileSystemLoader(TEMPLATES),
    auto_reload=False,  # the templates ship with the code: no stat() of each file per render
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_defaults = Environment(
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False), **_options
)


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


def render(kind: str, context: dict[str, Any], overridden: dict[str, str] | None = None) -> RenderedMessage:
    """The message from the kind's own templates, except the parts in `overridden` (a
    network's override, already rendered in the sandbox)."""
    parts: dict[str, str] = {}
    for part in PARTS:
        if overridden and part in overridden:
            parts[part] = overridden[part]
        else:
            parts[part] = _render_block(kind, part, context)
    title = ""
    if not (overridden or {}).get("subject"):
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


async def validate_override(sandbox: TemplateSandbox, overrides: dict[str, str],
                            sample: dict[str, Any]) -> None:
    """Refuse an override that does not parse, escapes the sandbox, uses a name the kind does
    not provide (rendered against the sample with undefined names as errors), or exceeds the
    size, time, output or memory limits."""
    for part, source in overrides.items():
        if len(source) > MAX_OVERRIDE_CHARS:
            raise InvalidTemplate(f"{part}: longer than {MAX_OVERRIDE_CHARS:,} characters")
    try:
        rendered = await sandbox.render(overrides, sample)
    except TemplateFailed as exc:
        raise InvalidTemplate(str(exc)) from exc
    for part in ("subject", "summary"):
        if part in rendered and not rendered[part].strip():
            raise InvalidTemplate(f"{part}: renders to nothing")
