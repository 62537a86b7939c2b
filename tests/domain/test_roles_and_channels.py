from datetime import UTC, datetime, timedelta

import pytest

from rempart.domain.channels import Channel, ChannelState
from rempart.domain.roles import OPERATOR_ROLES, PERMISSIONS, PS_ROLES, Permission, Role, may


def test_every_role_has_a_row_and_a_french_label() -> None:
    assert set(PERMISSIONS) == set(Role)
    assert all(r.label for r in Role)


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        (Role.TITULAIRE, Permission.CHANGE_BANK_DETAILS, True),
        (Role.COLLABORATEUR, Permission.CHANGE_BANK_DETAILS, False),
        (Role.API_CLIENT, Permission.CHECK_RIGHTS, True),
        (Role.API_CLIENT, Permission.IMPORT_BENEFICIARIES, False),
        (
            Role.AGENT,
            Permission.CHECK_RIGHTS,
            False,
        ),  # operator staff never check a patient's rights
        (Role.PAYMENTS, Permission.APPROVE_PAYMENTS, True),
        (Role.SECURITY, Permission.SWITCH_CHANNELS, True),
        (Role.INSURER, Permission.SWITCH_CHANNELS, False),
    ],
)
def test_role_table(role: Role, permission: Permission, allowed: bool) -> None:
    assert may(role, permission) is allowed


def test_no_operator_role_reads_patients_and_ps_roles_are_disjoint() -> None:
    assert PS_ROLES.isdisjoint(OPERATOR_ROLES)
    for role in OPERATOR_ROLES:
        assert not may(role, Permission.CHECK_RIGHTS)


def test_channel_names_are_the_public_contract() -> None:
    assert [c.value for c in Channel] == [
        "portal-signin",
        "portal-rights",
        "api-rights",
        "intake",
        "adjudication",
        "payments",
    ]


def test_retry_after() -> None:
    now = datetime(2026, 12, 2, 10, tzinfo=UTC)
    assert ChannelState(Channel.INTAKE, False).retry_after_seconds(now) == 300
    back = ChannelState(Channel.INTAKE, False, expected_back_at=now + timedelta(minutes=20))
    assert back.retry_after_seconds(now) == 1200
    late = ChannelState(Channel.INTAKE, False, expected_back_at=now - timedelta(minutes=1))
    assert late.retry_after_seconds(now) == 300
