"""``taskfleet tokens revoke|ls``: revoke a leaked JWT, or every token of a subject, and
list what is revoked (admin). ``taskfleet token`` (no s) mints tokens locally."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table
from taskfleet_client import Client, Revocations

from app.remote_cli import render
from app.remote_cli.connection import api_command


def claims_of(token: str) -> dict[str, Any]:
    """The claims of TOKEN, read without its signature: only its jti, sub and exp are
    used, to name what to revoke (the server decides what that revokes)."""
    import jwt  # only here: the CLI's other commands start without it

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise click.BadParameter(f"not a JWT: {exc}", param_hint="TOKEN") from exc
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise click.BadParameter("this token has no jti: revoke its subject with --sub", param_hint="TOKEN")
    return claims


def _expiry(claims: dict[str, Any]) -> datetime | None:
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


@click.group()
def tokens() -> None:
    """Revoke JWTs and list the revocations (admin); mint tokens with taskfleet token."""


@tokens.command("revoke")
@click.argument("leaked", metavar="TOKEN", required=False)
@click.option("--jti", help="Revoke the token with this jti claim.")
@click.option("--sub", help="With --jti: its subject, for the list. Alone: every token of this subject.")
@click.option(
    "--before",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
    metavar="TIME",
    help="With --sub alone: tokens issued before this time, e.g. 2030-01-01T09:00:00Z "
    "(UTC unless it says) [default: now].",
)
@api_command
def revoke(
    client: Client, leaked: str | None, jti: str | None, sub: str | None, before: datetime | None
) -> None:
    """Revoke TOKEN (the leaked token itself), or --jti JTI, or every token of --sub SUB
    issued before --before. A revoked token gets 401 everywhere within 5 seconds."""
    if leaked is not None:
        if jti or sub or before:
            raise click.UsageError("give TOKEN alone, or --jti, or --sub")
        claims = claims_of(leaked)
        subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        done = client.revoke_token(claims["jti"], sub=subject, expires_at=_expiry(claims))
    elif jti is not None:
        if before:
            raise click.UsageError("--before goes with --sub alone")
        done = client.revoke_token(jti, sub=sub)
    elif sub is not None:
        issued_before = before.replace(tzinfo=before.tzinfo or UTC) if before else None
        done = client.revoke_subject(sub, issued_before=issued_before)
    else:
        raise click.UsageError("give TOKEN, --jti or --sub")
    if done.token is not None:
        owner = f" (sub {done.token.sub})" if done.token.sub else ""
        click.echo(f"token {done.token.jti}{owner} revoked")
    elif done.subject is not None:
        cut = done.subject
        click.echo(f"tokens of {cut.sub} issued before {render.when(cut.issued_before)} UTC revoked")


def revocations_table(found: Revocations) -> Table:
    table = Table("REVOKED", "JTI OR SUBJECT", "SUB", "UNTIL (UTC)", "AT (UTC)", box=None, pad_edge=False)
    for token in found.tokens:
        until, at = render.when(token.expires_at), render.when(token.revoked_at)
        table.add_row("token", token.jti, token.sub or "", until, at)
    for cut in found.subjects:
        before = f"issued before {render.when(cut.issued_before)}"
        table.add_row(before, cut.sub, cut.sub, "", render.when(cut.updated_at))
    return table


@tokens.command("ls")
@click.option("--json", "as_json", is_flag=True, help="The revocations as JSON.")
@api_command
def list_revocations(client: Client, as_json: bool) -> None:
    """Tokens revoked by jti (until they expire) and subjects whose older tokens are."""
    found = client.revocations()
    if as_json:
        render.print_json(found.raw)
    else:
        render.console().print(revocations_table(found))
