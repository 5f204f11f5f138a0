"""The center's tenants as Slurm associations, kept in line in the background.

Organizations become accounts below the center's own account, projects become
accounts below their organization's (a project's Slurm account is its name, which is
what jobs are submitted with), memberships become user associations, and projects
that billing blocks (or that are inactive) are blocked in slurmdbd, where the block
survives slurmctld restarts.

`desired_state` is the pure mapping; `TenancySync` reads the store, runs
`AssociationSync` (which diffs against slurmdbd and repairs any drift) at start, soon
after every committed tenancy change, when the set of blocked projects changes, and
every `interval` seconds in any case. `install_slurm` wires it, and accounting
ingestion, into a center that runs the Slurm backend.
"""

from __future__ import annotations

import getpass
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from lightgrid.backends.slurm import (
    AccountSpec,
    AssociationState,
    AssociationSync,
    SlurmBackend,
    SyncReport,
    UserSpec,
)
from lightgrid.core.errors import BackendUnavailable, LightgridError
from lightgrid.store.base import utcnow
from lightgrid.store.models import Membership, Organization, Project, User

if TYPE_CHECKING:
    from lightgrid.center.service import Center

log = logging.getLogger(__name__)

#: Models whose committed changes call for a sync soon.
WATCHED = (Organization, Project, User, Membership)


def center_account(center_name: str) -> str:
    """The Slurm account every account of this center lives below."""
    return f"lightgrid.{center_name}"


def org_account(org_name: str) -> str:
    """An organization's Slurm account. The dot keeps it apart from project names,
    which cannot contain one."""
    return f"org.{org_name}"


@dataclass(frozen=True, slots=True)
class Tenant:
    """One project with its organization, members (oldest first) and standing."""

    project: str
    org: str
    members: tuple[str, ...]
    blocked: bool = False


def desired_state(root: str, tenants: Iterable[Tenant],
                  service_user: str | None = None) -> AssociationState:
    """The associations that `tenants` call for, below the account `root`.

    Each user's default account is their oldest membership. `service_user`, when
    jobs are submitted as the service's own user, is associated with every project.
    """
    tenants = sorted(tenants, key=lambda t: t.project)
    orgs = sorted({t.org for t in tenants})
    accounts = [AccountSpec(org_account(o), root, f"organization {o}") for o in orgs]
    accounts += [AccountSpec(t.project, org_account(t.org), f"project {t.project}")
                 for t in tenants]
    user_accounts: dict[str, list[str]] = {}
    for t in tenants:
        for member in t.members:
            user_accounts.setdefault(member, []).append(t.project)
    if service_user and tenants:
        user_accounts[service_user] = [t.project for t in tenants]
    return AssociationState(
        accounts=tuple(accounts),
        users=tuple(UserSpec(name, tuple(dict.fromkeys(accs)))
                    for name, accs in sorted(user_accounts.items())),
        blocked_accounts=frozenset(t.project for t in tenants if t.blocked))


class TenancySync:
    """Keeps slurmdbd's associations equal to the center's tenants."""

    def __init__(self, center: Center, sync: AssociationSync, *,
                 service_user: str | None = None, interval: float = 60.0,
                 block_interval: float = 5.0, min_gap: float = 1.0) -> None:
        self.center = center
        self.sync = sync
        self.root = sync.managed_root
        self.service_user = service_user
        self.interval = interval
        self.block_interval = block_interval
        self.min_gap = min_gap
        self.last_report: SyncReport | None = None
        self.last_error: str | None = None
        self._applied_blocks: frozenset[str] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the desired state ---------------------------------------------------------

    def blocked_projects(self, session: Session, at: datetime) -> set[str]:
        """Projects to block: inactive ones, and those billing blocks once it sells."""
        blocked = set(session.scalars(select(Project.name).where(
            Project.active.is_(False))))
        billing: Any = getattr(self.center, "billing", None)
        if billing is None:
            return blocked
        book = billing.book(session)
        if not book.versions or at < book.versions[0].effective_from:
            return blocked  # the center does not sell yet: nothing to block for money
        from lightgrid.center.billing import blocked_projects

        return blocked | set(blocked_projects(session, at, self.center.settings.currency))

    def tenants(self, session: Session, at: datetime | None = None) -> list[Tenant]:
        blocked = self.blocked_projects(session, at or utcnow())
        rows = session.execute(select(Project.id, Project.name, Organization.name).join(
            Organization, Organization.id == Project.org_id)).all()
        members: dict[str, list[str]] = {}
        for pid, username in session.execute(
                select(Membership.project_id, User.username)
                .join(User, User.id == Membership.user_id)
                .where(User.active.is_(True))
                .order_by(Membership.created_at, User.username)):
            members.setdefault(pid, []).append(username)
        return [Tenant(name, org, tuple(members.get(pid, ())), name in blocked)
                for pid, name, org in rows]

    def desired(self) -> AssociationState:
        with self.center.factory() as session:
            return desired_state(self.root, self.tenants(session), self.service_user)

    # -- running -------------------------------------------------------------------

    def ensure_root(self) -> None:
        """Create the center's own account below Slurm's root if it is missing."""
        proc = self.sync.commands.run("sacctmgr", [
            "-n", "-P", "show", "account", self.root, "format=Account"])
        if self.root not in proc.stdout.split():
            self.sync.commands.run("sacctmgr", [
                "-i", "add", "account", self.root, f"cluster={self.sync.cluster}",
                "parent=root", f"description=lightgrid center {self.center.settings.center_name}"])

    def run_once(self) -> SyncReport:
        """Plan against slurmdbd and repair every difference; raises BackendUnavailable."""
        with self._lock:
            desired = self.desired()
            self.ensure_root()
            report = self.sync.sync(desired)
            if report.plan:
                log.info("association sync: %s", ", ".join(report.drift))
            for change, message in report.failed:
                log.warning("association sync could not %s: %s", change, message)
            self.last_report = report
            self.last_error = None
            if report.ok:
                self._applied_blocks = desired.blocked_accounts
            return report

    def ensure(self, user: str, account: str) -> bool:
        """For the backend, when Slurm refuses a job's account: sync now if the
        account is a project of this center, and tell whether it is one."""
        with self.center.factory() as session:
            known = session.scalar(select(Project.id).where(Project.name == account))
        if known is None:
            return False
        try:
            report = self.run_once()
        except BackendUnavailable:
            return False
        return report.ok

    def _blocks_changed(self) -> bool:
        with self.center.factory() as session:
            now = frozenset(self.blocked_projects(session, utcnow()))
        return now != self._applied_blocks

    # -- background ----------------------------------------------------------------

    def start(self) -> None:
        """Sync once now (so dispatching finds every account), then keep syncing."""
        self._watch()
        try:
            self.run_once()
        except LightgridError as exc:
            self.last_error = exc.message
            log.warning("association sync at start failed: %s", exc.message)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="slurm-associations",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            woken = self._wake.wait(self.block_interval)
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                due = woken or time.monotonic() - last >= self.interval \
                    or self._blocks_changed()
                if not due:
                    continue
                self.run_once()
            except LightgridError as exc:
                self.last_error = exc.message
                log.warning("association sync failed: %s", exc.message)
            except Exception:  # pragma: no cover - the loop must survive anything
                log.exception("association sync failed")
            last = time.monotonic()
            self._stop.wait(self.min_gap)

    def _watch(self) -> None:
        """Wake the loop after any commit that changed tenants."""
        factory = self.center.factory
        if event.contains(factory, "after_flush", _note_tenancy_change):
            return
        event.listen(factory, "after_flush", _note_tenancy_change)
        event.listen(factory, "after_commit", self._after_commit)
        event.listen(factory, "after_soft_rollback", _forget_change)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(_CHANGED, False):
            self.wake()


_CHANGED = "lightgrid.slurm_sync.changed"


def _note_tenancy_change(session: Session, _context: object) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, WATCHED):
            session.info[_CHANGED] = True
            return


def _forget_change(session: Session, _previous: object) -> None:
    session.info.pop(_CHANGED, None)


def install_slurm(center: Center, *, managed_root: str | None = None,
                  extra_protected: Sequence[str] = ()) -> TenancySync:
    """Association sync and accounting ingestion for a center on the Slurm backend.

    Both are appended to ``center.background`` (started and stopped with the
    center); the backend asks the sync for a missing association before it passes
    Slurm's refusal of a job's account on.
    """
    from lightgrid.center.accounting import AccountingLoop

    backend = center.backend
    if not isinstance(backend, SlurmBackend):
        raise TypeError("install_slurm needs the Slurm backend")
    root = managed_root or center_account(center.settings.center_name)
    sync = AssociationSync(backend.config, managed_root=root,
                           protected=("root", *extra_protected))
    service_user = None if backend.config.submit_as_user else getpass.getuser()
    tenancy = TenancySync(center, sync, service_user=service_user)
    backend.on_missing_association = tenancy.ensure
    center.background.append(tenancy)
    center.background.append(AccountingLoop(center, backend.config))
    center.slurm_sync = tenancy  # type: ignore[attr-defined]
    return tenancy
