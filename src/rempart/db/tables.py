"""Tables (SQLAlchemy Core). Ids are application-generated random UUIDs (DESIGN §4.3).

Personal data is stored encrypted (``*_enc``: AES-256-GCM, see ``security.keys``) and found
through blind indexes (``*_bi``: keyed HMAC). No table here holds a NIR, an IBAN or a name in
clear. Queries live next to the services that use them, never commit, and are Core, not ORM.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)

from rempart.db.types import UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _created() -> Column[object]:
    return Column("created_at", UtcDateTime(), nullable=False)


# -- reference data --------------------------------------------------------------------------

ocam = Table(
    "ocam",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("amc_number", String(10), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("convention_type", String(10), nullable=False, server_default="TP"),
    Column("routing_criterion", String(10)),
    Column("invoice_deadline_days", Integer, nullable=False, server_default="730"),
    _created(),
)

contract = Table(
    "contract",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("ocam_id", Uuid, ForeignKey("ocam.id"), nullable=False),
    Column("code", String(40), nullable=False),
    Column("label", String(200), nullable=False),
    Column("responsible", Boolean, nullable=False, server_default="1"),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=False),
    _created(),
    UniqueConstraint("ocam_id", "code", name="uq_contract_ocam_code"),
)

guarantee = Table(
    "guarantee",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("contract_id", Uuid, ForeignKey("contract.id"), nullable=False, index=True),
    Column("domain", String(8), nullable=False),
    Column("formula", String(24), nullable=False),
    Column("rate_pct", Integer),
    Column("flat_amount_cents", Integer),
    Column("ceiling_amount_cents", Integer),
    Column("period", String(10), nullable=False, server_default="line"),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=False),
)

# -- beneficiaries ---------------------------------------------------------------------------

beneficiary = Table(
    "beneficiary",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("ocam_id", Uuid, ForeignKey("ocam.id"), nullable=False),
    # HMAC of amc|adherent|birth date|rank: what the card and the patient show, and nothing less.
    Column("card_bi", LargeBinary(16), nullable=False, unique=True),
    Column("adherent_bi", LargeBinary(16), nullable=False, index=True),
    Column("nir_bi", LargeBinary(16), nullable=False, index=True),
    Column("adherent_enc", LargeBinary, nullable=False),
    Column("nir_enc", LargeBinary, nullable=False),
    Column("birth_date_enc", LargeBinary, nullable=False),
    Column("last_name_enc", LargeBinary, nullable=False),
    Column("first_name_enc", LargeBinary, nullable=False),
    Column("rank", SmallInteger, nullable=False),
    Column("contract_id", Uuid, ForeignKey("contract.id"), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    Column("closed_on", Date),  # set when the person disappeared from the insurer's file
    Column("fingerprint", LargeBinary(16), nullable=False),  # keyed hash of the file row
    Column("key_version", SmallInteger, nullable=False),
    Column("is_canary", Boolean, nullable=False, server_default="0"),
    _created(),
    Column("updated_at", UtcDateTime(), nullable=False),
)

beneficiary_import = Table(
    "beneficiary_import",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("ocam_id", Uuid, ForeignKey("ocam.id"), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("status", String(16), nullable=False),  # committed | rejected | dry_run
    Column("rows_total", Integer, nullable=False, server_default="0"),
    Column("rows_new", Integer, nullable=False, server_default="0"),
    Column("rows_changed", Integer, nullable=False, server_default="0"),
    Column("rows_unchanged", Integer, nullable=False, server_default="0"),
    Column("rows_closed", Integer, nullable=False, server_default="0"),
    Column("rows_rejected", Integer, nullable=False, server_default="0"),
    Column("report_path", Text),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
)

# Which cards an import run has seen. No longer written: a run stages its cards in a temporary
# table (db.beneficiary_bulk). Kept until a migration drops it (decision 0004, amended).
import_seen = Table(
    "import_seen",
    metadata,
    Column("import_id", Uuid, nullable=False),
    Column("card_bi", LargeBinary(16), nullable=False),
    Column("line_no", Integer, nullable=False),
    Index("ix_import_seen_run_card", "import_id", "card_bi"),
)

# -- professionals ---------------------------------------------------------------------------

structure = Table(
    "structure",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("profession", String(20), nullable=False),
    Column("finess", String(9), unique=True),
    Column("siret", String(14)),
    Column("rpps", String(11)),
    Column("quota_soft", Integer),  # overrides of the profession's default daily ceilings
    Column("quota_hard", Integer),
    Column("is_canary", Boolean, nullable=False, server_default="0"),
    _created(),
)

bank_account = Table(
    "bank_account",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("structure_id", Uuid, ForeignKey("structure.id"), nullable=False, index=True),
    Column("iban_enc", LargeBinary, nullable=False),
    Column("iban_bi", LargeBinary(16), nullable=False, index=True),
    Column("iban_last4", String(4), nullable=False),
    Column("bic", String(11), nullable=False),
    Column("holder_enc", LargeBinary, nullable=False),
    Column("status", String(10), nullable=False),  # active | pending | retired
    Column("pays_from", UtcDateTime(), nullable=False),  # end of the cooling-off period
    Column("key_version", SmallInteger, nullable=False),
    Column("is_canary", Boolean, nullable=False, server_default="0"),
    _created(),
)

# -- people who sign in ----------------------------------------------------------------------

account = Table(
    "account",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("display_name_enc", LargeBinary, nullable=False),
    Column("email_enc", LargeBinary, nullable=False),
    Column("role", String(20), nullable=False),
    Column("structure_id", Uuid, ForeignKey("structure.id")),
    Column("ocam_id", Uuid, ForeignKey("ocam.id")),
    Column("key_version", SmallInteger, nullable=False),
    _created(),
    Column("disabled_at", UtcDateTime()),
    Column("contained_at", UtcDateTime()),  # automatic containment: no session, no reads
    # Transitional password (off unless the installation and an operator allow it for this
    # account): an argon2id hash, never enough alone — always with the TOTP below.
    Column("password_allowed", Boolean, nullable=False, server_default="0"),
    Column("password_hash", String(200)),
    Column("totp_secret_enc", LargeBinary),  # RFC 6238 secret, encrypted (row-bound)
    Column("totp_last_step", BigInteger),  # the last accepted time step: a code works once
    CheckConstraint(
        "(role IN ('titulaire', 'collaborateur')) = (structure_id IS NOT NULL)", name="ps_role"
    ),
    CheckConstraint("(role = 'insurer') = (ocam_id IS NOT NULL)", name="insurer_role"),
)

invitation = Table(
    "invitation",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("account_id", Uuid, ForeignKey("account.id"), nullable=False, index=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime()),
    _created(),
)

passkey = Table(
    "passkey",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("account_id", Uuid, ForeignKey("account.id"), nullable=False, index=True),
    Column("credential_id", LargeBinary(1023), nullable=False, unique=True),
    Column("public_key", LargeBinary, nullable=False),  # COSE key: public, not a secret
    Column("sign_count", BigInteger, nullable=False),
    Column("name", String(100), nullable=False),
    Column("transports", String(100), nullable=False, server_default=""),
    _created(),
    Column("last_used_at", UtcDateTime()),
    Column("revoked_at", UtcDateTime()),
)

# One WebAuthn ceremony (a challenge sent to a browser): used once, within minutes.
webauthn_challenge = Table(
    "webauthn_challenge",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("purpose", String(10), nullable=False),  # register | signin
    Column("challenge", LargeBinary(64), nullable=False),
    Column("account_id", Uuid, ForeignKey("account.id")),  # register: who enrols
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("used_at", UtcDateTime()),
    _created(),
)

# Portal sessions: only a keyed hash of the cookie's random id is stored.
web_session = Table(
    "web_session",
    metadata,
    Column("id_hash", LargeBinary(32), primary_key=True),
    Column("id", Uuid, nullable=False, unique=True),  # what the security page names
    Column("account_id", Uuid, ForeignKey("account.id"), nullable=False, index=True),
    Column("passkey_id", Uuid, ForeignKey("passkey.id")),
    Column("device", String(100), nullable=False),
    _created(),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),  # absolute end
    Column("revoked_at", UtcDateTime()),
    Column("stepped_up_at", UtcDateTime()),  # the last fresh passkey assertion (step-up)
)

# Browsers an account has signed in from: a long-lived random cookie, stored as a keyed hash.
# A sign-in from a browser not listed here notifies the account.
known_device = Table(
    "known_device",
    metadata,
    Column("account_id", Uuid, ForeignKey("account.id"), primary_key=True),
    Column("device_hash", LargeBinary(32), primary_key=True),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
)

# Account recovery (all passkeys lost): one operator asks, another approves; the approval
# revokes the account's passkeys and sessions and issues a new one-time invitation.
recovery_request = Table(
    "recovery_request",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("account_id", Uuid, ForeignKey("account.id"), nullable=False, index=True),
    Column("requested_by", Uuid, ForeignKey("account.id"), nullable=False),
    Column("reason", String(300), nullable=False),
    Column("status", String(10), nullable=False),  # pending | approved
    _created(),
    Column("approved_by", Uuid, ForeignKey("account.id")),
    Column("approved_at", UtcDateTime()),
)

api_client = Table(
    "api_client",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("client_id", String(64), nullable=False, unique=True),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("structure_id", Uuid, ForeignKey("structure.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("quota_soft", Integer),
    Column("quota_hard", Integer),
    _created(),
    Column("revoked_at", UtcDateTime()),
    Column("contained_at", UtcDateTime()),  # automatic containment: no token, no reads
)

api_token = Table(
    "api_token",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("api_client_id", Uuid, ForeignKey("api_client.id"), nullable=False, index=True),
    Column("structure_id", Uuid, ForeignKey("structure.id"), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),
)

# -- what rights checks leave behind ---------------------------------------------------------

care_relationship = Table(
    "care_relationship",
    metadata,
    Column("structure_id", Uuid, ForeignKey("structure.id"), primary_key=True),
    Column("beneficiary_id", Uuid, ForeignKey("beneficiary.id"), primary_key=True),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)

engagement = Table(
    "engagement",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("number", String(40), nullable=False, unique=True),
    Column("structure_id", Uuid, ForeignKey("structure.id"), nullable=False),
    Column("beneficiary_id", Uuid, ForeignKey("beneficiary.id"), nullable=False, index=True),
    Column("verification_id", Uuid, nullable=False),
    Column("domain", String(8), nullable=False),
    Column("care_date", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("fingerprint", LargeBinary(16), nullable=False),  # of the request that obtained it
    _created(),
    Column("revoked_at", UtcDateTime()),
)

# -- the audit log (DESIGN §4.3) -------------------------------------------------------------

audit_event = Table(
    "audit_event",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("at", UtcDateTime(), nullable=False, index=True),
    Column("actor_kind", String(10), nullable=False),  # account | client | system
    Column("actor_id", Uuid),
    Column("actor_label", String(100), nullable=False),
    Column("structure_id", Uuid),
    Column("ocam_id", Uuid),
    Column("channel", String(20), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("subject_kind", String(20)),
    Column("subject_id", Uuid),
    Column("categories", String(200), nullable=False, server_default=""),
    Column("result", String(20), nullable=False),
    Column("detail", Text),
    Column("leaf_index", BigInteger, unique=True),  # assigned by the checkpointer
    Column("leaf_hash", LargeBinary(32)),  # SHA-256(0x00 ‖ canonical row), set when sealed
    Index("ix_audit_event_subject", "subject_id"),
    Index("ix_audit_event_actor_at", "actor_id", "at"),
)

# Signed tree heads (RFC 9162 style) over the audit rows' leaf hashes, one per checkpoint.
audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("frontier", LargeBinary, nullable=False),  # right-edge subtree roots, to append
    Column("signed_at", UtcDateTime(), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)

# -- distinct-subject quotas and containment (DESIGN §4.4) ----------------------------------

# One row per (day, principal, card touched): the exact distinct count, and the scope index of
# an incident. principal_kind: client | account | structure. subject_bi: the card's blind index
# (unknown cards count too, and are scoped too).
subject_touch = Table(
    "subject_touch",
    metadata,
    Column("day", Date, primary_key=True),
    Column("principal_kind", String(10), primary_key=True),
    Column("principal_id", Uuid, primary_key=True),
    Column("subject_bi", LargeBinary(16), primary_key=True),
)

quota_count = Table(
    "quota_count",
    metadata,
    Column("day", Date, primary_key=True),
    Column("principal_kind", String(10), primary_key=True),
    Column("principal_id", Uuid, primary_key=True),
    Column("distinct_subjects", Integer, nullable=False),
)

security_alert = Table(
    "security_alert",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "kind", String(30), nullable=False
    ),  # soft_quota | hard_quota | canary | structure_quota
    Column("principal_kind", String(10), nullable=False),
    Column("principal_id", Uuid, nullable=False),
    Column("structure_id", Uuid),
    Column("day", Date, nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("detail", Text),
    Column("closed_at", UtcDateTime()),
    UniqueConstraint(
        "kind", "principal_kind", "principal_id", "day", name="uq_security_alert_once"
    ),
)

containment = Table(
    "containment",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("principal_kind", String(10), nullable=False),
    Column("principal_id", Uuid, nullable=False, index=True),
    Column("alert_id", Uuid, ForeignKey("security_alert.id"), nullable=False),
    Column("reason", String(30), nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("lift_requested_by", String(100)),
    Column("lift_requested_at", UtcDateTime()),
    Column("lifted_by", String(100)),
    Column("lifted_at", UtcDateTime()),
)

# GCRA state of the rate limits in front of authentication, shared by every worker.
rate_limit = Table(
    "rate_limit",
    metadata,
    Column("key", String(120), primary_key=True),
    Column("tat", UtcDateTime(), nullable=False),
)

# -- channel switches ------------------------------------------------------------------------

channel_state = Table(
    "channel_state",
    metadata,
    Column("name", String(20), primary_key=True),
    Column("open", Boolean, nullable=False),
    Column("reason", Text),
    Column("expected_back_at", UtcDateTime()),
    Column("changed_at", UtcDateTime(), nullable=False),
    Column("changed_by", String(100), nullable=False),
)

channel_event = Table(
    "channel_event",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(20), nullable=False),
    Column("open", Boolean, nullable=False),
    Column("reason", Text),
    Column("expected_back_at", UtcDateTime()),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(100), nullable=False),
)

# -- invoices (DESIGN §2.5, §5): store-and-forward intake, then adjudication ---------------

# One row per invoice received. The body as sent (canonical JSON: beneficiary, lines) is
# encrypted; what the worker and the lists need is in columns. ``status`` moves only along
# ``domain.adjudication.TRANSITIONS``. Idempotent by (structure, Idempotency-Key) and by
# (structure, invoice number): a replay finds the row and compares ``body_hash``.
QUEUED = "decided_at IS NULL AND cancelled_at IS NULL"

invoice = Table(
    "invoice",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("structure_id", Uuid, ForeignKey("structure.id"), nullable=False),
    Column("invoice_number", String(40), nullable=False),
    Column("idempotency_key", String(100)),
    Column("body_hash", LargeBinary(32), nullable=False),  # SHA-256 of the canonical body
    Column("body_enc", LargeBinary, nullable=False),
    Column("key_version", SmallInteger, nullable=False),
    Column("card_bi", LargeBinary(16), nullable=False),  # the beneficiary's card, blind index
    Column("care_date", Date, nullable=False),
    Column("channel", String(10), nullable=False),  # api | batch | portal | fhir
    Column("batch_id", Uuid),
    Column("status", String(10), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("decided_at", UtcDateTime()),
    Column("beneficiary_id", Uuid),  # set by adjudication when the card was found
    Column("amo_cents", BigInteger),
    Column("amc_cents", BigInteger),  # what the insurer pays, after adjudication
    Column("patient_cents", BigInteger),
    Column("cancelled_at", UtcDateTime()),
    # the payment (and remittance advice) that reports it; not indexed: a payment's invoices
    # are found through remitted_invoice, so that a run's writes to status and payment_id stay
    # HOT updates (migration 0016: no index names them, fillfactor 70 keeps room on the page)
    Column("payment_id", Uuid),
    UniqueConstraint("structure_id", "invoice_number", name="uq_invoice_structure_number"),
    UniqueConstraint("structure_id", "idempotency_key", name="uq_invoice_structure_key"),
    Index("ix_invoice_structure_received", "structure_id", "received_at", "id"),
    Index("ix_invoice_beneficiary", "beneficiary_id"),
    # the work queue: only received invoices are in it (undecided and not cancelled is the
    # same set as status 'received', without naming status in an index)
    Index(
        "ix_invoice_to_decide",
        "received_at",
        postgresql_where=text(QUEUED),
        sqlite_where=text(QUEUED),
    ),
    CheckConstraint(
        "status IN ('received', 'accepted', 'rejected', 'paid', 'cancelled')", name="status"
    ),
)

# The decision per line; reasons are JSON [{code, kind}] (labels come from the code table).
invoice_line = Table(
    "invoice_line",
    metadata,
    Column("invoice_id", Uuid, ForeignKey("invoice.id"), primary_key=True),
    Column("line_no", SmallInteger, primary_key=True, autoincrement=False),
    Column("domain", String(8), nullable=False),
    Column("status", String(10), nullable=False),  # accepted | rejected
    Column("amo_cents", BigInteger, nullable=False),
    Column("amc_cents", BigInteger, nullable=False),
    Column("patient_cents", BigInteger, nullable=False),
    Column("reasons", Text, nullable=False),
)

# One row per accepted line's care (beneficiary, date, code, quantity, price), keyed by a
# keyed hash: the same care from any channel or under a new number finds the row (R10). An
# insert that conflicts is a duplicate, which also holds between concurrent workers.
care_key = Table(
    "care_key",
    metadata,
    Column("key", LargeBinary(16), primary_key=True),
    Column("invoice_id", Uuid, ForeignKey("invoice.id"), nullable=False, index=True),
    Column("line_no", SmallInteger, nullable=False),
)

# One row per batch received: its ARL is stored with it and a replay returns it.
invoice_batch = Table(
    "invoice_batch",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("structure_id", Uuid, ForeignKey("structure.id"), nullable=False),
    Column("idempotency_key", String(100)),
    Column("body_hash", LargeBinary(32), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("arl", Text, nullable=False),
    UniqueConstraint("structure_id", "idempotency_key", name="uq_invoice_batch_structure_key"),
)

# -- prises en charge (DESIGN §2.4): optique, audio, dentaire --------------------------------

# One row per PEC request. The quote as sent is encrypted; the decision (status, reasons, the
# AMC per line) is in clear columns and ``decision`` (JSON of amounts and codes, no identity).
pec = Table(
    "pec",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("number", String(40), nullable=False, unique=True),
    Column("structure_id", Uuid, ForeignKey("structure.id"), nullable=False),
    Column("beneficiary_id", Uuid),  # None when the card was unknown
    Column("domain", String(8), nullable=False),
    Column("care_date", Date, nullable=False),  # the quote's date
    Column("status", String(10), nullable=False),
    Column("valid_until", Date),  # the last care date an invoice may cite it for
    Column("idempotency_key", String(100)),
    Column("body_hash", LargeBinary(32), nullable=False),
    Column("body_enc", LargeBinary, nullable=False),
    Column("key_version", SmallInteger, nullable=False),
    Column("amc_cents", BigInteger, nullable=False),  # guaranteed (the proposal when to review)
    Column("expense_cents", BigInteger, nullable=False),
    Column("decision", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("decided_at", UtcDateTime()),
    Column("decided_by", String(100)),  # the agent who reviewed it; None: automatic
    Column("cancelled_at", UtcDateTime()),
    Column("consumed_by", Uuid),  # the invoice that used it
    UniqueConstraint("structure_id", "idempotency_key", name="uq_pec_structure_key"),
    Index("ix_pec_beneficiary_domain", "beneficiary_id", "domain"),
    Index("ix_pec_status", "status"),
    CheckConstraint(
        "status IN ('accepted', 'partial', 'refused', 'to_review', 'cancelled', 'consumed')",
        name="status",
    ),
)

# -- money (DESIGN §2.7): ledger, payment runs, payments and their remittance advice -----------

# One posting moves ``amount_cents`` (> 0) from ``credit`` to ``debit``: balanced by
# construction, so the trial balance is zero whatever was posted (``domain.ledger``). ``ref``
# makes each business event post once (an invoice accepted once, a payment sent once).
ledger_posting = Table(
    "ledger_posting",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("event", String(30), nullable=False),
    Column("ref", Uuid, nullable=False),  # the invoice, payment … the event is about
    Column("debit", String(60), nullable=False, index=True),
    Column("credit", String(60), nullable=False, index=True),
    Column("amount_cents", BigInteger, nullable=False),
    UniqueConstraint("event", "ref", "debit", "credit", name="uq_ledger_posting_once"),
    CheckConstraint("amount_cents > 0 AND debit <> credit", name="balanced"),
)

payment_run = Table(
    "payment_run",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("run_date", Date, nullable=False, unique=True),  # one run per execution date
    Column("status", String(10), nullable=False),  # prepared | approved | exported
    Column("msg_id", String(35), nullable=False, unique=True),
    Column("pmt_inf_id", String(35), nullable=False),
    Column("prepared_at", UtcDateTime(), nullable=False),  # also the file's CreDtTm
    Column("prepared_by", String(100), nullable=False),
    Column("approved_at", UtcDateTime()),
    Column("approved_by", String(100)),
    Column("exported_at", UtcDateTime()),
    Column("total_cents", BigInteger, nullable=False),
    Column("transfers", Integer, nullable=False),
    Column("holds", Text, nullable=False),  # JSON [{structure_id, reason, amount_cents}]
    Column("funding", Text, nullable=False),  # JSON [{ocam_id, amount_cents, invoices}]
    Column("file_sha256", String(64)),
    CheckConstraint("status IN ('prepared', 'approved', 'exported')", name="status"),
)

# One per structure per run: a transfer (amount > 0) or a remittance advice alone (0: every
# invoice rejected). Its invoices carry ``invoice.payment_id``.
payment = Table(
    "payment",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("run_id", Uuid, ForeignKey("payment_run.id"), nullable=False, index=True),
    Column("structure_id", Uuid, ForeignKey("structure.id"), nullable=False, index=True),
    Column("bank_account_id", Uuid, ForeignKey("bank_account.id")),
    Column("amount_cents", BigInteger, nullable=False),
    Column("end_to_end_id", String(35), unique=True),  # None without a transfer
    Column("remittance_ref", String(35), nullable=False, unique=True),
    Column("netted_cents", BigInteger, nullable=False, server_default="0"),  # advance absorbed
    Column("status", String(10), nullable=False, server_default="planned"),
    # planned | exported | booked (seen on the bank statement) | returned (by the PS's bank)
    Column("return_reason", String(10)),  # ISO 20022 code: AC01, AC04, …
    Column("returned_at", UtcDateTime()),
    UniqueConstraint("run_id", "structure_id", name="uq_payment_run_structure"),
    CheckConstraint("amount_cents >= 0", name="not_negative"),
)

# Advances (acomptes) granted to a professional when payments stop (DOMAIN.md §8): paid in
# their own SEPA file, then netted by the following runs until absorbed (``payment.netted``).
advance = Table(
    "advance",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("structure_id", Uuid, ForeignKey("structure.id"), nullable=False, index=True),
    Column("bank_account_id", Uuid, ForeignKey("bank_account.id"), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("basis", Text, nullable=False),  # JSON: paid over the window, days, rate
    Column("granted_by", String(100), nullable=False),
    Column("granted_at", UtcDateTime(), nullable=False),
    Column("status", String(10), nullable=False),  # granted | exported
    Column("msg_id", String(35), nullable=False, unique=True),
    Column("pmt_inf_id", String(35), nullable=False),
    Column("end_to_end_id", String(35), nullable=False, unique=True),
    Column("remittance_ref", String(35), nullable=False, unique=True),
    Column("exported_at", UtcDateTime()),
    Column("file_sha256", String(64)),
    CheckConstraint("amount_cents > 0", name="positive"),
)

# What each payment's remittance advice reports, frozen when the run is prepared: a transfer
# returned later re-opens its invoices, but the advice already sent keeps saying what it said.
remitted_invoice = Table(
    "remitted_invoice",
    metadata,
    Column("payment_id", Uuid, ForeignKey("payment.id"), primary_key=True),
    Column("invoice_id", Uuid, ForeignKey("invoice.id"), primary_key=True),
    Column("decision", String(10), nullable=False),  # accepted | rejected
    Column("amc_cents", BigInteger, nullable=False),
)

# Bank statements imported (camt.053 / camt.054), once each: a re-import returns its report.
bank_statement = Table(
    "bank_statement",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("filename", String(255), nullable=False),
    Column("imported_at", UtcDateTime(), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("report", Text, nullable=False),  # JSON: booked, returned, unmatched
)

# -- notifications -----------------------------------------------------------------------------

# Mail to an account's existing channel (new passkey, new device, bank-details change, incident
# notices). Queued in the transaction of the event it reports; the worker delivers it over SMTP
# when ``REMPART_SMTP_URL`` is set. The recipient's address is read (and audited) at delivery
# through ``access.mail_recipients``; the body never holds a secret or a beneficiary's data.
mail_outbox = Table(
    "mail_outbox",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("account_id", Uuid, ForeignKey("account.id"), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    _created(),
    Column("sent_at", UtcDateTime()),
    Column("attempts", SmallInteger, nullable=False, server_default="0"),
    Column("last_error", String(300)),
)
Index("ix_mail_outbox_pending", mail_outbox.c.created_at, postgresql_where=text("sent_at IS NULL"))

# -- installation-wide settings (e.g. the marker of a demo database) -------------------------

setting = Table(
    "setting",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# -- incident response (issue 9) -------------------------------------------------------------

# One public incident: what the status page and its Atom feed say, in plain French.
incident = Table(
    "incident",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("title", String(200), nullable=False),
    Column("summary", Text, nullable=False),  # what happened, for everyone
    Column("advice", Text, nullable=False),  # what users should do
    Column("status", String(10), nullable=False),  # open | closed
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("next_update_at", UtcDateTime()),
    Column("closed_at", UtcDateTime()),
)

# Every publication about an incident (open, update, close): the Atom feed's entries.
incident_update = Table(
    "incident_update",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("incident_id", Uuid, ForeignKey("incident.id"), nullable=False, index=True),
    Column("kind", String(10), nullable=False),  # open | update | close
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("summary", Text, nullable=False),
    Column("advice", Text, nullable=False),
    Column("next_update_at", UtcDateTime()),
)

# One breach scoping run (``rempart incident scope``): which principal, which window, which
# signed tree head its inclusion proofs refer to.
incident_scope = Table(
    "incident_scope",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("incident_id", Uuid, ForeignKey("incident.id")),
    Column("principal_kind", String(10)),  # account | client | None (a time window)
    Column("principal_id", Uuid),
    Column("structure_id", Uuid),  # the principal's structure (its credential was used)
    Column("since", UtcDateTime()),
    Column("until", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("reads", BigInteger, nullable=False, server_default="0"),
    Column("tree_size", BigInteger),  # the signed head the proofs are against
)

# What one scoping found: each beneficiary (with its OCAM) or structure whose data a read
# exposed, the union of the categories exposed, and one audit row as evidence (its proof).
incident_subject = Table(
    "incident_subject",
    metadata,
    Column("scope_id", Uuid, ForeignKey("incident_scope.id"), primary_key=True),
    Column("subject_kind", String(20), primary_key=True),  # beneficiary | structure
    Column("subject_id", Uuid, primary_key=True),
    Column("ocam_id", Uuid),
    Column("categories", String(200), nullable=False),
    Column("reads", Integer, nullable=False),
    Column("first_at", UtcDateTime(), nullable=False),
    Column("last_at", UtcDateTime(), nullable=False),
    Column("evidence_event_id", Uuid, nullable=False),
    Column("proof", Text),  # JSON inclusion proof of the evidence row, once sealed
)

# In-portal notices to a PS structure (``/portail/avis``): only to those an incident touched.
notice = Table(
    "notice",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("structure_id", Uuid, ForeignKey("structure.id"), nullable=False, index=True),
    Column("scope_id", Uuid, ForeignKey("incident_scope.id")),
    Column("kind", String(20), nullable=False),  # incident
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("read_at", UtcDateTime()),
    UniqueConstraint("structure_id", "scope_id", name="uq_notice_structure_scope"),
)

# Accounts whose next sign-in must be a fresh passkey assertion (mass revocation).
reverify = Table(
    "reverify",
    metadata,
    Column("account_id", Uuid, ForeignKey("account.id"), primary_key=True),
    Column("required_at", UtcDateTime(), nullable=False),
    Column("reason", String(200), nullable=False),
)

# A mass action waiting for its second approver (four eyes): revocations, bulk rotations.
mass_action = Table(
    "mass_action",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", String(20), nullable=False),  # revoke | rotate
    Column("scope", String(20), nullable=False),  # structure | ocam | all
    Column("target_id", Uuid),
    Column("reason", String(200), nullable=False),
    Column("requested_by", String(100), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("approved_by", String(100)),
    Column("done_at", UtcDateTime()),
    Column("result", Text),
)
