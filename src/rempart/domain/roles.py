"""Who may do what: one table, asked by every view and command; no role name tested inline.

Roles of PS structures (``titulaire``, ``collaborateur``), of the operator (``agent``,
``payments``, ``security``, ``admin``) and of insurers (``insurer``, limited to its OCAM by the
access layer). API clients act with the ``api_client`` role of their structure.

    >>> may(Role.COLLABORATEUR, Permission.CHECK_RIGHTS)
    True
    >>> may(Role.COLLABORATEUR, Permission.CHANGE_BANK_DETAILS)
    False
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    TITULAIRE = "titulaire"
    COLLABORATEUR = "collaborateur"
    API_CLIENT = "api_client"
    AGENT = "agent"
    PAYMENTS = "payments"
    SECURITY = "security"
    ADMIN = "admin"
    INSURER = "insurer"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.TITULAIRE: "Titulaire",
    Role.COLLABORATEUR: "Collaborateur",
    Role.API_CLIENT: "Logiciel (client API)",
    Role.AGENT: "Agent de l'opérateur",
    Role.PAYMENTS: "Paiements",
    Role.SECURITY: "Sécurité",
    Role.ADMIN: "Administrateur",
    Role.INSURER: "Organisme complémentaire",
}

OPERATOR_ROLES = frozenset({Role.AGENT, Role.PAYMENTS, Role.SECURITY, Role.ADMIN, Role.INSURER})
PS_ROLES = frozenset({Role.TITULAIRE, Role.COLLABORATEUR})


class Permission(StrEnum):
    CHECK_RIGHTS = "check_rights"
    SUBMIT_INVOICES = "submit_invoices"
    REQUEST_PEC = "request_pec"
    VIEW_PAYMENTS = "view_payments"
    CHANGE_BANK_DETAILS = "change_bank_details"
    MANAGE_MEMBERS = "manage_members"
    IMPORT_BENEFICIARIES = "import_beneficiaries"
    MANAGE_REGISTRY = "manage_registry"
    REVIEW_PEC = "review_pec"
    PREPARE_PAYMENTS = "prepare_payments"
    APPROVE_PAYMENTS = "approve_payments"
    READ_LEDGER = "read_ledger"
    SWITCH_CHANNELS = "switch_channels"
    READ_AUDIT = "read_audit"
    MANAGE_INCIDENTS = "manage_incidents"
    MANAGE_ACCOUNTS = "manage_accounts"


_PS_COMMON = {
    Permission.CHECK_RIGHTS,
    Permission.SUBMIT_INVOICES,
    Permission.REQUEST_PEC,
    Permission.VIEW_PAYMENTS,
}

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.TITULAIRE: frozenset(
        _PS_COMMON | {Permission.CHANGE_BANK_DETAILS, Permission.MANAGE_MEMBERS}
    ),
    Role.COLLABORATEUR: frozenset(_PS_COMMON),
    Role.API_CLIENT: frozenset(_PS_COMMON),
    Role.AGENT: frozenset(
        {Permission.MANAGE_REGISTRY, Permission.REVIEW_PEC, Permission.IMPORT_BENEFICIARIES}
    ),
    Role.PAYMENTS: frozenset(
        {Permission.PREPARE_PAYMENTS, Permission.APPROVE_PAYMENTS, Permission.READ_LEDGER}
    ),
    Role.SECURITY: frozenset(
        {
            Permission.SWITCH_CHANNELS,
            Permission.READ_AUDIT,
            Permission.MANAGE_INCIDENTS,
            Permission.MANAGE_ACCOUNTS,
        }
    ),
    Role.ADMIN: frozenset(
        {
            Permission.MANAGE_REGISTRY,
            Permission.IMPORT_BENEFICIARIES,
            Permission.SWITCH_CHANNELS,
            Permission.MANAGE_ACCOUNTS,
        }
    ),
    Role.INSURER: frozenset({Permission.IMPORT_BENEFICIARIES}),
}


def may(role: Role, permission: Permission) -> bool:
    return permission in PERMISSIONS[role]
