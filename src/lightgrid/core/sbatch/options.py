"""sbatch options: one table of the options lightgrid acts on, applied to a `JobSpec`.

The same code applies ``#SBATCH`` directives and command-line overrides (``lightgrid
submit -p gpu script.sh``); applied later, an option replaces what an earlier one set,
so the command line overrides the script as it does for sbatch. Options lightgrid does
not act on are kept in `JobSpec.unknown`, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lightgrid.core.errors import InvalidRequest
from lightgrid.core.jobs import JobSpec, UnknownDirective
from lightgrid.core.sbatch.values import (
    MAX_CPUS_PER_TASK,
    MAX_GPUS_PER_NODE,
    MAX_NODES,
    MAX_TASKS,
    parse_array,
    parse_count,
    parse_dependency,
    parse_gpus,
    parse_mem,
    parse_time,
    q,
    split_gres,
)

#: Line number used for options that come from the command line rather than a script.
COMMAND_LINE = 0

_Handler = Callable[[JobSpec, str, int], None]


@dataclass(frozen=True, slots=True)
class _Option:
    long: str
    short: str | None
    field: str
    handler: _Handler | None  # None: a flag without a value
    flag: bool = False


def _text(value: str, *, what: str, spaces: bool = True) -> str:
    if not value.strip():
        raise InvalidRequest(f"{what} must not be empty")
    if any(c in value for c in "\0\n\r"):
        raise InvalidRequest(f"{what} must be a single line")
    if not spaces and any(c.isspace() for c in value):
        raise InvalidRequest(f"{q(value)}: {what} must not contain spaces")
    if len(value) > 4096:
        raise InvalidRequest(f"{what} is longer than 4096 characters")
    return value


def _name(spec: JobSpec, value: str, line: int) -> None:
    spec.name = _text(value, what="the job name")


def _partition(spec: JobSpec, value: str, line: int) -> None:
    spec.partition = _text(value, what="the partition", spaces=False)


def _account(spec: JobSpec, value: str, line: int) -> None:
    spec.account = _text(value, what="the account", spaces=False)


def _qos(spec: JobSpec, value: str, line: int) -> None:
    spec.qos = _text(value, what="the QOS", spaces=False)


def _nodes(spec: JobSpec, value: str, line: int) -> None:
    text = value.strip()
    low_text, dash, high_text = text[1:].partition("-")
    if dash:  # MIN-MAX: lightgrid allocates the minimum
        low = parse_count(text[0] + low_text, what="nodes", maximum=MAX_NODES)
        high = parse_count(high_text, what="nodes", maximum=MAX_NODES)
        if high < low:
            raise InvalidRequest(f"{q(value)}: the maximum node count is below the minimum")
        spec.nodes = low
    else:
        spec.nodes = parse_count(text, what="nodes", maximum=MAX_NODES)


def _ntasks(spec: JobSpec, value: str, line: int) -> None:
    spec.ntasks = parse_count(value, what="tasks", maximum=MAX_TASKS)


def _cpus_per_task(spec: JobSpec, value: str, line: int) -> None:
    spec.cpus_per_task = parse_count(value, what="CPUs per task", maximum=MAX_CPUS_PER_TASK)


def _mem(spec: JobSpec, value: str, line: int) -> None:
    spec.mem_per_node = parse_mem(value)
    spec.mem_per_cpu = None


def _mem_per_cpu(spec: JobSpec, value: str, line: int) -> None:
    mib = parse_mem(value)
    if mib == 0:
        raise InvalidRequest("0 memory per CPU makes no sense (use --mem=0 for all the "
                             "memory of each node)")
    spec.mem_per_cpu = mib
    spec.mem_per_node = None


def _gres(spec: JobSpec, value: str, line: int) -> None:
    gpu, others = split_gres(value)
    if gpu is not None:
        spec.gpu_type, spec.gpus_per_node = gpu
    else:
        spec.gpus_per_node = 0
        if not spec.gpus_total:
            spec.gpu_type = None
    spec.unknown.extend(UnknownDirective(line, f"--gres={other}") for other in others)


def _gpus(spec: JobSpec, value: str, line: int) -> None:
    gpu_type, count = parse_gpus(value)
    spec.gpus_total = count
    spec.gpu_type = gpu_type or spec.gpu_type


def _gpus_per_node(spec: JobSpec, value: str, line: int) -> None:
    gpu_type, count = parse_gpus(value)
    if count > MAX_GPUS_PER_NODE:
        raise InvalidRequest(f"{count} GPUs per node is more than the maximum of "
                             f"{MAX_GPUS_PER_NODE}")
    spec.gpus_per_node = count
    spec.gpu_type = gpu_type or spec.gpu_type


def _time(spec: JobSpec, value: str, line: int) -> None:
    spec.time_limit = parse_time(value)


def _output(spec: JobSpec, value: str, line: int) -> None:
    spec.stdout = _text(value, what="the output file")


def _error(spec: JobSpec, value: str, line: int) -> None:
    spec.stderr = _text(value, what="the error file")


def _array(spec: JobSpec, value: str, line: int) -> None:
    spec.array = parse_array(value)


def _chdir(spec: JobSpec, value: str, line: int) -> None:
    spec.chdir = _text(value, what="the working directory")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _export(spec: JobSpec, value: str, line: int) -> None:
    items = [item.strip() for item in value.split(",")]
    out: list[str] = []
    for item in items:
        if item.upper() in ("ALL", "NONE"):
            out.append(item.upper())
            continue
        name = item.partition("=")[0]
        if not _ENV_NAME.fullmatch(name):
            raise InvalidRequest(f"{q(value)}: {q(item)} is not ALL, NONE or "
                                 "NAME[=value] with a valid variable name")
        out.append(item)
    spec.export = ",".join(out)


def _dependency(spec: JobSpec, value: str, line: int) -> None:
    spec.dependencies = parse_dependency(value)


def _comment(spec: JobSpec, value: str, line: int) -> None:
    if any(c in value for c in "\0\n\r"):
        raise InvalidRequest("the comment must be a single line")
    spec.comment = value


_OPTIONS = (
    _Option("job-name", "J", "name", _name),
    _Option("partition", "p", "partition", _partition),
    _Option("account", "A", "account", _account),
    _Option("qos", "q", "qos", _qos),
    _Option("nodes", "N", "nodes", _nodes),
    _Option("ntasks", "n", "ntasks", _ntasks),
    _Option("cpus-per-task", "c", "cpus_per_task", _cpus_per_task),
    _Option("mem", None, "mem_per_node", _mem),
    _Option("mem-per-cpu", None, "mem_per_cpu", _mem_per_cpu),
    _Option("gres", None, "gpus_per_node", _gres),
    _Option("gpus", "G", "gpus_total", _gpus),
    _Option("gpus-per-node", None, "gpus_per_node", _gpus_per_node),
    _Option("time", "t", "time_limit", _time),
    _Option("output", "o", "stdout", _output),
    _Option("error", "e", "stderr", _error),
    _Option("array", "a", "array", _array),
    _Option("chdir", "D", "chdir", _chdir),
    _Option("export", None, "export", _export),
    _Option("dependency", "d", "dependencies", _dependency),
    _Option("comment", None, "comment", _comment),
    _Option("exclusive", None, "exclusive", None, flag=True),
)
_LONG = {opt.long: opt for opt in _OPTIONS}
_SHORT = {opt.short: opt for opt in _OPTIONS if opt.short}

#: sbatch options lightgrid does not act on that take no value, so that the word after
#: them is not mistaken for their value.
_UNKNOWN_LONG_FLAGS = frozenset({
    "contiguous", "hold", "ignore-pbs", "no-requeue", "overcommit", "oversubscribe",
    "parsable", "quiet", "reboot", "requeue", "spread-job", "test-only", "use-min-nodes",
    "verbose", "wait", "no-kill", "get-user-env", "help", "usage", "version",
})
_UNKNOWN_SHORT_FLAGS = frozenset("hHkOQsvVW")

#: The options lightgrid acts on, by long name.
SUPPORTED_OPTIONS = tuple(sorted(_LONG))


def _lookup(option: str) -> _Option | None:
    if option.startswith("--"):
        return _LONG.get(option[2:])
    if option.startswith("-") and len(option) == 2:
        return _SHORT.get(option[1])
    return _LONG.get(option)


def apply_option(spec: JobSpec, option: str, value: str | None, *,
                 line: int = COMMAND_LINE) -> None:
    """Apply one option (``--time``, ``-t`` or ``time``) with its value to `spec`.

    Options lightgrid does not act on are appended to ``spec.unknown`` with `line`
    (0 for the command line). Raises `InvalidRequest` naming the option, with
    `field` set to the `JobSpec` field.
    """
    opt = _lookup(option)
    if opt is None:
        text = option if value is None else (
            f"{option}={value}" if option.startswith("--") else f"{option} {value}")
        spec.unknown.append(UnknownDirective(line, text))
        return
    name = f"--{opt.long}"
    if opt.flag:
        if value is None:
            spec.exclusive = True
        else:  # --exclusive=user|mcs shares nodes in ways lightgrid does not model
            spec.unknown.append(UnknownDirective(line, f"{name}={value}"))
        return
    if value is None:
        raise InvalidRequest(f"{name} needs a value", field=opt.field)
    assert opt.handler is not None
    try:
        opt.handler(spec, value, line)
    except InvalidRequest as exc:
        raise type(exc)(f"{name}: {exc.message}", field=opt.field) from None


def apply_words(spec: JobSpec, words: Sequence[str], *,
                line: int = COMMAND_LINE) -> list[str]:
    """Apply the options in `words` (an argv-like list) in order, as getopt reads them.

    Returns the long names of the options applied. Words that are not options are
    refused on the command line and kept as unknown in a script (as sbatch ignores them).
    """
    applied: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        option: str
        value: str | None = None
        if word.startswith("--") and len(word) > 2:
            option, eq, rest = word.partition("=")
            opt = _lookup(option)
            if eq:
                value = rest
            elif (opt is not None and not opt.flag) or (
                    opt is None and option[2:] not in _UNKNOWN_LONG_FLAGS
                    and nxt is not None and not nxt.startswith("-")):
                value, i = nxt, i + 1
        elif word.startswith("-") and len(word) > 1 and word != "--":
            option, rest = word[:2], word[2:]
            opt = _lookup(option)
            if rest:
                value = rest
            elif (opt is not None and not opt.flag) or (
                    opt is None and word[1] not in _UNKNOWN_SHORT_FLAGS):
                value, i = nxt, i + 1
            if opt is None and word[1] in _UNKNOWN_SHORT_FLAGS:
                option, value = word, None
        else:
            if line == COMMAND_LINE:
                raise InvalidRequest(f"unexpected argument {q(word)}: only options are "
                                     "allowed here")
            spec.unknown.append(UnknownDirective(
                line, f"{word} (ignored: not an option)"))
            i += 1
            continue
        apply_option(spec, option, value, line=line)
        if opt is not None:
            applied.append(opt.long)
        i += 1
    return applied


def parse_args(args: list[str], spec: JobSpec) -> JobSpec:
    """Apply command-line options to `spec` (usually parsed from a script) and return it.

    Options given here replace what the script's directives set, as with sbatch.
    """
    apply_words(spec, args, line=COMMAND_LINE)
    return spec
