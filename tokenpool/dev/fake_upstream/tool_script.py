"""What the fake upstream answers when tools are in play: the same rule for all three dialects.

* The current turn carries tool results → a final answer listing them:
  ``Tool results: <id>=<content>; ...`` (so a test sees each result arrived whole).
* Else, tools are offered and the prompt says ``call <tool>`` (optionally followed by a JSON
  object: the arguments) → one tool call per such phrase, in order: several are parallel calls.
  ``preamble`` (a setting, empty by default) is said before the calls.
* Else → the configured answer text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_CALL = re.compile(r"\bcall ([A-Za-z0-9_.:-]+)")
_DECODER = json.JSONDecoder()


@dataclass
class Script:
    text: str
    calls: list[tuple[str, str]] = field(default_factory=list)  # (tool name, arguments JSON)


def find_calls(prompt: str, tools: list[Any]) -> list[tuple[str, str]]:
    calls = []
    for m in _CALL.finditer(prompt):
        name = m.group(1).rstrip(".:")
        if name not in tools:
            continue
        rest = prompt[m.end() :].lstrip()
        args = "{}"
        if rest.startswith("{"):
            try:
                value, _ = _DECODER.raw_decode(rest)
                args = json.dumps(value, separators=(",", ":"))
            except ValueError:
                pass
        calls.append((name, args))
    return calls


def plan(
    tools: list[Any], prompt: str, results: list[tuple[Any, Any]], answer: str, preamble: str = ""
) -> Script:
    """``tools`` (names) and ``results`` ((call id, content)) as found in a request."""
    if results:
        return Script("Tool results: " + "; ".join(f"{rid}={content}" for rid, content in results))
    calls = find_calls(prompt, tools) if tools else []
    if calls:
        return Script(preamble, calls)
    return Script(answer)


def split(text: str, pieces: int) -> list[str]:
    """``text`` in ``pieces`` parts (at least one, the last ones possibly empty)."""
    pieces = max(1, pieces)
    size = -(-len(text) // pieces) or 1
    parts = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    return parts + [""] * (pieces - len(parts))
