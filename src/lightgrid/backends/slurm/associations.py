"""Association sync: the platform's tenants as Slurm accounts, users and associations.

The caller describes the desired state (`AssociationState`: accounts with their parent,
users with their accounts, blocked accounts and user associations); `AssociationSync`
reads what slurmdbd holds (``sacctmgr show ... -P``), computes a plan of `Change`s and
applies it with ``sacctmgr -i``. Running the plan step again on an unchanged cluster
yields no changes; anything found then is drift, reported and repaired.

A block is ``GrpSubmitJobs=0,GrpJobs=0`` on the association: stored in slurmdbd, it
survives a slurmctld restart; new jobs are refused and pending ones stay pending.
Only accounts below `managed_root` are touched; `protected` ones never are.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lightgrid.backends.slurm.commands import SlurmCommands
from lightgrid.backends.slurm.config import SlurmConfig
from lightgrid.core.errors import InvalidRequest

log = logging.getLogger(__name__)

_ACCOUNT = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,63}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
BLOCK = ("GrpSubmitJobs=0", "GrpJobs=0")
UNBLOCK = ("GrpSubmitJobs=-1", "GrpJobs=-1")


def _account(name: str) -> str:
    if not _ACCOUNT.match(name):
        raise InvalidRequest(f"invalid Slurm account name {name!r} (lower-case letters, "
                             "digits, '_', '.', '-')", field="account")
    return name


def _user(name: str) -> str:
    if not _USER.match(name):
        raise InvalidRequest(f"invalid Slurm user name {name!r}", field="user")
    return name


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """A Slurm account: an organization or a project, under its parent."""

    name: str
    parent: str = "root"
    description: str = ""


@dataclass(frozen=True, slots=True)
class UserSpec:
    """A user and the accounts it may charge; the first is the default."""

    name: str
    accounts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AssociationState:
    """Accounts, users and blocks, as the platform wants them or as Slurm has them."""

    accounts: tuple[AccountSpec, ...] = ()
    users: tuple[UserSpec, ...] = ()
    blocked_accounts: frozenset[str] = frozenset()
    blocked_users: frozenset[tuple[str, str]] = frozenset()  # (user, account)

    def validate(self) -> None:
        names = {a.name for a in self.accounts}
        for acc in self.accounts:
            _account(acc.name)
            _account(acc.parent)
            if "\n" in acc.description or '"' in acc.description:
                raise InvalidRequest(f"account {acc.name}: bad description",
                                     field="description")
        for user in self.users:
            _user(user.name)
            for name in user.accounts:
                _account(name)
        for blocked in self.blocked_accounts:
            if blocked not in names:
                raise InvalidRequest(f"blocked account {blocked!r} is not in the state",
                                     field="blocked_accounts")


@dataclass(frozen=True, slots=True)
class Change:
    """One sacctmgr step, described and as its argument list."""

    action: str  # add-account, move-account, add-user, set-default, remove-user, ...
    target: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.action} {self.target}"


@dataclass(slots=True)
class SyncReport:
    """What a sync found different (`drift`), and what it did about it."""

    plan: list[Change] = field(default_factory=list)
    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)

    @property
    def drift(self) -> list[str]:
        return [str(c) for c in self.plan]

    @property
    def ok(self) -> bool:
        return not self.failed


class AssociationSync:
    """Reads, plans and applies associations of one cluster with sacctmgr."""

    def __init__(self, config: SlurmConfig, *, managed_root: str = "root",
                 protected: Iterable[str] = ("root",)) -> None:
        self.config = config
        self.commands = SlurmCommands(config)
        self.cluster = config.cluster
        self.managed_root = _account(managed_root)
        self.protected = frozenset(protected) | {managed_root}

    # ------------------------------------------------------------ reading

    def _show(self, what: str, fields: Sequence[str], *where: str) -> list[list[str]]:
        proc = self.commands.run("sacctmgr", [
            "-n", "-P", "show", what, *where, f"format={','.join(fields)}"])
        return [line.split("|") for line in proc.stdout.splitlines() if line.strip()]

    def current(self) -> AssociationState:
        """What slurmdbd holds now for the managed part of this cluster."""
        rows = self._show("associations", ["Account", "User", "ParentName", "GrpSubmit",
                                           "GrpJobs", "Partition"],
                          "where", f"cluster={self.cluster}")
        parents: dict[str, str] = {}
        user_accounts: dict[str, list[str]] = {}
        blocked_acc: set[str] = set()
        blocked_users: set[tuple[str, str]] = set()
        for account, user, parent, submit, jobs, _part in rows:
            is_blocked = submit == "0" or jobs == "0"
            if not user:
                parents[account] = parent
                if is_blocked:
                    blocked_acc.add(account)
            else:
                user_accounts.setdefault(user, []).append(account)
                if is_blocked:
                    blocked_users.add((user, account))
        managed = self._subtree(parents)
        defaults = {u: d for u, d in self._show("users", ["User", "DefaultAccount"])}
        users = []
        for name, accs in sorted(user_accounts.items()):
            mine = [a for a in accs if a in managed]
            if not mine:
                continue
            default = defaults.get(name)
            ordered = sorted(set(mine), key=lambda a: (a != default, a))
            users.append(UserSpec(name, tuple(ordered)))
        return AssociationState(
            accounts=tuple(AccountSpec(a, parents[a]) for a in sorted(managed)),
            users=tuple(users),
            blocked_accounts=frozenset(blocked_acc & managed),
            blocked_users=frozenset(b for b in blocked_users if b[1] in managed))

    def _subtree(self, parents: dict[str, str]) -> set[str]:
        out: set[str] = set()
        for acc in parents:
            node, seen = acc, set()
            while node in parents and node not in seen and node != self.managed_root:
                seen.add(node)
                node = parents[node]
            if node == self.managed_root and acc not in self.protected:
                out.add(acc)
        return out

    # ------------------------------------------------------------ planning

    def plan(self, desired: AssociationState,
             current: AssociationState | None = None) -> list[Change]:
        """The sacctmgr steps that turn `current` (read when None) into `desired`."""
        desired.validate()
        cur = current if current is not None else self.current()
        c = f"cluster={self.cluster}"
        changes: list[Change] = []
        cur_parent = {a.name: a.parent for a in cur.accounts}
        want_parent = {a.name: a.parent for a in desired.accounts}
        for acc in _parents_first(desired.accounts):
            if acc.name in self.protected:
                continue
            if acc.name not in cur_parent:
                args = ["add", "account", acc.name, c, f"parent={acc.parent}"]
                if acc.description:
                    args.append(f"description={acc.description}")
                changes.append(Change("add-account", acc.name, tuple(args)))
            elif cur_parent[acc.name] != acc.parent:
                changes.append(Change("move-account", acc.name, (
                    "modify", "account", "where", f"name={acc.name}", c, "set",
                    f"parent={acc.parent}")))
        cur_users = {u.name: u for u in cur.users}
        want_users = {u.name: u for u in desired.users}
        for user in desired.users:
            have = set(cur_users[user.name].accounts) if user.name in cur_users else set()
            missing = [a for a in user.accounts if a not in have]
            if missing:
                changes.append(Change("add-user", f"{user.name}@{','.join(missing)}", (
                    "add", "user", user.name, c, f"account={','.join(missing)}",
                    f"defaultaccount={user.accounts[0]}")))
            current_default = (cur_users[user.name].accounts[0]
                               if user.name in cur_users else None)
            if user.accounts and current_default not in (None, user.accounts[0]):
                changes.append(Change("set-default", f"{user.name}->{user.accounts[0]}", (
                    "modify", "user", "where", f"name={user.name}", c, "set",
                    f"defaultaccount={user.accounts[0]}")))
        for user in cur.users:
            keep = set(want_users[user.name].accounts) if user.name in want_users else set()
            for aname in user.accounts:
                if aname not in keep and user.name not in self.protected:
                    changes.append(Change("remove-user", f"{user.name}@{aname}", (
                        "remove", "user", "where", f"name={user.name}", c,
                        f"account={aname}")))
        want_blocked = set(desired.blocked_accounts)
        for name in sorted(want_blocked - set(cur.blocked_accounts)):
            changes.append(Change("block-account", name, (
                "modify", "account", "where", f"name={name}", c, "set", *BLOCK)))
        for name in sorted(set(cur.blocked_accounts) - want_blocked):
            if name in want_parent:
                changes.append(Change("unblock-account", name, (
                    "modify", "account", "where", f"name={name}", c, "set", *UNBLOCK)))
        want_bu = set(desired.blocked_users)
        for uname, aname in sorted(want_bu - set(cur.blocked_users)):
            changes.append(Change("block-user", f"{uname}@{aname}", (
                "modify", "user", "where", f"name={_user(uname)}",
                f"account={_account(aname)}", c, "set", *BLOCK)))
        for uname, aname in sorted(set(cur.blocked_users) - want_bu):
            if uname in want_users and aname in want_users[uname].accounts:
                changes.append(Change("unblock-user", f"{uname}@{aname}", (
                    "modify", "user", "where", f"name={uname}", f"account={aname}", c,
                    "set", *UNBLOCK)))
        stale = [a for a in cur.accounts if a.name not in want_parent]
        for acc in _children_first(stale):
            changes.append(Change("remove-account", acc.name, (
                "remove", "account", "where", f"name={acc.name}", c)))
        return changes

    # ------------------------------------------------------------ applying

    def apply(self, changes: Iterable[Change]) -> SyncReport:
        """Run each step; a failing step is recorded and the rest still run."""
        report = SyncReport(plan=list(changes))
        for change in report.plan:
            try:
                self.commands.run("sacctmgr", ["-i", *change.args])
            except InvalidRequest as exc:
                log.warning("sacctmgr %s failed: %s", change, exc.message)
                report.failed.append((change, exc.message))
            else:
                report.applied.append(change)
        return report

    def sync(self, desired: AssociationState, *, dry_run: bool = False) -> SyncReport:
        """Plan against what slurmdbd holds now and (unless `dry_run`) apply it."""
        changes = self.plan(desired)
        if dry_run:
            return SyncReport(plan=changes)
        return self.apply(changes)

    def drift(self, desired: AssociationState) -> list[str]:
        """What differs between slurmdbd and `desired`, without changing anything."""
        return [str(c) for c in self.plan(desired)]


def _depth(name: str, parents: dict[str, str]) -> int:
    depth, seen = 0, set()
    while name in parents and name not in seen:
        seen.add(name)
        name = parents[name]
        depth += 1
    return depth


def _parents_first(accounts: Sequence[AccountSpec]) -> list[AccountSpec]:
    parents = {a.name: a.parent for a in accounts}
    return sorted(accounts, key=lambda a: (_depth(a.name, parents), a.name))


def _children_first(accounts: Sequence[AccountSpec]) -> list[AccountSpec]:
    return list(reversed(_parents_first(accounts)))
