"""Typed settings: defaults, then a TOML file, then `LIGHTGRID_*` environment variables.

Unknown keys fail fast. With no configuration at all the center runs on SQLite and the
embedded backend in `./var/lightgrid`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lightgrid.core.errors import InvalidRequest
from lightgrid.core.resources import NodeType, Partition


class NodeTypeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int = Field(ge=1)
    cores: int = Field(ge=1)
    mem: int = Field(ge=1, description="MiB per node")
    gpus: int = Field(default=0, ge=0)
    gpu_type: str | None = None


class PartitionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    node_types: list[NodeTypeSettings]
    max_time: int | None = Field(default=None, ge=1, description="seconds")
    default_time: int = Field(default=3600, ge=1)
    default: bool = False
    description: str = ""

    def to_partition(self) -> Partition:
        return Partition(
            name=self.name,
            node_types=tuple(NodeType(**nt.model_dump()) for nt in self.node_types),
            max_time=self.max_time, default_time=self.default_time,
            description=self.description)


def default_partitions() -> list[PartitionSettings]:
    """The demo's virtual cluster: cpu, gpu and bigmem partitions."""
    return [
        PartitionSettings(name="cpu", default=True, max_time=7 * 86400,
                          description="General CPU nodes",
                          node_types=[NodeTypeSettings(name="c64", count=4, cores=64,
                                                       mem=256 * 1024)]),
        PartitionSettings(name="gpu", max_time=3 * 86400, description="NVIDIA A100 nodes",
                          node_types=[NodeTypeSettings(name="g8a100", count=2, cores=32,
                                                       mem=512 * 1024, gpus=8,
                                                       gpu_type="a100")]),
        PartitionSettings(name="bigmem", max_time=7 * 86400,
                          description="Large-memory nodes",
                          node_types=[NodeTypeSettings(name="m2t", count=1, cores=64,
                                                       mem=2048 * 1024)]),
    ]


class SlurmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slurm_conf: Path | None = None
    cluster: str | None = None  # defaults to center_name
    command_timeout: float = Field(default=30.0, gt=0)
    submit_as_user: bool = False  # sbatch --uid=<user>: the service runs as root/SlurmUser


class Settings(BaseSettings):
    """Everything a center is configured with."""

    model_config = SettingsConfigDict(env_prefix="LIGHTGRID_", env_nested_delimiter="__",
                                      extra="forbid")

    center_name: str = Field(default="demo-center", pattern=r"^[a-z][a-z0-9-]{1,62}$")
    data_dir: Path = Path("var/lightgrid")
    database_url: str | None = None
    backend: Literal["embedded", "slurm"] = "embedded"
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    partitions: list[PartitionSettings] = Field(default_factory=default_partitions)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: API processes; above 1 the main process runs the backend and the loops, and the
    #: others share the port and reach the backend through it (PostgreSQL advised).
    api_workers: int = Field(default=1, ge=1, le=64)
    max_upload_bytes: int = Field(default=1 << 30, ge=1)
    token_ttl_days: int = Field(default=90, ge=1)
    kill_grace_seconds: float = Field(default=10.0, ge=0)
    poll_interval: float = Field(default=1.0, gt=0)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    #: The center's time zone: months of statements and spending caps follow it.
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        # Jobs run in their own working directories: every path handed to them and to
        # the runner must not depend on the service's current directory.
        return value.expanduser().resolve()

    @field_validator("partitions")
    @classmethod
    def _unique_partitions(cls, value: list[PartitionSettings]) -> list[PartitionSettings]:
        names = [p.name for p in value]
        if len(set(names)) != len(names):
            raise ValueError("partition names must be unique")
        if not value:
            raise ValueError("at least one partition is needed")
        return value

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'lightgrid.db').resolve()}"

    @property
    def default_partition(self) -> str:
        for p in self.partitions:
            if p.default:
                return p.name
        return self.partitions[0].name

    def partition_map(self) -> dict[str, Partition]:
        return {p.name: p.to_partition() for p in self.partitions}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from an optional TOML file, the environment and explicit overrides.

    Precedence: overrides > environment > file > defaults.
    """
    import os

    from pydantic import ValidationError

    data: dict[str, Any] = {}
    path = config_file or (Path(os.environ["LIGHTGRID_CONFIG"])
                           if os.environ.get("LIGHTGRID_CONFIG") else None)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise InvalidRequest(f"config file {path} does not exist", field="config") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidRequest(f"config file {path}: {exc}", field="config") from None
    env_only = Settings.model_fields.keys()
    for key in list(data):
        if key not in env_only:
            raise InvalidRequest(f"config file {path}: unknown key {key!r}", field=key)
    # Environment beats the file: drop file keys that the environment sets.
    for key in list(data):
        if f"LIGHTGRID_{key.upper()}" in os.environ:
            del data[key]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"setting {where}: {first['msg']}", field=where) from None
