"""Text people typed, made safe to store and show.

Names and other free text lose control characters (a NUL, an escape sequence, a C1 control)
and the Unicode bidirectional overrides and isolates that make a name display as something
else (U+202E turns "Ada\u202Egnp.exe" around); white space of any kind becomes one space. Joiners
that scripts need (U+200C, U+200D) stay.
"""

from __future__ import annotations

import re

_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u202a-\u202e\u2066-\u2069\ufeff]"
)


def clean_text(value: str) -> str:
    """`value` without control or direction-override characters, white space collapsed."""
    return " ".join(_INVISIBLE.sub("", value).split())
