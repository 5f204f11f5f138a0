"""Slurm batch scripts and sbatch options, parsed into `lightgrid.core.jobs.JobSpec`.

`parse_script` reads ``#SBATCH`` directives as sbatch does; `parse_args` applies
command-line options over them. The value parsers are exported for other callers
(the JSON API, the CLI). Pure: no I/O.
"""

from lightgrid.core.sbatch.options import (
    COMMAND_LINE,
    SUPPORTED_OPTIONS,
    apply_option,
    apply_words,
    parse_args,
)
from lightgrid.core.sbatch.script import ScriptError, parse_script, split_words
from lightgrid.core.sbatch.values import (
    MAX_ARRAY_INDEX,
    MAX_ARRAY_TASKS,
    MAX_MEM,
    MAX_NODES,
    MAX_TIME,
    MEM_WHOLE_NODE,
    format_time,
    parse_array,
    parse_dependency,
    parse_gpus,
    parse_gres,
    parse_mem,
    parse_time,
    split_gres,
)

__all__ = [
    "COMMAND_LINE",
    "MAX_ARRAY_INDEX",
    "MAX_ARRAY_TASKS",
    "MAX_MEM",
    "MAX_NODES",
    "MAX_TIME",
    "MEM_WHOLE_NODE",
    "SUPPORTED_OPTIONS",
    "ScriptError",
    "apply_option",
    "apply_words",
    "format_time",
    "parse_args",
    "parse_array",
    "parse_dependency",
    "parse_gpus",
    "parse_gres",
    "parse_mem",
    "parse_script",
    "parse_time",
    "split_gres",
    "split_words",
]
