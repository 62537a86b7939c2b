"""``rempart incident …``: publish on the status page, scope a breach, build the notification
packs, revoke in bulk. Thin calls into services (``incidents``, ``breach``,
``notification_packs``, ``revocation``); the shared helpers live in ``rempart.cli``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

if TYPE_CHECKING:
    from rempart.services.runtime import Runtime

incident_app = typer.Typer(
    help="Incident : page d'état, périmètre d'une fuite, notifications, révocations.",
    no_args_is_help=True,
)

ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--actor", envvar="REMPART_ACTOR", help="Compte du back-office pour qui la commande agit."
    ),
]


def _when(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        from rempart import cli

        cli.err.print(f"[red]{what} :[/red] date ISO 8601 attendue ({value!r}).")
        raise typer.Exit(2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run(body: Any) -> Any:
    from rempart import cli

    return cli._run(body)


async def _actor(rt: Runtime, username: str | None) -> Any:
    from rempart import cli

    return await cli._actor(rt, username)


def _print(text: str) -> None:
    from rempart import cli

    cli.console.print(text)


# -- the status page -----------------------------------------------------------------------


@incident_app.command("open")
def incident_open(
    title: Annotated[str, typer.Option("--title", help="Titre court, en français.")],
    summary: Annotated[str, typer.Option("--summary", help="Ce qui se passe, en mots simples.")],
    advice: Annotated[
        str, typer.Option("--advice", help="Ce que les utilisateurs doivent faire.")
    ] = "",
    next_update: Annotated[
        str | None, typer.Option("--next-update", help="Prochaine information (ISO 8601).")
    ] = None,
    actor: ActorOpt = None,
) -> None:
    """Publier un incident sur la page d'état et son flux Atom."""
    from rempart.services import incidents

    nxt = _when(next_update, "--next-update")

    async def body(rt: Runtime) -> Any:
        return await incidents.open_incident(
            rt,
            title=title,
            summary=summary,
            advice=advice,
            next_update_at=nxt,
            actor=await _actor(rt, actor),
        )

    done = _run(body)
    _print(f"Incident publié ({done.id}) : /status et /status.atom")


@incident_app.command("update")
def incident_update(
    summary: Annotated[str, typer.Option("--summary")],
    advice: Annotated[str, typer.Option("--advice")] = "",
    next_update: Annotated[str | None, typer.Option("--next-update")] = None,
    actor: ActorOpt = None,
) -> None:
    """Publier une mise à jour de l'incident en cours."""
    from rempart.services import incidents

    nxt = _when(next_update, "--next-update")

    async def body(rt: Runtime) -> Any:
        return await incidents.update_incident(
            rt, summary=summary, advice=advice, next_update_at=nxt, actor=await _actor(rt, actor)
        )

    _run(body)
    _print("Mise à jour publiée.")


@incident_app.command("close")
def incident_close(
    summary: Annotated[str, typer.Option("--summary")],
    advice: Annotated[str, typer.Option("--advice")] = "",
    actor: ActorOpt = None,
) -> None:
    """Clore l'incident en cours (le dernier message reste dans l'historique)."""
    from rempart.services import incidents

    async def body(rt: Runtime) -> Any:
        return await incidents.close_incident(
            rt, summary=summary, advice=advice, actor=await _actor(rt, actor)
        )

    _run(body)
    _print("Incident clos.")


# -- breach scoping and notification packs -------------------------------------------------


@incident_app.command("scope")
def incident_scope(
    account: Annotated[str | None, typer.Option("--account", help="Compte du portail.")] = None,
    client: Annotated[
        str | None, typer.Option("--client", help="Client API (id interne ou client_id).")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Début (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Fin, exclue (ISO 8601).")] = None,
    no_proofs: Annotated[
        bool, typer.Option("--no-proofs", help="Sans preuves d'inclusion.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Tout le périmètre en JSON.")] = False,
    actor: ActorOpt = None,
) -> None:
    """Qui a été touché : bénéficiaires (par organisme) et professionnels, depuis le journal."""
    from rempart.services import breach

    start, end = _when(since, "--since"), _when(until, "--until")

    async def body(rt: Runtime) -> Any:
        who = await _actor(rt, actor)
        client_uuid = await breach.client_uuid(rt, client, actor=who) if client else None
        return await breach.scope(
            rt,
            account_id=_uuid(account) if account else None,
            client_id=client_uuid,
            since=start,
            until=end,
            proofs=not no_proofs,
            actor=who,
        )

    sc = _run(body)
    if as_json:
        print(json.dumps(breach.as_dict(sc), indent=1, sort_keys=True))
        return
    table = Table("Organisme", "Bénéficiaires touchés", "Lectures", "Catégories")
    for oid, ids in sorted(sc.beneficiaries.items()):
        rows = [s for s in sc.subjects if s.kind == "beneficiary" and s.ocam_id == oid]
        cats = sorted({c for s in rows for c in s.categories})
        table.add_row(str(oid), str(len(ids)), str(sum(s.reads for s in rows)), ", ".join(cats))
    _print(f"Périmètre {sc.id} — {sc.reads} lectures, preuves sur l'arbre de taille {sc.tree_size}")
    from rempart import cli

    cli.console.print(table)
    for sid, e in sorted(sc.structures.items()):
        _print(
            f"Professionnel {sid} : accès utilisé={'oui' if e.credential_used else 'non'}, "
            f"données propres={','.join(e.own_categories) or 'aucune'}, patients={e.patients}"
        )
    for s in sc.subjects:
        print(f"{s.kind}\t{s.id}\t{s.ocam_id or ''}\t{'|'.join(s.categories)}\t{s.reads}")


def _uuid(value: str) -> Any:
    from rempart import cli

    return cli._uuid(value, "Identifiant")


@incident_app.command("notify")
def incident_notify(
    scope_id: Annotated[str, typer.Argument(help="Périmètre (rempart incident scope).")],
    out: Annotated[Path, typer.Option("--out", help="Dossier des dossiers de notification.")],
    contact: Annotated[str, typer.Option("--contact", help="Contact donné aux personnes.")] = (
        "le délégué à la protection des données de votre organisme"
    ),
    actor: ActorOpt = None,
) -> None:
    """Projet de notification CNIL et courriers (par organisme), avis aux professionnels."""
    from rempart.services import notification_packs

    sid = _uuid(scope_id)

    async def body(rt: Runtime) -> Any:
        return await notification_packs.build(
            rt, sid, out, actor=await _actor(rt, actor), contact=contact
        )

    packs = _run(body)
    for p in packs.ocams:
        _print(
            f"{p.name} : {p.counts.people} personnes, {p.counts.records} lectures, "
            f"{p.letters} courriers → {p.folder}"
        )
    _print(f"Avis dans le portail : {len(packs.notices)} structures")


# -- mass revocation -----------------------------------------------------------------------


@incident_app.command("revoke")
def incident_revoke(
    structure: Annotated[str | None, typer.Option("--structure")] = None,
    ocam: Annotated[str | None, typer.Option("--ocam")] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Tous les comptes et jetons.")] = False,
    reason: Annotated[str, typer.Option("--reason")] = "",
    actor: ActorOpt = None,
) -> None:
    """Révoquer sessions et jetons (une structure ; un organisme ou tous : deux personnes)."""
    _mass("revoke", structure, ocam, everyone, reason, actor, None)


@incident_app.command("rotate-secrets")
def incident_rotate(
    out: Annotated[Path, typer.Option("--out", help="Fichier (0600) des nouveaux secrets.")],
    structure: Annotated[str | None, typer.Option("--structure")] = None,
    everyone: Annotated[bool, typer.Option("--all")] = False,
    reason: Annotated[str, typer.Option("--reason")] = "",
    actor: ActorOpt = None,
) -> None:
    """Renouveler les secrets des clients API (avec notification) ; --all : deux personnes."""
    _mass("rotate", structure, None, everyone, reason, actor, out)


@incident_app.command("approve")
def incident_approve(
    action_id: Annotated[str, typer.Argument()],
    out: Annotated[Path | None, typer.Option("--out")] = None,
    actor: ActorOpt = None,
) -> None:
    """Valider une action de masse demandée par une autre personne."""
    from rempart.services import revocation

    aid = _uuid(action_id)

    async def body(rt: Runtime) -> Any:
        return await revocation.approve(rt, aid, actor=await _actor(rt, actor), secrets_out=out)

    _report(_run(body))


def _mass(
    kind: str,
    structure: str | None,
    ocam: str | None,
    everyone: bool,
    reason: str,
    actor: str | None,
    out: Path | None,
) -> None:
    from rempart.services import revocation

    if sum((structure is not None, ocam is not None, everyone)) != 1:
        _print("[red]Choisir exactement un de --structure, --ocam, --all.[/red]")
        raise typer.Exit(2)
    scope = "structure" if structure else "ocam" if ocam else "all"
    target = _uuid(structure or ocam or "") if not everyone else None

    async def body(rt: Runtime) -> Any:
        return await revocation.request(
            rt,
            kind=kind,
            scope=scope,
            target_id=target,
            reason=reason,
            actor=await _actor(rt, actor),
            secrets_out=out,
        )

    _report(_run(body))


def _report(o: Any) -> None:
    if o.status == "requested":
        _print(
            f"Action {o.action_id} demandée : une seconde personne doit la valider "
            f"(rempart incident approve {o.action_id} --actor …)."
        )
        return
    _print(
        f"Fait : {o.sessions} sessions et {o.tokens} jetons révoqués, {o.accounts} comptes "
        f"revérifieront leur clé d'accès, {o.clients} secrets renouvelés"
        + (f" (fichier {o.secrets_file})" if o.secrets_file else "")
        + "."
    )
