"""API schemas, apart from the database models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lightgrid.core.errors import InvalidRequest
from lightgrid.core.jobs import JobSpec
from lightgrid.core.sbatch import apply_option, parse_args, parse_script
from lightgrid.store.models import Job


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobSpecIn(Strict):
    """A job as JSON. String values use sbatch's syntax (e.g. time "1-00:00:00")."""

    script: str = Field(min_length=1, max_length=1_000_000,
                        description="The commands to run (a shebang line is optional)")
    name: str | None = Field(default=None, max_length=200)
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int | None = Field(default=None, ge=1, le=100_000)
    ntasks: int | None = Field(default=None, ge=1, le=10_000_000)
    cpus_per_task: int | None = Field(default=None, ge=1, le=100_000)
    mem: str | int | None = Field(default=None, description="per node; int = MiB")
    mem_per_cpu: str | int | None = None
    gres: str | None = None
    gpus: str | int | None = None
    time: str | int | None = Field(default=None, description="Slurm time; int = minutes")
    output: str | None = None
    error: str | None = None
    array: str | None = None
    chdir: str | None = None
    export: str | None = None
    dependency: str | None = None
    exclusive: bool = False
    comment: str | None = Field(default=None, max_length=1000)

    def to_spec(self) -> JobSpec:
        spec = JobSpec(script=self.script)
        options = self.model_dump(exclude={"script", "exclusive"}, exclude_none=True)
        for name, value in options.items():
            option = "job-name" if name == "name" else name.replace("_", "-")
            try:
                apply_option(spec, option, str(value))
            except InvalidRequest as exc:
                exc.field = name
                raise
        if self.exclusive:
            apply_option(spec, "exclusive", None)
        return spec


class SubmitIn(Strict):
    """Either a batch script with `#SBATCH` directives (plus sbatch-style `args` that
    override them), or a JSON `spec`."""

    script: str | None = Field(default=None, max_length=1_000_000)
    args: list[str] = Field(default_factory=list, max_length=200)
    spec: JobSpecIn | None = None
    name: str | None = Field(default=None, max_length=200,
                             description="default job name (e.g. the script file name)")

    def to_spec(self) -> JobSpec:
        if (self.script is None) == (self.spec is None):
            raise InvalidRequest("give exactly one of 'script' and 'spec'", field="script")
        if self.spec is not None:
            spec = self.spec.to_spec()
        else:
            assert self.script is not None
            if not self.script.strip():
                raise InvalidRequest("the script is empty", field="script")
            spec = parse_script(self.script)
        if self.args:
            spec = parse_args(list(self.args), spec)
        if spec.name is None and self.name:
            spec.name = self.name
        return spec


class TresOut(BaseModel):
    cpu: int
    mem: int
    gpu: int
    node: int


class JobOut(BaseModel):
    id: str
    number: int
    job_id: str = Field(description="Slurm-style id: N, or A_I for an array task")
    name: str
    user: str
    project: str
    partition: str
    qos: str | None
    state: str
    reason: str
    tres: TresOut
    nodes: int
    gpu_type: str | None
    time_limit: int
    workdir: str
    stdout: str
    stderr: str
    array_job_number: int | None
    array_task_id: int | None
    backend_id: str | None
    submit_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    exit_code: int | None
    elapsed: int | None
    cpu_time: float | None
    max_rss: int | None

    @classmethod
    def of(cls, job: Job, names: dict[str, tuple[str, str]]) -> JobOut:
        slurm_id = (f"{job.array_job_number}_{job.array_task_id}"
                    if job.array_job_number is not None else str(job.number))
        elapsed = job.elapsed
        if elapsed is None and job.start_time is not None:
            end = job.end_time or datetime.now(job.start_time.tzinfo)
            elapsed = max(0, int((end - job.start_time).total_seconds()))
        return cls(
            id=job.id, number=job.number, job_id=slurm_id, name=job.name,
            user=names.get(job.user_id, ("", job.user_id))[1],
            project=names.get(job.project_id, ("", job.project_id))[1],
            partition=job.partition, qos=job.qos, state=job.state, reason=job.reason,
            tres=TresOut(cpu=job.cpus, mem=job.mem, gpu=job.gpus, node=job.exclusive_nodes),
            nodes=job.nodes, gpu_type=job.gpu_type, time_limit=job.time_limit,
            workdir=job.workdir, stdout=job.stdout_path, stderr=job.stderr_path,
            array_job_number=job.array_job_number, array_task_id=job.array_task_id,
            backend_id=job.backend_id, submit_time=job.submit_time,
            start_time=job.start_time, end_time=job.end_time, exit_code=job.exit_code,
            elapsed=elapsed, cpu_time=job.cpu_time, max_rss=job.max_rss)


class SubmitOut(BaseModel):
    job_number: int
    job_id: str
    jobs: list[JobOut]
    warnings: list[str]


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class JobEventOut(BaseModel):
    job_id: str
    at: datetime
    from_state: str | None
    to_state: str
    reason: str


class LoginIn(Strict):
    username: str
    password: str


class TokenIn(Strict):
    name: str = Field(default="", max_length=100)
    ttl_days: int | None = Field(default=None, ge=1, le=3650)
    user: str | None = Field(default=None, description="operator only: for another user")


class TokenOut(BaseModel):
    id: str
    token: str | None = None
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None = None


class OrgIn(Strict):
    name: str
    kind: Literal["university", "key_laboratory", "research_institute",
                  "government_agency", "enterprise"]
    display_name: str = ""
    tier: Literal["academic", "government", "enterprise"] | None = None


class OrgOut(BaseModel):
    id: str
    name: str
    display_name: str
    kind: str
    tier: str
    created_at: datetime


class ProjectIn(Strict):
    name: str
    org: str
    display_name: str = ""


class ProjectOut(BaseModel):
    id: str
    name: str
    display_name: str
    org: str
    active: bool
    created_at: datetime


class UserIn(Strict):
    username: str
    password: str | None = None
    display_name: str = ""
    email: str = ""
    center_role: Literal["operator", "finance"] | None = None


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str
    email: str
    center_role: str | None
    active: bool
    created_at: datetime


class MemberIn(Strict):
    user: str
    role: Literal["pi", "member"] = "member"


class MemberOut(BaseModel):
    user: str
    role: str


class OrgAdminIn(Strict):
    user: str


class NodeTypeOut(BaseModel):
    name: str
    count: int
    cores: int
    mem: int
    gpus: int
    gpu_type: str | None


class PartitionOut(BaseModel):
    name: str
    description: str
    state: str
    node_types: list[NodeTypeOut]
    total: TresOut
    allocated: TresOut
    pending_jobs: int
    running_jobs: int
    max_time: int | None
    default_time: int
    default: bool


class FileEntryOut(BaseModel):
    name: str
    type: str
    size: int
    mtime: datetime


class WhoAmI(BaseModel):
    user_id: str
    username: str
    center_role: str | None
    projects: dict[str, str]
    admin_orgs: list[str]


class StatusOut(BaseModel):
    center: str
    version: str
    backend: str
    backend_reachable: bool
    backend_error: str | None
    jobs_pending: int
    jobs_running: int
    process_id: int = Field(description="the API process that answered (a center may "
                                        "serve its API from several)")
