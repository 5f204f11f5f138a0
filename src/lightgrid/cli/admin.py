"""Administration commands: organizations, projects, users, tokens, login."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lightgrid.cli.client import Client, JsonOpt, TokenOpt, UrlOpt, console, fail, print_json

org_app = typer.Typer(help="Organizations (operators).", no_args_is_help=True)
project_app = typer.Typer(help="Projects and their members.", no_args_is_help=True)
user_app = typer.Typer(help="Users (operators).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)


def _table(rows: list[dict[str, object]], columns: list[str]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in columns:
        table.add_column(col.upper())
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table


def _show(data: object, columns: list[str], json_out: bool) -> None:
    if json_out:
        print_json(data)
    else:
        rows: list[dict[str, object]] = data if isinstance(data, list) else [data]  # type: ignore[list-item]
        console.print(_table(rows, columns))


@org_app.command("create")
def org_create(name: str, kind: Annotated[str, typer.Option(
        help="university, key_laboratory, research_institute, government_agency, enterprise")],
        display_name: Annotated[str, typer.Option()] = "",
        tier: Annotated[str | None, typer.Option(help="academic, government, enterprise")] = None,
        url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Create an organization."""
    data = Client(url, token).post("/orgs", json={"name": name, "kind": kind,
                                                  "display_name": display_name, "tier": tier})
    _show(data, ["name", "kind", "tier", "display_name"], json_out)


@org_app.command("list")
def org_list(url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    _show(Client(url, token).get("/orgs"), ["name", "kind", "tier", "display_name"],
          json_out)


@org_app.command("add-admin")
def org_add_admin(org: str, user: str, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Make USER an administrator of ORG."""
    Client(url, token).post(f"/orgs/{org}/admins", json={"user": user})
    console.print(f"{user} administers {org}")


@project_app.command("create")
def project_create(name: str, org: Annotated[str, typer.Option(help="owning organization")],
                   display_name: Annotated[str, typer.Option()] = "",
                   url: UrlOpt = None, token: TokenOpt = None,
                   json_out: JsonOpt = False) -> None:
    """Create a project (a Slurm account) in an organization."""
    data = Client(url, token).post("/projects", json={"name": name, "org": org,
                                                      "display_name": display_name})
    _show(data, ["name", "org", "display_name"], json_out)


@project_app.command("list")
def project_list(url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    _show(Client(url, token).get("/projects"), ["name", "org", "display_name", "active"],
          json_out)


@project_app.command("members")
def project_members(project: str, url: UrlOpt = None, token: TokenOpt = None,
                    json_out: JsonOpt = False) -> None:
    _show(Client(url, token).get(f"/projects/{project}/members"), ["user", "role"], json_out)


@project_app.command("add-member")
def project_add_member(project: str, user: str,
                       role: Annotated[str, typer.Option(help="pi or member")] = "member",
                       url: UrlOpt = None, token: TokenOpt = None) -> None:
    Client(url, token).post(f"/projects/{project}/members", json={"user": user, "role": role})
    console.print(f"{user} is {role} of {project}")


@project_app.command("remove-member")
def project_remove_member(project: str, user: str, url: UrlOpt = None,
                          token: TokenOpt = None) -> None:
    Client(url, token).delete(f"/projects/{project}/members/{user}")
    console.print(f"{user} removed from {project}")


@user_app.command("create")
def user_create(username: str,
                password: Annotated[str | None, typer.Option(help="for password login")] = None,
                role: Annotated[str | None, typer.Option(help="operator or finance")] = None,
                email: Annotated[str, typer.Option()] = "",
                url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    data = Client(url, token).post("/users", json={
        "username": username, "password": password, "center_role": role, "email": email})
    _show(data, ["username", "center_role", "email"], json_out)


@user_app.command("list")
def user_list(url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    _show(Client(url, token).get("/users"), ["username", "center_role", "email", "active"],
          json_out)


@token_app.command("create")
def token_create(name: Annotated[str, typer.Option()] = "",
                 user: Annotated[str | None, typer.Option(help="operators: for USER")] = None,
                 ttl_days: Annotated[int | None, typer.Option()] = None,
                 url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Issue a token; it is shown once."""
    data = Client(url, token).post("/auth/tokens", json={"name": name, "user": user,
                                                         "ttl_days": ttl_days})
    if json_out:
        print_json(data)
    else:
        console.print(data["token"], highlight=False)


@token_app.command("list")
def token_list(url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    _show(Client(url, token).get("/auth/tokens"),
          ["id", "name", "prefix", "expires_at", "revoked_at"], json_out)


@token_app.command("revoke")
def token_revoke(token_id: str, url: UrlOpt = None, token: TokenOpt = None) -> None:
    Client(url, token).delete(f"/auth/tokens/{token_id}")
    console.print(f"revoked {token_id}")


def login(username: str,
          password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
          url: UrlOpt = None, json_out: JsonOpt = False) -> None:
    """Log in with a password and print a new API token."""
    data = Client(url, None).post("/auth/login", json={"username": username,
                                                       "password": password})
    if json_out:
        print_json(data)
    else:
        console.print(data["token"], highlight=False)


def whoami(url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Who the token belongs to, and their roles."""
    data = Client(url, token).get("/auth/whoami")
    if json_out:
        print_json(data)
        return
    console.print(f"{data['username']} (center role: {data['center_role'] or '-'})")
    for project, role in sorted(data["projects"].items()):
        console.print(f"  {project}: {role}")


def bootstrap(username: str,
              config: Annotated[Path | None, typer.Option(help="settings TOML")] = None,
              data_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Create an operator and print a token for it, directly in the local database."""
    from lightgrid.center import tenancy
    from lightgrid.center.auth import issue_token
    from lightgrid.core.errors import LightgridError
    from lightgrid.settings import load_settings
    from lightgrid.store.db import make_engine, make_sessionmaker, migrate

    try:
        settings = load_settings(config, data_dir=data_dir)
        engine = make_engine(settings.db_url)
        migrate(engine)
        with make_sessionmaker(engine)() as session, session.begin():
            user = tenancy.create_user(session, username, center_role="operator")
            _, plain = issue_token(session, user, name="bootstrap",
                                   ttl_days=settings.token_ttl_days)
    except LightgridError as exc:
        fail(exc.message)
    console.print(plain, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(org_app, name="org")
    app.add_typer(project_app, name="project")
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
    app.command()(login)
    app.command()(whoami)
    admin = typer.Typer(help="Local administration (runs on the center's host).",
                        no_args_is_help=True)
    admin.command()(bootstrap)
    app.add_typer(admin, name="admin")
