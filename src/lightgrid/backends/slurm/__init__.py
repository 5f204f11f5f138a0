"""The Slurm backend: drives a real Slurm cluster through its command-line tools.

`SlurmBackend` implements `lightgrid.backends.base.Backend`; `AssociationSync` keeps
Slurm accounts and users in line with the platform's tenants; `AccountingIngester`
pulls finished jobs (also those submitted outside lightgrid) as usage records.
"""

from lightgrid.backends.slurm.accounting import AccountingIngester, IngestCursor
from lightgrid.backends.slurm.associations import (
    AccountSpec,
    AssociationState,
    AssociationSync,
    SyncReport,
    UserSpec,
)
from lightgrid.backends.slurm.backend import SlurmBackend
from lightgrid.backends.slurm.config import SlurmConfig

__all__ = [
    "AccountSpec", "AccountingIngester", "AssociationState", "AssociationSync",
    "IngestCursor", "SlurmBackend", "SlurmConfig", "SyncReport", "UserSpec",
]
