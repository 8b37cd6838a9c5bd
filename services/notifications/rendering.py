"""Messages rendered from Jinja2 templates: a subject, a plain-text and an HTML part.

Templates live beside this module as `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`;
HTML is autoescaped, so a display name can never inject markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str


def render(kind: str, context: dict[str, Any]) -> RenderedMessage:
    return RenderedMessage(
        subject=_environment.get_template(f"{kind}.subject.txt").render(context).strip(),
        text=_environment.get_template(f"{kind}.txt").render(context),
        html=_environment.get_template(f"{kind}.html").render(context),
    )
