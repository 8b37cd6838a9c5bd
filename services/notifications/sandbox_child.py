"""The child process that renders network template overrides (see sandbox.py).

Reads one JSON request per line on stdin ({"parts": {name: source}, "context": {...}}) and
writes one JSON answer per line on stdout ({"parts": {name: text}} or {"error": ..., "part":
...}). It renders in Jinja2's sandbox, refuses arithmetic whose result would be huge before
computing it (`9**9**9`, `'a' * 10**9`), stops any part at the output limit, and runs under an
address-space limit, so what the parent must still stop by killing it is only a template that
takes too long.
"""

from __future__ import annotations

import json
import numbers
import resource
import sys
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

MAX_EXPONENT = 1000


class OutputTooLarge(Exception):
    pass


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else None


class LimitedSandbox(SandboxedEnvironment):
    """The sandbox, with the few operators that can build an enormous value in one step
    checked before they run (a thread or a time limit cannot interrupt them)."""

    intercepted_binops = frozenset(["*", "**", "+"])

    def __init__(self, max_output: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_output = max_output

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, numbers.Real) and isinstance(left, numbers.Real):
            if abs(right) > MAX_EXPONENT and abs(left) > 1:
                raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed in a template")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                size = _size(sequence)
                if size is not None and isinstance(times, int) and size * times > self.max_output:
                    raise OutputTooLarge()
        if operator == "+":
            sizes = (_size(left), _size(right))
            if None not in sizes and sum(sizes) > self.max_output:  # type: ignore[arg-type]
                raise OutputTooLarge()
        return super().call_binop(context, operator, left, right)


def render_parts(parts: dict[str, str], context: dict[str, Any], max_output: int) -> dict[str, Any]:
    environments = {escape: LimitedSandbox(max_output, autoescape=escape, undefined=StrictUndefined,
                                           keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
                    for escape in (False, True)}
    rendered: dict[str, str] = {}
    for part, source in parts.items():
        try:
            template = environments[part == "html"].from_string(source)
            chunks, total = [], 0
            for chunk in template.generate(context):
                total += len(chunk)
                if total > max_output:
                    raise OutputTooLarge()
                chunks.append(chunk)
            rendered[part] = "".join(chunks)
        except OutputTooLarge:
            return {"error": f"renders more than {max_output:,} characters", "part": part, "limit": True}
        except MemoryError:
            return {"error": "needs more memory than a template may use", "part": part, "limit": True}
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            return {"error": str(exc.message or exc), "part": part, "line": line}
        except Exception as exc:  # anything a template can raise while rendering
            return {"error": f"{type(exc).__name__}: {exc}", "part": part}
    return {"parts": rendered}


def main() -> None:
    max_output, memory_mb = int(sys.argv[1]), int(sys.argv[2])
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.stdout.write('{"ready": true}\n')  # imports done: the parent's time limit starts per render
    sys.stdout.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        answer = render_parts(request["parts"], request["context"], max_output)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if answer.get("limit"):
            return  # a process that hit a limit may hold a fragmented heap: start a fresh one


if __name__ == "__main__":
    main()
