"""parse_script, apply_option and parse_args of lightgrid.core.sbatch."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightgrid.core.errors import InvalidRequest
from lightgrid.core.jobs import ArraySpec, Dependency, DependencyKind, JobSpec, UnknownDirective
from lightgrid.core.sbatch import (
    MEM_WHOLE_NODE,
    ScriptError,
    apply_option,
    parse_args,
    parse_script,
    split_words,
)


def script(*directives: str, body: str = "srun hostname\n") -> str:
    return "#!/bin/bash\n" + "".join(f"{d}\n" for d in directives) + body


@pytest.mark.parametrize(("directive", "field", "expected"), [
    # the four option forms
    ("#SBATCH --nodes=3", "nodes", 3),
    ("#SBATCH --nodes 3", "nodes", 3),
    ("#SBATCH -N 3", "nodes", 3),
    ("#SBATCH -N3", "nodes", 3),
    # every directive
    ("#SBATCH -J train", "name", "train"),
    ("#SBATCH --job-name=train", "name", "train"),
    ('#SBATCH --job-name="my run"', "name", "my run"),
    ("#SBATCH --job-name='my run'", "name", "my run"),
    ("#SBATCH -J my\\ run", "name", "my run"),
    ("#SBATCH -p gpu", "partition", "gpu"),
    ("#SBATCH --partition=gpu", "partition", "gpu"),
    ("#SBATCH -A lab42", "account", "lab42"),
    ("#SBATCH --account lab42", "account", "lab42"),
    ("#SBATCH -q high", "qos", "high"),
    ("#SBATCH --qos=high", "qos", "high"),
    ("#SBATCH -N 2-8", "nodes", 2),
    ("#SBATCH -n 16", "ntasks", 16),
    ("#SBATCH --ntasks=16", "ntasks", 16),
    ("#SBATCH -c 4", "cpus_per_task", 4),
    ("#SBATCH --cpus-per-task=4", "cpus_per_task", 4),
    ("#SBATCH --mem=16G", "mem_per_node", 16384),
    ("#SBATCH --mem 4000", "mem_per_node", 4000),
    ("#SBATCH --mem=0", "mem_per_node", MEM_WHOLE_NODE),
    ("#SBATCH --mem-per-cpu=2G", "mem_per_cpu", 2048),
    ("#SBATCH --gres=gpu:a100:2", "gpus_per_node", 2),
    ("#SBATCH --gres=gpu:a100:2", "gpu_type", "a100"),
    ("#SBATCH --gpus=4", "gpus_total", 4),
    ("#SBATCH -G v100:8", "gpus_total", 8),
    ("#SBATCH -G v100:8", "gpu_type", "v100"),
    ("#SBATCH --gpus-per-node=2", "gpus_per_node", 2),
    ("#SBATCH -t 90", "time_limit", 90 * 60),
    ("#SBATCH --time=1-00:00:00", "time_limit", 86400),
    ("#SBATCH --time=UNLIMITED", "time_limit", None),
    ("#SBATCH -o out-%j.txt", "stdout", "out-%j.txt"),
    ("#SBATCH --output=out-%j.txt", "stdout", "out-%j.txt"),
    ("#SBATCH -e err-%j.txt", "stderr", "err-%j.txt"),
    ("#SBATCH --error=err-%j.txt", "stderr", "err-%j.txt"),
    ("#SBATCH --output=run#1.out", "stdout", "run#1.out"),  # '#' inside a word stays
    ("#SBATCH -a 0-3%2", "array", ArraySpec((0, 1, 2, 3), 2)),
    ("#SBATCH --array=1,5", "array", ArraySpec((1, 5))),
    ("#SBATCH -D /scratch/run", "chdir", "/scratch/run"),
    ("#SBATCH --chdir=/scratch/run", "chdir", "/scratch/run"),
    ("#SBATCH --export=NONE", "export", "NONE"),
    ("#SBATCH --export=all", "export", "ALL"),
    ("#SBATCH --export=ALL,OMP_NUM_THREADS=4", "export", "ALL,OMP_NUM_THREADS=4"),
    ("#SBATCH --export=HOME,PATH", "export", "HOME,PATH"),
    ("#SBATCH -d afterok:7", "dependencies",
     [Dependency(DependencyKind.AFTEROK, ("7",))]),
    ("#SBATCH --dependency=afterok:7:8,afternotok:9", "dependencies",
     [Dependency(DependencyKind.AFTEROK, ("7", "8")),
      Dependency(DependencyKind.AFTERNOTOK, ("9",))]),
    ("#SBATCH --exclusive", "exclusive", True),
    ("#SBATCH --comment='nightly build'", "comment", "nightly build"),
    # trailing comments
    ("#SBATCH -N 2  # two nodes", "nodes", 2),
    ("#SBATCH --job-name=a#b", "name", "a#b"),
    ('#SBATCH --job-name="a # b" # c', "name", "a # b"),
])
def test_directive_sets_field(directive: str, field: str, expected: Any) -> None:
    spec = parse_script(script(directive))
    assert getattr(spec, field) == expected
    assert spec.unknown == []


def test_mem_and_mem_per_cpu_replace_each_other_on_the_command_line() -> None:
    spec = parse_script(script("#SBATCH --mem=8G"))
    parse_args(["--mem-per-cpu=1G"], spec)
    assert (spec.mem_per_node, spec.mem_per_cpu) == (None, 1024)


def test_several_options_on_one_line() -> None:
    spec = parse_script(script("#SBATCH -N 2 -n 8 --time=30 -J 'a b'"))
    assert (spec.nodes, spec.ntasks, spec.time_limit, spec.name) == (2, 8, 1800, "a b")


def test_script_is_kept_and_defaults_stay() -> None:
    text = script()
    spec = parse_script(text)
    assert spec.script == text
    assert spec == JobSpec(script=text)


@pytest.mark.parametrize(("directive", "text"), [
    ("#SBATCH --mail-type=END", "--mail-type=END"),
    ("#SBATCH --constraint=x", "--constraint=x"),
    ("#SBATCH -C gpu", "-C gpu"),
    ("#SBATCH --requeue", "--requeue"),
    ("#SBATCH --exclusive=user", "--exclusive=user"),
    ("#SBATCH --gres=shard:1", "--gres=shard:1"),
    ("#SBATCH stray", "stray (ignored: not an option)"),
])
def test_unknown_directive_kept_with_line_number(directive: str, text: str) -> None:
    spec = parse_script(script("#SBATCH -N 1", directive))
    assert spec.unknown == [UnknownDirective(3, text)]


def test_unknown_flag_does_not_swallow_next_option() -> None:
    spec = parse_script(script("#SBATCH --requeue -N 4"))
    assert spec.nodes == 4
    assert spec.unknown == [UnknownDirective(2, "--requeue")]


def test_gres_list_keeps_gpu_and_reports_others() -> None:
    spec = parse_script(script("#SBATCH --gres=gpu:a100:2,shard:1"))
    assert (spec.gpu_type, spec.gpus_per_node) == ("a100", 2)
    assert spec.unknown == [UnknownDirective(2, "--gres=shard:1")]


def test_directives_after_first_command_are_reported_not_applied() -> None:
    text = ("#!/bin/bash\n"
            "# a comment\n"
            "\n"
            "#SBATCH -N 2\n"
            "module load gcc\n"
            "#SBATCH -N 8\n"
            "srun ./a.out\n")
    spec = parse_script(text)
    assert spec.nodes == 2
    assert len(spec.unknown) == 1
    assert spec.unknown[0].line == 6
    assert spec.unknown[0].text.startswith("#SBATCH -N 8 (ignored: it follows the first command")


def test_disabled_and_indented_directives() -> None:
    spec = parse_script(script("##SBATCH -N 9", "# SBATCH -N 9", "  #SBATCH -N 7",
                               "#SBATCHX -N 6"))
    assert spec.nodes is None  # unset: the scheduler picks the fewest nodes
    assert spec.unknown == [UnknownDirective(
        4, "#SBATCH -N 7 (ignored: #SBATCH must start at the beginning of the line)")]


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    (script("#SBATCH -N 2", "#SBATCH --time=1:2:3:4"), 3, "time_limit",
     'line 3: --time: "1:2:3:4" is not a Slurm time (use minutes, MM:SS, HH:MM:SS, D-HH, '
     "D-HH:MM or D-HH:MM:SS)"),
    (script("#SBATCH -t 400-0"), 2, "time_limit",
     'line 2: --time: "400-0" is longer than the maximum of 365 days'),
    (script("#SBATCH -N 0"), 2, "nodes", "line 2: --nodes: nodes must be at least 1, not 0"),
    (script("#SBATCH -N -2"), 2, "nodes", 'line 2: --nodes: "-2" is negative'),
    (script("#SBATCH -N 100001"), 2, "nodes",
     "line 2: --nodes: 100001 nodes is more than the maximum of 100000"),
    (script("#SBATCH -N 8-2"), 2, "nodes", "maximum node count is below the minimum"),
    (script("#SBATCH -N two"), 2, "nodes", '"two" is not a whole number of nodes'),
    (script("#SBATCH -n 0"), 2, "ntasks", "line 2: --ntasks: tasks must be at least 1"),
    (script("#SBATCH -c 0"), 2, "cpus_per_task", "--cpus-per-task: CPUs per task must"),
    (script("#SBATCH --mem=2P"), 2, "mem_per_node", "line 2: --mem: "),
    (script("#SBATCH --mem=1048577G"), 2, "mem_per_node", "more than the maximum of 1 PiB"),
    (script("#SBATCH --mem-per-cpu=0"), 2, "mem_per_cpu", "0 memory per CPU makes no sense"),
    (script("#SBATCH --array=0-4000001"), 2, "array", "line 2: --array: "),
    (script("#SBATCH -d afterok:1?afterok:2"), 2, "dependencies", "are not supported"),
    (script("#SBATCH --gres=gpu:x:y:z"), 2, "gpus_per_node", "line 2: --gres: "),
    (script("#SBATCH --nodes"), 2, "nodes", "line 2: --nodes needs a value"),
    (script("#SBATCH -J"), 2, "name", "line 2: --job-name needs a value"),
    (script("#SBATCH -J ''"), 2, "name", "the job name must not be empty"),
    (script("#SBATCH -p 'a b'"), 2, "partition", "must not contain spaces"),
    (script("#SBATCH --export=1BAD"), 2, "export", "is not ALL, NONE or NAME[=value]"),
    (script('#SBATCH -J "open'), 2, None, 'line 2: a " quote is not closed'),
    (script("#SBATCH -J x\\"), 2, None, "line 2: the line ends with a backslash"),
    (script("#SBATCH --mem=1G", "#SBATCH --mem-per-cpu=1G"), 3, "mem_per_node",
     "line 3: --mem (line 2) and --mem-per-cpu (line 3) are mutually exclusive"),
    ("#SBATCH -N 2\nhostname\n", 1, "script", "line 1: a batch script must start with #!"),
    ("", 1, "script", "must start with #!"),
    ("#!/bin/bash\r\n#SBATCH -N 2\r\n", 1, "script", "DOS line breaks"),
    ("#!/bin/bash\nhostname\0\n", 2, "script", "NUL byte"),
])
def test_malformed_script_names_line_and_directive(text: str, line: int, field: str | None,
                                                    message: str) -> None:
    with pytest.raises(ScriptError) as info:
        parse_script(text)
    err = info.value
    assert isinstance(err, InvalidRequest)
    assert err.line == line
    assert err.field == field
    assert message in err.message
    assert err.message.startswith(f"line {line}: ")
    assert err.to_dict()["line"] == line


def test_realistic_script() -> None:
    text = """#!/bin/bash
#
# Fine-tune a model on 2 GPU nodes.
#SBATCH --job-name="llm finetune"     # shown in squeue
#SBATCH --partition=gpu
#SBATCH --account=ai-lab
#SBATCH --qos=normal
#SBATCH --nodes=2
#SBATCH --ntasks=8
#SBATCH --cpus-per-task=8
#SBATCH --mem=480G
#SBATCH --gres=gpu:a100:4
#SBATCH --time=2-00:00:00
#SBATCH --output=logs/%x-%j.out
#SBATCH --error=logs/%x-%j.err
#SBATCH --chdir=/work/ai-lab/llm
#SBATCH --export=ALL,NCCL_DEBUG=INFO
#SBATCH --dependency=afterok:1041
#SBATCH --mail-type=END,FAIL
#SBATCH --mail-user=pi@example.edu
#SBATCH --exclusive

set -euo pipefail
module load cuda/12.2
#SBATCH --time=10
srun python train.py --epochs 3
"""
    spec = parse_script(text)
    assert spec.script == text
    assert (spec.name, spec.partition, spec.account, spec.qos) == (
        "llm finetune", "gpu", "ai-lab", "normal")
    assert (spec.nodes, spec.ntasks, spec.cpus_per_task) == (2, 8, 8)
    assert (spec.mem_per_node, spec.mem_per_cpu) == (480 * 1024, None)
    assert (spec.gpus_per_node, spec.gpu_type, spec.gpus_total) == (4, "a100", 0)
    assert spec.time_limit == 2 * 86400
    assert (spec.stdout, spec.stderr) == ("logs/%x-%j.out", "logs/%x-%j.err")
    assert spec.chdir == "/work/ai-lab/llm"
    assert spec.export == "ALL,NCCL_DEBUG=INFO"
    assert spec.dependencies == [Dependency(DependencyKind.AFTEROK, ("1041",))]
    assert spec.exclusive is True
    assert [(u.line, u.text.split(" ")[0]) for u in spec.unknown] == [
        (19, "--mail-type=END,FAIL"), (20, "--mail-user=pi@example.edu"), (25, "#SBATCH")]


def test_command_line_overrides_script() -> None:
    spec = parse_script(script("#SBATCH -p cpu", "#SBATCH -t 10", "#SBATCH -d afterok:1"))
    out = parse_args(["-p", "gpu", "--time=1:00:00", "-dafterany:2", "--exclusive",
                      "--mail-type=END"], spec)
    assert out is spec
    assert (spec.partition, spec.time_limit, spec.exclusive) == ("gpu", 3600, True)
    assert spec.dependencies == [Dependency(DependencyKind.AFTERANY, ("2",))]
    assert spec.unknown == [UnknownDirective(0, "--mail-type=END")]


@pytest.mark.parametrize(("args", "message"), [
    (["--nodes=0"], "--nodes: nodes must be at least 1, not 0"),
    (["-t"], "--time needs a value"),
    (["script.sh"], 'unexpected argument "script.sh"'),
])
def test_parse_args_rejects(args: list[str], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_args(args, JobSpec())
    assert not isinstance(info.value, ScriptError)
    assert message in info.value.message


@pytest.mark.parametrize(("option", "value", "field", "expected"), [
    ("--partition", "gpu", "partition", "gpu"),
    ("-p", "gpu", "partition", "gpu"),
    ("partition", "gpu", "partition", "gpu"),
    ("--exclusive", None, "exclusive", True),
    ("-G", "2", "gpus_total", 2),
])
def test_apply_option(option: str, value: str | None, field: str, expected: Any) -> None:
    spec = JobSpec()
    apply_option(spec, option, value)
    assert getattr(spec, field) == expected


def test_apply_option_error_names_option_and_field() -> None:
    with pytest.raises(InvalidRequest) as info:
        apply_option(JobSpec(), "-t", "soon")
    assert info.value.message.startswith('--time: "soon" is not a Slurm time')
    assert info.value.field == "time_limit"


@pytest.mark.parametrize(("line", "words"), [
    (" -N 2", ["-N", "2"]),
    (" --job-name='a b' -p x", ["--job-name=a b", "-p", "x"]),
    (' -J "say \\"hi\\""', ["-J", 'say "hi"']),
    (" -J '' # empty name", ["-J", ""]),
    (" # only a comment", []),
    ("", []),
])
def test_split_words(line: str, words: list[str]) -> None:
    assert split_words(line) == words


_pieces = st.sampled_from([
    "-N", "--nodes", "2", "0", "-1", "--time=", "1:2", "--mem", "4G", "'", '"', "#", "\\",
    "--gres=gpu:", "a100", ":", ",", "%", "--array=", "-d", "afterok:", "?", "--exclusive",
    "--mail-type=END", " ", "=", "-", "x",
])


@given(st.lists(st.lists(_pieces, max_size=8).map("".join), max_size=6))
def test_any_directive_text_parses_or_raises_script_error(lines: list[str]) -> None:
    text = "#!/bin/sh\n" + "".join(f"#SBATCH {line}\n" for line in lines)
    try:
        spec = parse_script(text)
    except ScriptError as err:
        assert err.message.startswith(f"line {err.line}: ")
        assert 2 <= err.line <= len(lines) + 1
    else:
        assert all(2 <= u.line <= len(lines) + 1 for u in spec.unknown)
