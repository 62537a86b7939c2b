"""Incident response, the pure part: what a breach scope exposed, the inclusion proofs of many
audit rows at once, and the French words said to the people concerned (GDPR art. 33 and 34).

The rule: a person or a professional is told *only* what the audit log proves was read about
them; nobody is told they are affected when they were not.

    >>> merge_categories(["coverage", "claims,coverage", ""])
    ('claims', 'coverage')
    >>> category_labels(("coverage",))
    ['vos droits à la complémentaire santé (organisme, garanties, dates de validité)']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rempart.domain.merkle import Frontier, _split, node_hash, path_ranges

CATEGORY_LABELS = {
    "coverage": "vos droits à la complémentaire santé (organisme, garanties, dates de validité)",
    "claims": "des factures de soins (dates, actes, montants)",
    "identity": "votre identité (nom, prénom, date de naissance)",
    "bank": "les coordonnées bancaires (IBAN)",
    "contact": "l'adresse électronique",
}
# What the CNIL form calls them (art. 33(3)(a)).
CATEGORY_CNIL = {
    "coverage": "données de couverture complémentaire santé (organisme, garanties, validité)",
    "claims": "données de facturation de soins (données de santé)",
    "identity": "données d'identification",
    "bank": "coordonnées bancaires de professionnels de santé",
    "contact": "adresses électroniques de comptes",
}


def merge_categories(values: Iterable[str | None]) -> tuple[str, ...]:
    """The union of comma-joined category lists, sorted; empty parts dropped."""
    return tuple(sorted({c for v in values if v for c in v.split(",") if c}))


def category_labels(categories: Iterable[str]) -> list[str]:
    return [CATEGORY_LABELS.get(c, c) for c in categories]


# -- many inclusion proofs in one pass over the leaves -------------------------------------


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """For target leaves in a tree of ``size``: the *pure* ranges (needed for some proof and
    holding no target leaf) whose roots must be streamed. Pure ranges are pairwise disjoint —
    if one held another, the inner one would lie on the path of a target inside the outer —
    so each streamed leaf feeds at most one ``Frontier``: O(size) work for any number of
    targets, instead of one full pass per proof."""

    size: int
    targets: frozenset[int]
    pure: tuple[tuple[int, int], ...]  # sorted by start

    @classmethod
    def of(cls, targets: Iterable[int], size: int) -> ProofPlan:
        wanted = frozenset(targets)
        sorted_targets = sorted(wanted)
        needed = {r for t in wanted for r in path_ranges(t, size)}

        def holds_target(r: tuple[int, int]) -> bool:
            from bisect import bisect_left

            i = bisect_left(sorted_targets, r[0])
            return i < len(sorted_targets) and sorted_targets[i] < r[1]

        pure = tuple(sorted(r for r in needed if not holds_target(r)))
        return cls(size, wanted, pure)

    def proofs(
        self, roots: dict[tuple[int, int], bytes], leaves: dict[int, bytes]
    ) -> dict[int, list[bytes]]:
        """The audit path of every target, from the pure ranges' roots and the targets' own
        leaf hashes."""
        memo: dict[tuple[int, int], bytes] = dict(roots)
        for t in self.targets:
            memo[(t, t + 1)] = leaves[t]

        def node(start: int, end: int) -> bytes:
            got = memo.get((start, end))
            if got is None:
                k = _split(end - start)
                got = node_hash(node(start, start + k), node(start + k, end))
                memo[(start, end)] = got
            return got

        return {t: [node(a, b) for a, b in path_ranges(t, self.size)] for t in self.targets}


class StreamFold:
    """Feed leaves (in index order, in any number of parts) into the pure ranges' frontiers,
    keeping the targets' own leaf hashes; ``finish`` gives both to ``ProofPlan.proofs``."""

    def __init__(self, plan: ProofPlan) -> None:
        self.plan, self.pos, self.current = plan, 0, Frontier()
        self.roots: dict[tuple[int, int], bytes] = {}
        self.targets: dict[int, bytes] = {}

    def _close_before(self, index: int) -> None:
        ranges = self.plan.pure
        while self.pos < len(ranges) and ranges[self.pos][1] <= index:
            self.roots[ranges[self.pos]] = self.current.root()
            self.pos, self.current = self.pos + 1, Frontier()

    def feed(self, leaves: Iterable[tuple[int, bytes]]) -> None:
        ranges, targets = self.plan.pure, self.plan.targets
        for index, h in leaves:
            if index in targets:
                self.targets[index] = h
            if self.pos < len(ranges) and ranges[self.pos][1] <= index:
                self._close_before(index)
            if self.pos < len(ranges) and ranges[self.pos][0] <= index:
                self.current.append(h)

    def finish(self) -> tuple[dict[tuple[int, int], bytes], dict[int, bytes]]:
        self._close_before(self.plan.size + 1)
        return self.roots, self.targets


def fold_pure_ranges(
    plan: ProofPlan, leaves: Iterable[tuple[int, bytes]]
) -> tuple[dict[tuple[int, int], bytes], dict[int, bytes]]:
    fold = StreamFold(plan)
    fold.feed(leaves)
    return fold.finish()


# -- what people are told ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PsExposure:
    """What one scope found about one professional structure."""

    credential_used: bool  # its own account or API client was the one used
    own_categories: tuple[str, ...]  # its own data read (bank details…)
    patients: int  # its patients (care relationship before the reads) whose data was read

    @property
    def affected(self) -> bool:
        return self.credential_used or bool(self.own_categories) or self.patients > 0


def ps_notice(exposure: PsExposure, *, contact: str) -> tuple[str, str]:
    """(title, body) of the in-portal notice; only for an affected structure."""
    if not exposure.affected:
        raise ValueError("no notice for a structure the incident did not touch")
    parts: list[str] = []
    todo: list[str] = []
    if exposure.credential_used:
        parts.append(
            "Un accès de votre structure (compte du portail ou logiciel) a été utilisé pour "
            "consulter des droits de manière anormale. Cet accès a été bloqué automatiquement."
        )
        todo.append(
            "Faites vérifier le poste et le logiciel qui utilisaient cet accès ; un nouveau "
            "secret vous sera remis par un canal sûr."
        )
    if exposure.own_categories:
        parts.append(
            "Des données de votre structure ont été consultées : "
            + ", ".join(category_labels(exposure.own_categories))
            + "."
        )
        todo.append(
            "Vérifiez vos coordonnées bancaires sur la page « Coordonnées bancaires » ; "
            "Rempart ne vous les demandera jamais par courriel ni par téléphone."
        )
    if exposure.patients:
        who = (
            "un de vos patients"
            if exposure.patients == 1
            else f"{exposure.patients} de vos patients"
        )
        parts.append(
            f"Les droits à la complémentaire santé de {who} ont été consultés. Leur organisme "
            "complémentaire les informe directement par courrier."
        )
        todo.append(
            "Si un patient vous interroge, vous pouvez lui confirmer qu'il recevra un courrier "
            "de son organisme."
        )
    if not exposure.own_categories:
        parts.append("Les données bancaires de votre structure n'ont pas été consultées.")
    todo.append(
        "Méfiez-vous des messages ou appels qui se réclameraient de cet incident pour vous "
        "demander des identifiants, un code ou un changement de RIB."
    )
    body = (
        "\n\n".join(parts)
        + "\n\nCe que nous vous conseillons :\n"
        + "\n".join(f"– {t}" for t in todo)
    )
    body += f"\n\nPour toute question : {contact}."
    return "Incident de sécurité : ce qui concerne votre structure", body


def beneficiary_letter(
    *, first_name: str, last_name: str, ocam_name: str, categories: Sequence[str], contact: str
) -> list[str]:
    """The paragraphs of the art. 34 letter to one person."""
    exposed = category_labels(categories)
    return [
        f"{first_name} {last_name.upper()}",
        "Madame, Monsieur,",
        f"Nous vous écrivons au nom de {ocam_name}, votre organisme complémentaire santé, au "
        "sujet d'un incident de sécurité sur le service de tiers payant Rempart.",
        "Ce qui s'est passé : un accès d'un professionnel de santé a été utilisé de manière "
        "frauduleuse pour consulter des droits. Il a été bloqué automatiquement. Notre journal "
        "d'accès, qui ne peut pas être modifié, montre que des informations vous concernant "
        "ont été consultées.",
        "Les informations consultées : " + "; ".join(exposed) + ".",
        "Ce qui n'a pas été consulté : votre numéro de sécurité sociale, votre adresse et vos "
        "coordonnées bancaires.",
        "Les conséquences possibles : vous pourriez recevoir des messages ou des appels "
        "trompeurs qui utilisent ces informations pour paraître crédibles (hameçonnage).",
        "Ce que nous vous conseillons : ne communiquez jamais vos codes, mots de passe ou "
        "coordonnées bancaires à la suite d'un appel ou d'un message que vous n'attendiez pas. "
        "Votre organisme ne vous les demandera jamais. En cas de doute, raccrochez et appelez "
        "le numéro habituel de votre organisme.",
        "Ce que nous avons fait : l'accès en cause a été coupé automatiquement, le détail des "
        "consultations a été établi depuis le journal et l'incident est signalé à la CNIL.",
        f"Pour toute question : {contact}. Vous pouvez aussi adresser une réclamation à la "
        "CNIL (www.cnil.fr).",
        "Nous vous prions de nous excuser pour cet incident.",
    ]


def ps_letter(*, structure_name: str, notice_body: str) -> list[str]:
    return [
        f"À l'attention de : {structure_name}",
        "Madame, Monsieur,",
        "Nous vous écrivons au sujet d'un incident de sécurité sur le service de tiers payant "
        "Rempart. Le même avis figure dans votre portail, rubrique « Avis ».",
        *notice_body.split("\n\n"),
        "Nous vous prions de nous excuser pour cet incident.",
    ]


@dataclass(frozen=True, slots=True)
class CnilCounts:
    people: int
    records: int
    categories: tuple[str, ...]
    structures: int


def cnil_draft(
    *,
    ocam_name: str,
    counts: CnilCounts,
    nature: str,
    window: str,
    measures: Sequence[str],
    contact: str,
    fmt: Callable[[int], str] = lambda n: f"{n:,}".replace(",", " "),
) -> str:
    """The draft of the notification to the CNIL (GDPR art. 33(3)), as Markdown."""
    cats = "\n".join(f"- {CATEGORY_CNIL.get(c, c)}" for c in counts.categories) or "- aucune"
    steps = "\n".join(f"- {m}" for m in measures)
    return f"""# Projet de notification de violation de données à la CNIL

Responsable de traitement : **{ocam_name}** (organisme complémentaire).
Sous-traitant : l'opérateur de la plateforme de tiers payant Rempart.

## Nature de la violation

{nature}

Période : {window}. Type : violation de confidentialité (consultation non autorisée).

## Personnes et enregistrements concernés

- Nombre de personnes concernées : **{fmt(counts.people)}** bénéficiaires (nombre exact, \
établi depuis le journal d'audit scellé, preuves d'inclusion jointes).
- Nombre d'enregistrements consultés : **{fmt(counts.records)}**.
- Professionnels de santé dont des patients sont concernés : {fmt(counts.structures)}.

Catégories de données :
{cats}

## Conséquences probables

Risque d'hameçonnage ciblé (messages ou appels utilisant l'organisme et les garanties de la \
personne pour paraître crédibles). Le numéro de sécurité sociale, l'adresse et les \
coordonnées bancaires des bénéficiaires ne figuraient pas dans les réponses.

## Mesures prises et proposées

{steps}

## Information des personnes (art. 34)

Chaque personne concernée reçoit un courrier (liste nominative et courriers joints). \
Aucune personne non concernée n'est informée à tort : la liste vient du journal d'audit.

## Contact

{contact}
"""
