"""The session guard of conftest really finds a registered value in log text."""


def test_the_log_guard_finds_a_registered_value() -> None:
    from tests import factories

    factories.sensitive("nir", "185037599900118")
    assert factories.sensitive_values_in("event nir=185037599900118 x") == ["nir"]
    assert factories.sensitive_values_in("event nir=18503759990011 x") == []
