"""Reading ``#SBATCH`` directives from a batch script, as sbatch does.

Directives are read from the top of the script until the first line that is neither
blank nor a comment (the ``#!`` line is a comment). Each directive line is split into
words as a shell would (quotes, backslashes; an unquoted ``#`` at the start of a word
begins a comment) and may hold several options.
"""

from __future__ import annotations

from lightgrid.core.errors import InvalidRequest
from lightgrid.core.jobs import JobSpec, UnknownDirective
from lightgrid.core.sbatch.options import apply_words

DIRECTIVE = "#SBATCH"


class ScriptError(InvalidRequest):
    """A batch script that cannot be read; `line` is the 1-based line at fault."""

    def __init__(self, message: str, *, line: int, field: str | None = None) -> None:
        super().__init__(f"line {line}: {message}", field=field)
        self.line = line

    def to_dict(self) -> dict[str, object]:
        return super().to_dict() | {"line": self.line}


def split_words(text: str) -> list[str]:
    """Split one directive line into words with shell quoting rules.

    Raises `InvalidRequest` for an unterminated quote or a trailing backslash.
    """
    words: list[str] = []
    word: list[str] = []
    started = False
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = None
            else:
                word.append(ch)
        elif quote == '"':
            if ch == '"':
                quote = None
            elif ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\$`':
                i += 1
                word.append(text[i])
            else:
                word.append(ch)
        elif ch in "'\"":
            quote, started = ch, True
        elif ch == "\\":
            if i + 1 >= len(text):
                raise InvalidRequest("the line ends with a backslash")
            i += 1
            word.append(text[i])
            started = True
        elif ch.isspace():
            if started:
                words.append("".join(word))
                word, started = [], False
        elif ch == "#" and not started:
            break
        else:
            word.append(ch)
            started = True
        i += 1
    if quote:
        raise InvalidRequest(f"a {quote} quote is not closed")
    if started:
        words.append("".join(word))
    return words


def parse_script(text: str) -> JobSpec:
    """Parse a batch script into a `JobSpec` with ``script`` set to `text`.

    Directives that lightgrid does not act on, and ``#SBATCH`` lines that sbatch would
    ignore (after the first command, or indented), are kept in ``spec.unknown`` with
    their line numbers. Raises `ScriptError` naming the line and the directive.
    """
    lines = text.split("\n")
    for number, raw in enumerate(lines, 1):
        if "\0" in raw:
            raise ScriptError("the script contains a NUL byte", line=number, field="script")
        if raw.endswith("\r"):
            raise ScriptError("the script has DOS line breaks (\\r\\n); convert it with "
                              "dos2unix", line=number, field="script")
    if not lines[0].startswith("#!"):
        raise ScriptError("a batch script must start with #! and an interpreter, "
                          "e.g. #!/bin/bash", line=1, field="script")
    spec = JobSpec(script=text)
    in_header = True
    memory_lines: dict[str, int] = {}
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if in_header and stripped and not stripped.startswith("#"):
            in_header = False
        if not stripped.startswith(DIRECTIVE):
            continue
        rest = stripped[len(DIRECTIVE):]
        if rest and not rest[0].isspace():
            continue  # e.g. "#SBATCHX": a comment, not a directive
        if not in_header:
            spec.unknown.append(UnknownDirective(
                number, f"{stripped} (ignored: it follows the first command, and "
                        "directives are read only before it)"))
            continue
        if not raw.startswith(DIRECTIVE):
            spec.unknown.append(UnknownDirective(
                number, f"{stripped} (ignored: #SBATCH must start at the beginning "
                        "of the line)"))
            continue
        try:
            applied = apply_words(spec, split_words(rest), line=number)
        except InvalidRequest as exc:
            raise ScriptError(exc.message, line=number, field=exc.field) from None
        for name in applied:
            if name in ("mem", "mem-per-cpu"):
                memory_lines[name] = number
        if len(memory_lines) == 2:
            raise ScriptError(f"--mem (line {memory_lines['mem']}) and --mem-per-cpu "
                              f"(line {memory_lines['mem-per-cpu']}) are mutually "
                              "exclusive; give one of them", line=number,
                              field="mem_per_node")
    return spec
