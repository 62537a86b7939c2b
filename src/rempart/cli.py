"""The ``rempart`` command: one Typer sub-app per area, thin calls into services.

Every command builds its ``Settings`` from the environment when it runs (never at import time),
works from any directory, and may run while ``rempart serve`` runs (SQLite included).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from rempart.config import ConfigError, Settings
from rempart.domain.channels import Channel
from rempart.domain.errors import RempartError
from rempart.logging import configure_logging
from rempart.security.principal import Principal, system
from rempart.services import key_rotation
from rempart.services.runtime import Runtime, build_runtime

T = TypeVar("T")
console = Console(stderr=False)
err = Console(stderr=True)

app = typer.Typer(
    help="Rempart — plateforme de tiers payant.", no_args_is_help=True, add_completion=False
)
db_app = typer.Typer(help="Base de données.", no_args_is_help=True)
import_app = typer.Typer(help="Imports de fichiers.", no_args_is_help=True)
channel_app = typer.Typer(help="Ouvrir ou fermer un service (kill switch).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(channel_app, name="channel")
audit_app = typer.Typer(help="Journal d'audit infalsifiable.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
security_app = typer.Typer(help="Alertes et confinements.", no_args_is_help=True)
app.add_typer(security_app, name="security")
pec_app = typer.Typer(help="Prises en charge à examiner (gestionnaires).", no_args_is_help=True)
app.add_typer(pec_app, name="pec")
pay_app = typer.Typer(help="Campagnes de paiement (SEPA).", no_args_is_help=True)
app.add_typer(pay_app, name="pay")
ledger_app = typer.Typer(help="Grand livre (partie double).", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
keys_app = typer.Typer(help="Clés de chiffrement des données.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
account_app = typer.Typer(
    help="Comptes : récupération, mots de passe transitoires.", no_args_is_help=True
)
app.add_typer(account_app, name="account")

ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--actor", envvar="REMPART_ACTOR", help="Compte du back-office pour qui la commande agit."
    ),
]


def _settings() -> Settings:
    try:
        s = Settings()
        s.check_for_startup()
    except ConfigError as e:
        err.print(f"[red]Configuration :[/red] {e}")
        raise typer.Exit(2) from None
    configure_logging(
        s.model_copy(update={"log_level": os.environ.get("REMPART_LOG_LEVEL", "warning")})
    )
    return s


def _run(body: Callable[[Runtime], Awaitable[T]], settings: Settings | None = None) -> T:
    settings = settings or _settings()

    async def main() -> T:
        rt = build_runtime(settings)
        try:
            await key_rotation.load(rt)  # write with the current data-key version
            return await body(rt)
        finally:
            await rt.db.dispose()

    try:
        return asyncio.run(main())
    except RempartError as e:
        err.print(f"[red]Erreur :[/red] {e.message}")
        for fe in e.errors:
            err.print(f"  • {fe.field} : {fe.reason}")
        raise typer.Exit(1) from None


async def _actor(rt: Runtime, username: str | None) -> Principal:
    from rempart.services.registry import operator_principal

    if username:
        return await operator_principal(rt, username)
    return system(f"cli:{getpass.getuser()}")


# -- db ------------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Créer ou mettre à jour le schéma (migrations Alembic)."""
    from rempart.db.migrate import upgrade

    s = _settings()
    upgrade(s.database)
    console.print("Schéma à jour.")


# -- import ----------------------------------------------------------------------------------


@import_app.command("beneficiaries")
def import_beneficiaries_cmd(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Fichier CSV.")
    ],
    amc: Annotated[str, typer.Option("--amc", help="Numéro AMC de l'organisme.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Tout vérifier sans rien écrire.")
    ] = False,
    accept_closures: Annotated[
        bool,
        typer.Option("--accept-closures", help="Accepter de fermer beaucoup de droits d'un coup."),
    ] = False,
    actor: ActorOpt = None,
) -> None:
    """Importer le fichier des bénéficiaires d'un organisme (tout ou rien, rapport de rejets)."""
    from rempart.services.beneficiaries import import_beneficiaries

    size = file.stat().st_size
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]Import[/bold]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:>11,} lignes"),
        TextColumn("{task.fields[rate]:>7,.0f} lignes/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task("import", total=size, rows=0, rate=0.0)
        done = {"rows": 0}

        def on_progress(n_bytes: int, n_rows: int) -> None:
            done["rows"] += n_rows
            rate = done["rows"] / max(time.monotonic() - started, 1e-3)
            progress.update(task, advance=n_bytes, rows=done["rows"], rate=rate)

        async def body(rt: Runtime) -> Any:
            who = await _actor(rt, actor)
            return await import_beneficiaries(
                rt,
                file,
                amc_number=amc,
                actor=who,
                dry_run=dry_run,
                accept_closures=accept_closures,
                progress=on_progress,
            )

        summary = _run(body)
    table = Table(title=f"Import {file.name} — organisme {amc}", show_header=False)
    status = {
        "committed": "importé",
        "rejected": "REFUSÉ (rien n'a été écrit)",
        "dry_run": "simulation (rien n'a été écrit)",
        "failed": "ÉCHEC (rien n'a été écrit)",
    }
    table.add_row("Résultat", status[summary.status])
    for label, value in (
        ("Lignes lues", summary.rows_total),
        ("Nouveaux bénéficiaires", summary.rows_new),
        ("Modifiés", summary.rows_changed),
        ("Inchangés", summary.rows_unchanged),
        ("Droits fermés (absents du fichier)", summary.rows_closed),
        ("Lignes rejetées", summary.rows_rejected),
    ):
        table.add_row(label, f"{value:,}".replace(",", " "))
    table.add_row("Rapport", str(summary.report_path))
    console.print(table)
    for r in summary.first_rejects:
        err.print(f"  ligne {r.line} — {r.field} : {r.reason}")
    if summary.rows_rejected:
        raise typer.Exit(1)


# -- channels ----------------------------------------------------------------------------------


def _channel(name: str) -> Channel:
    try:
        return Channel(name)
    except ValueError:
        err.print(
            f"[red]Service inconnu :[/red] {name}. Services : {', '.join(c.value for c in Channel)}"
        )
        raise typer.Exit(2) from None


@channel_app.command("off")
def channel_off(
    name: Annotated[
        str,
        typer.Argument(
            help="portal-signin, portal-rights, api-rights, intake, adjudication, payments"
        ),
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Message montré aux utilisateurs (en français).")
    ],
    until: Annotated[
        str | None,
        typer.Option(
            "--until", "--expected-back", help="Retour prévu (ISO 8601, UTC si sans fuseau)."
        ),
    ] = None,
    actor: ActorOpt = None,
) -> None:
    """Fermer un service ; les autres continuent."""
    from rempart.services import channels

    channel = _channel(name)
    back = None
    if until:
        back = datetime.fromisoformat(until)
        if back.tzinfo is None:
            from datetime import UTC

            back = back.replace(tzinfo=UTC)

    async def body(rt: Runtime) -> Any:
        return await channels.switch(
            rt,
            channel,
            open_=False,
            reason=reason,
            expected_back_at=back,
            actor=await _actor(rt, actor),
        )

    _run(body)
    console.print(f"Service [bold]{channel.value}[/bold] fermé : {reason}")


@channel_app.command("on")
def channel_on(
    name: Annotated[str, typer.Argument()],
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    actor: ActorOpt = None,
) -> None:
    """Rouvrir un service."""
    from rempart.services import channels

    channel = _channel(name)

    async def body(rt: Runtime) -> Any:
        return await channels.switch(
            rt, channel, open_=True, reason=reason, actor=await _actor(rt, actor)
        )

    _run(body)
    console.print(f"Service [bold]{channel.value}[/bold] rouvert.")


@channel_app.command("status")
def channel_status() -> None:
    """État de chaque service."""
    from rempart.services import channels

    states = _run(lambda rt: channels.states(rt, fresh=True))
    table = Table("Service", "État", "Motif")
    for s in states.values():
        table.add_row(s.channel.value, "ouvert" if s.open else "[red]fermé[/red]", s.reason or "")
    console.print(table)


# -- audit -----------------------------------------------------------------------------------


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sceller maintenant les lignes en attente (arbre de Merkle signé)."""
    from rempart.services import audit_log

    done = _run(audit_log.checkpoint_all)
    if not done:
        console.print("Rien à sceller.")
    for cp in done:
        console.print(
            f"Scellé : {cp.sealed_rows} lignes, arbre de {cp.tree_size} feuilles, "
            f"racine {cp.root_hash.hex()[:16]}…"
        )


@audit_app.command("verify")
def audit_verify() -> None:
    """Vérifier chaque point de contrôle et chaque ligne scellée."""
    from rempart.services import audit_log

    report = _run(audit_log.verify)
    for problem in report.problems[:100]:
        err.print(f"[red]✗[/red] {problem}")
    if len(report.problems) > 100:
        err.print(f"… et {len(report.problems) - 100} autres problèmes")
    console.print(
        f"{report.rows} lignes et {report.checkpoints} points de contrôle vérifiés : "
        + (
            "[green]intègre[/green]"
            if report.ok
            else f"[red]{len(report.problems)} problème(s)[/red]"
        )
    )
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("prove")
def audit_prove(
    event_id: Annotated[str, typer.Argument(help="Identifiant de l'événement.")],
) -> None:
    """Preuve d'inclusion d'un événement, vérifiable avec la seule clé publique (JSON)."""
    from uuid import UUID

    from rempart.services import audit_log

    try:
        eid = UUID(event_id)
    except ValueError:
        err.print("[red]Identifiant d'événement invalide.[/red]")
        raise typer.Exit(2) from None
    proof = _run(lambda rt: audit_log.prove(rt, eid))
    print(json.dumps(proof.as_dict(), indent=2, ensure_ascii=False))


# -- security ----------------------------------------------------------------------------------


def _uuid(value: str, what: str) -> Any:
    from uuid import UUID

    try:
        return UUID(value)
    except ValueError:
        err.print(f"[red]{what} invalide.[/red]")
        raise typer.Exit(2) from None


@pec_app.command("queue")
def pec_queue(actor: ActorOpt = None) -> None:
    """Les prises en charge à examiner, les plus anciennes d'abord."""
    from rempart.services import pec

    async def body(rt: Runtime) -> Any:
        return await pec.queue(rt, await _actor(rt, actor))

    table = Table("PEC", "Numéro", "Domaine", "Devis du", "Montant", "AMC proposée", "Motifs")
    for item in _run(body):
        table.add_row(
            str(item.id),
            item.number,
            item.domain.value,
            item.care_date.isoformat(),
            item.expense.french(),
            item.proposal.french(),
            ", ".join(f"{r.code.value} {r.code.label}" for r in item.reasons),
        )
    console.print(table)


@pec_app.command("decide")
def pec_decide(
    pec_id: Annotated[str, typer.Argument(help="Identifiant de la PEC (rempart pec queue).")],
    accept: Annotated[
        bool, typer.Option("--accept/--refuse", help="Accorder (au montant proposé) ou refuser.")
    ],
    actor: ActorOpt = None,
) -> None:
    """Décider une prise en charge à examiner (audité au nom du gestionnaire)."""
    from rempart.services import pec

    pid = _uuid(pec_id, "Identifiant de PEC")

    async def body(rt: Runtime) -> Any:
        return await pec.review(rt, await _actor(rt, actor), pid, accept=accept)

    answer = _run(body)
    console.print(f"PEC {answer.number} : {answer.status.label} ({answer.amc.french()})")


def _print_run(run: Any) -> None:
    from rempart.domain.money import Money

    if run.advices == 0 and not run.holds:
        console.print("Rien à payer : aucune facture décidée n'attend de paiement.")
        return
    labels = {"prepared": "préparée", "approved": "validée", "exported": "exportée"}
    state = "simulation (rien n'est enregistré)" if run.dry_run else labels[run.status]
    console.print(
        f"Campagne {run.id} du {run.run_date:%d/%m/%Y} : {state} — {run.transfers} virements, "
        f"{run.advices} relevés, total {Money(run.total_cents).french()}"
    )
    for h in run.holds:
        console.print(
            f"  [yellow]retenu[/yellow] structure {h['structure_id']} : "
            f"{Money(h['amount_cents']).french()} — {h['label']}"
        )
    for f in run.funding:
        console.print(
            f"  appel de fonds OCAM {f['ocam_id']} : {Money(f['amount_cents']).french()} "
            f"({f['invoices']} factures)"
        )


def _print_run_json(run: Any) -> None:
    """DESIGN §5: at least ``run_id``, ``transfers`` (a count) and ``total`` (euros)."""
    from rempart.domain.money import Money

    doc = {
        "run_id": str(run.id),
        "run_date": run.run_date.isoformat(),
        "status": "dry_run" if run.dry_run else run.status,
        "transfers": run.transfers,
        "advices": run.advices,
        "total": str(Money(run.total_cents)),
        "holds": run.holds,
        "funding": run.funding,
    }
    print(json.dumps(doc, ensure_ascii=False), flush=True)


@pay_app.command("run")
def pay_run(
    day: Annotated[
        str | None,
        typer.Option("--date", help="Date d'exécution AAAA-MM-JJ (défaut : aujourd'hui)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Calculer sans enregistrer.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Une ligne JSON : run_id, transfers, total…")
    ] = False,
    actor: ActorOpt = None,
) -> None:
    """Préparer la campagne de paiement du jour (ou la montrer si elle existe déjà)."""
    from datetime import date as date_

    from rempart.services import payments

    try:
        run_date = date_.fromisoformat(day) if day else None
    except ValueError:
        err.print("[red]--date : date invalide (AAAA-MM-JJ attendu).[/red]")
        raise typer.Exit(2) from None

    async def body(rt: Runtime) -> Any:
        return await payments.prepare(
            rt, await _actor(rt, actor), run_date=run_date, dry_run=dry_run
        )

    run = _run(body)
    if as_json:
        _print_run_json(run)
    else:
        _print_run(run)


@pay_app.command("approve")
def pay_approve(run_id: Annotated[str, typer.Argument()], actor: ActorOpt = None) -> None:
    """Valider une campagne (une seconde personne habilitée aux paiements)."""
    from rempart.services import payments

    rid = _uuid(run_id, "Identifiant de campagne")

    async def body(rt: Runtime) -> Any:
        return await payments.approve(rt, await _actor(rt, actor), rid)

    _print_run(_run(body))


@pay_app.command("export")
def pay_export(
    run_id: Annotated[str, typer.Argument()],
    out: Annotated[Path, typer.Option("--out", help="Fichier pain.001.001.09 à écrire.")],
    actor: ActorOpt = None,
) -> None:
    """Écrire le fichier de virements SEPA d'une campagne validée (toujours le même fichier)."""
    from rempart.services import payments

    rid = _uuid(run_id, "Identifiant de campagne")

    async def body(rt: Runtime) -> Any:
        return await payments.export(rt, await _actor(rt, actor), rid, out)

    run, digest = _run(body)
    _print_run(run)
    console.print(f"{out} — SHA-256 {digest}")


@pay_app.command("advance")
def pay_advance(
    structure_id: Annotated[str, typer.Argument(help="Structure (professionnel) à avancer.")],
    days: Annotated[int, typer.Option("--days", help="Jours sans paiement à couvrir.")],
    rate: Annotated[int, typer.Option("--rate", help="Part du volume moyen, en %.")] = 80,
    actor: ActorOpt = None,
) -> None:
    """Accorder un acompte calculé sur les paiements des 90 derniers jours."""
    from rempart.domain.money import Money
    from rempart.services import advances

    sid = _uuid(structure_id, "Identifiant de structure")

    async def body(rt: Runtime) -> Any:
        return await advances.grant(rt, await _actor(rt, actor), sid, days=days, rate_pct=rate)

    a = _run(body)
    console.print(
        f"Acompte {a.id} : {Money(a.amount_cents).french()} "
        f"(payé sur 90 jours : {Money(a.paid_in_window_cents).french()}, "
        f"{a.days} jours, {a.rate_pct} %)"
    )


@pay_app.command("advance-export")
def pay_advance_export(
    advance_id: Annotated[str, typer.Argument()],
    out: Annotated[Path, typer.Option("--out", help="Fichier pain.001.001.09 à écrire.")],
    actor: ActorOpt = None,
) -> None:
    """Écrire le fichier SEPA d'un acompte (toujours le même fichier)."""
    from rempart.services import advances

    aid = _uuid(advance_id, "Identifiant d'acompte")

    async def body(rt: Runtime) -> Any:
        return await advances.export(rt, await _actor(rt, actor), aid, out)

    console.print(f"{out} — SHA-256 {_run(body)}")


@pay_app.command("reconcile")
def pay_reconcile(
    statement: Annotated[Path, typer.Argument(help="Relevé camt.053 ou camt.054 (XML).")],
    actor: ActorOpt = None,
) -> None:
    """Rapprocher un relevé bancaire des virements envoyés (EndToEndId) ; les retours rouvrent
    les montants et mettent les coordonnées bancaires en vérification."""
    from rempart.domain.money import Money
    from rempart.services import reconciliation

    data = statement.read_bytes()

    async def body(rt: Runtime) -> Any:
        return await reconciliation.import_statement(
            rt, await _actor(rt, actor), data, statement.name
        )

    report = _run(body)
    if report.already_imported:
        console.print("Relevé déjà importé : voici son rapport.")
    console.print(f"{len(report.booked)} virements comptabilisés")
    for r in report.returned:
        console.print(
            f"[yellow]retour[/yellow] {r['end_to_end_id']} ({Money(r['amount_cents']).french()}, "
            f"motif {r['reason']}) : montant rouvert, coordonnées bancaires à vérifier"
        )
    for u in report.unmatched:
        console.print(f"[red]non rapproché[/red] {u['end_to_end_id']} : {u['why']}")


@keys_app.command("rotate")
def keys_rotate(
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Reprendre : pas de nouvelle version, seulement le rechiffrement."
        ),
    ] = False,
    actor: ActorOpt = None,
) -> None:
    """Nouvelle version de la clé de données pour les écritures, puis rechiffrement des données
    existantes par lots, pendant que le service répond."""
    from rich.progress import Progress

    with Progress(console=err) as bar:
        tasks: dict[str, Any] = {}

        def shown(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(f"{table}", total=total)
            bar.update(tasks[table], completed=done, total=total)

        async def body(rt: Runtime) -> Any:
            return await key_rotation.rotate(
                rt, await _actor(rt, actor), resume=resume, progress=shown
            )

        done = _run(body)
    total = sum(done.rows.values())
    console.print(f"Version de clé {done.version} : {total} lignes rechiffrées")
    for table, n in done.rows.items():
        console.print(f"  {table} : {n}")


@ledger_app.command("balance")
def ledger_balance(
    account: Annotated[
        str | None, typer.Option("--account", help="Un compte, ex. ps:<id>.")
    ] = None,
    actor: ActorOpt = None,
) -> None:
    """Soldes du grand livre (débit − crédit) ; leur somme est toujours nulle."""
    from rempart.domain.money import Money
    from rempart.services import ledger

    async def body(rt: Runtime) -> Any:
        return await ledger.balances(rt, await _actor(rt, actor), account)

    balances = _run(body)
    table = Table("Compte", "Solde")
    for name, cents in balances.items():
        table.add_row(name, Money(cents).french())
    console.print(table)
    console.print(f"Balance générale : {Money(sum(balances.values())).french()}")


@security_app.command("alerts")
def security_alerts(actor: ActorOpt = None) -> None:
    """Les alertes de sécurité, les plus récentes d'abord."""
    from rempart.services import security_ops

    async def body(rt: Runtime) -> Any:
        return await security_ops.alerts(rt, actor=await _actor(rt, actor))

    table = Table("Alerte", "Type", "Principal", "Structure", "Ouverte le", "Détail")
    for a in _run(body):
        table.add_row(
            str(a.id),
            a.kind,
            f"{a.principal_kind} {a.principal_id}",
            str(a.structure_id or ""),
            a.opened_at.isoformat(timespec="seconds"),
            a.detail or "",
        )
    console.print(table)


@security_app.command("touched")
def security_touched(alert_id: Annotated[str, typer.Argument()], actor: ActorOpt = None) -> None:
    """Les bénéficiaires touchés par le principal d'une alerte, ce jour-là."""
    from rempart.services import security_ops

    aid = _uuid(alert_id, "Identifiant d'alerte")

    async def body(rt: Runtime) -> Any:
        return await security_ops.touched(rt, aid, actor=await _actor(rt, actor))

    result = _run(body)
    for bid in result.beneficiary_ids:
        print(bid)
    err.print(
        f"{len(result.beneficiary_ids)} bénéficiaires, "
        f"{result.unknown_cards} cartes inconnues (essais)"
    )


@security_app.command("identify")
def security_identify(
    engagement_number: Annotated[
        str, typer.Argument(help="Numéro d'engagement trouvé dans une fuite.")
    ],
    actor: ActorOpt = None,
) -> None:
    """Quel client API a reçu ce numéro d'engagement de canari (identifie l'accès qui a fui)."""
    from rempart.services import security_ops

    async def body(rt: Runtime) -> Any:
        return await security_ops.identify(rt, engagement_number, actor=await _actor(rt, actor))

    found = _run(body)
    if not found:
        console.print("Ce numéro n'est pas un numéro de canari émis par Rempart.")
        raise typer.Exit(1)
    for client_id in found:
        console.print(f"Émis au client API {client_id}")


@security_app.command("lift")
def security_lift(containment_id: Annotated[str, typer.Argument()], actor: ActorOpt = None) -> None:
    """Lever un confinement : demandé par un agent sécurité, validé par un second."""
    from rempart.services import security_ops

    cid = _uuid(containment_id, "Identifiant de confinement")

    async def body(rt: Runtime) -> Any:
        return await security_ops.lift(rt, cid, actor=await _actor(rt, actor))

    outcome = _run(body)
    if outcome.status == "requested":
        console.print("Levée demandée : un second agent sécurité doit la valider.")
    elif outcome.status == "lifted_others_open":
        console.print("Levée enregistrée, mais un autre confinement de ce client reste actif.")
    else:
        console.print(
            "Confinement levé. Nouveau secret du client, à transmettre au cabinet par "
            "un canal sûr (il ne sera plus affiché) :"
        )
        print(outcome.new_client_secret)


# -- accounts ----------------------------------------------------------------------------------


@account_app.command("recover")
def account_recover(
    username: Annotated[str, typer.Argument(help="Compte qui a perdu ses clés d'accès.")],
    reason: Annotated[
        str, typer.Option(help="Comment l'identité de la personne a été vérifiée.")
    ] = "",
    actor: ActorOpt = None,
) -> None:
    """Demander la récupération d'un compte (clés perdues) ; une seconde personne valide."""
    from rempart.services import recovery

    async def body(rt: Runtime) -> Any:
        return await recovery.request(rt, username, actor=await _actor(rt, actor), reason=reason)

    done = _run(body)
    console.print(f"Demande enregistrée : {done.id}")
    console.print("Une autre personne habilitée doit la valider : rempart account approve-recovery")


@account_app.command("approve-recovery")
def account_approve_recovery(
    request_id: Annotated[str, typer.Argument()], actor: ActorOpt = None
) -> None:
    """Valider une récupération : clés et sessions retirées, nouveau lien d'inscription."""
    from rempart.services import recovery

    rid = _uuid(request_id, "Identifiant de demande")

    async def body(rt: Runtime) -> Any:
        return await recovery.approve(rt, rid, actor=await _actor(rt, actor))

    settings = _settings()
    done = _run(body, settings)
    console.print(
        f"Compte {done.username} : {done.passkeys_revoked} clé(s) et "
        f"{done.sessions_revoked} session(s) retirées ; le compte est prévenu par courriel."
    )
    console.print(
        "Nouveau lien d'inscription (7 jours, une seule fois), à remettre par un autre canal "
        "que le courriel du compte :"
    )
    print(f"{settings.public_base_url}/inscription/{done.invitation_token}")


@account_app.command("allow-password")
def account_allow_password(
    username: Annotated[str, typer.Argument()],
    off: Annotated[
        bool, typer.Option("--off", help="Retirer l'autorisation (mot de passe et TOTP oubliés).")
    ] = False,
    actor: ActorOpt = None,
) -> None:
    """Autoriser (ou retirer) un mot de passe transitoire, toujours avec un code TOTP.

    Sans effet tant que REMPART_TRANSITIONAL_PASSWORDS n'est pas activé."""
    from rempart.services import passwords

    async def body(rt: Runtime) -> Any:
        return await passwords.allow(rt, username, actor=await _actor(rt, actor), allowed=not off)

    settings = _settings()
    _run(body, settings)
    if off:
        console.print(f"Mot de passe transitoire retiré pour {username}.")
        return
    console.print(
        f"Mot de passe transitoire autorisé pour {username} : la personne le choisit, avec son "
        "code TOTP, depuis un lien d'inscription."
    )
    if not settings.transitional_passwords:
        console.print("[yellow]REMPART_TRANSITIONAL_PASSWORDS est désactivé : sans effet.[/yellow]")


# -- serve, worker, demo -----------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[
        int, typer.Option(help="Processus serveurs (1 sert le mieux sur 2 cœurs).")
    ] = 1,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Ne pas lancer de worker dans le serveur.")
    ] = False,
) -> None:
    """Servir l'API, le portail et la page d'état."""
    import uvicorn

    os.environ["REMPART_PORT"] = str(port)
    os.environ["REMPART_SERVE_WORKER"] = "0" if no_worker else "1"
    s = _settings()
    from rempart.db.migrate import upgrade

    upgrade(s.database)
    uvicorn.run(
        "rempart.web.asgi:make_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Traiter ce qui attend, puis s'arrêter.")
    ] = False,
) -> None:
    """Lancer le worker (tâches de fond)."""
    from rempart.jobs import worker as jobs

    if once:
        done = _run(jobs.run_once)
        console.print(", ".join(f"{k}: {v}" for k, v in done.items()))
        return
    _run(jobs.run_forever)


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    beneficiaries: Annotated[int, typer.Option(help="Nombre de bénéficiaires à créer.")] = 5000,
    seed: Annotated[int, typer.Option(help="Graine : mêmes données pour la même graine.")] = 1,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Préparer les données sans servir.")
    ] = False,
    export_fixtures: Annotated[
        Path | None,
        typer.Option(help="Écrire cards.csv, clients.json, operators.json, contracts.csv ici."),
    ] = None,
    export_canaries: Annotated[
        Path | None, typer.Option(help="Écrire les cartes canari dans ce fichier.")
    ] = None,
) -> None:
    """Créer une base de démonstration, afficher les liens d'inscription, puis servir."""
    from rempart.services import demo as demo_service

    os.environ["REMPART_PORT"] = str(port)
    s = _settings()
    if s.env == "prod":
        err.print("[red]La démonstration est interdite en production.[/red]")
        raise typer.Exit(2)
    _reset_demo_database(s)
    base_url = s.public_base_url
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(label: str, n: int, _total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=None)
            progress.advance(tasks[label], n)

        result = _run(
            lambda rt: demo_service.seed(
                rt, beneficiaries=beneficiaries, seed=seed, base_url=base_url, progress=on_progress
            ),
            s,
        )
    count = f"{result.beneficiaries:_}".replace("_", "\u202f")
    console.print(
        f"[bold]Démonstration prête[/bold] : {count} bénéficiaires, "
        f"{len(result.clients)} clients API, {len(result.operators)} comptes du back-office."
    )
    if export_fixtures:
        for p in demo_service.export_fixtures(result, export_fixtures):
            console.print(f"  fixture : {p}")
    if export_canaries:
        demo_service.export_canaries(result, export_canaries)
        console.print(f"  canaris : {export_canaries}")
    console.print("[bold]Liens d'inscription[/bold] (usage unique, valables 7 jours) :")
    for username, role, link in result.invitations:
        console.print(f"  {username:<30} {role:<14} {link}", soft_wrap=True, highlight=False)
    console.print(
        f"Portail : [bold]{base_url}/[/bold]   État du service : {base_url}/status   "
        f"API : {base_url}/docs"
    )
    if no_serve:
        return
    serve(host=host, port=port, workers=1, no_worker=False)


def _reset_demo_database(s: Settings) -> None:
    """A demo database is recreated; any other non-empty database is left alone (refused)."""
    from rempart.db.migrate import upgrade
    from rempart.services.demo import is_demo_database

    upgrade(s.database)
    state = _run(is_demo_database, s)
    if state is False:
        err.print(
            "[red]Cette base contient des données qui ne viennent pas de la démonstration : "
            "refus de l'écraser.[/red] "
            "Choisissez un autre REMPART_DATA_DIR ou REMPART_DATABASE_URL."
        )
        raise typer.Exit(2)
    if state is True:
        _drop_all(s)
        upgrade(s.database)


def _drop_all(s: Settings) -> None:
    from sqlalchemy import create_engine, text

    from rempart.db.engine import sync_url

    if s.is_sqlite:
        path = Path(s.database.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    engine = create_engine(sync_url(s.database))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


from rempart.cli_incident import incident_app  # noqa: E402  (it uses the helpers above)

app.add_typer(incident_app, name="incident")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
