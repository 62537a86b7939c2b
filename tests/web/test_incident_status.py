"""The status page and its Atom feed during an incident (issue 9 §1–2): every channel's state
with its French reason and expected return, the open incident's summary, advice and next
update time, and a feed the professionals' software can poll. Publishing is audited and
reserved to the security role."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from sqlalchemy import select

from rempart.db.tables import audit_event, channel_event
from rempart.domain.channels import Channel
from rempart.domain.errors import Conflict, Forbidden, InvalidFields
from rempart.domain.roles import Role
from rempart.security.principal import ActorKind, Principal
from rempart.services import channels, incidents
from tests import factories as f
from tests.conftest import Clock
from tests.web.conftest import Api

ATOM = "{http://www.w3.org/2005/Atom}"
OFFICER = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "sec.alice", Role.SECURITY)
AGENT = Principal(ActorKind.ACCOUNT, uuid.uuid4(), "agent.bob", Role.AGENT)


async def test_an_incident_on_the_status_page_and_in_the_feed(api: Api, clock: Clock) -> None:
    rt = api.rt
    back = rt.now() + timedelta(hours=4)
    await channels.switch(
        rt,
        Channel.PORTAL_SIGNIN,
        open_=False,
        reason="Connexion au portail suspendue par précaution.",
        expected_back_at=back,
        actor=OFFICER,
    )
    await incidents.open_incident(
        rt,
        title="Incident de sécurité sur le portail",
        summary="Un accès frauduleux a été détecté et bloqué. Le portail est fermé par précaution.",
        advice="Utilisez votre logiciel pour vérifier les droits : il fonctionne normalement.",
        next_update_at=rt.now() + timedelta(hours=2),
        actor=OFFICER,
    )
    page = await api.http.get("/status")
    assert page.status_code == 200
    text = page.text
    assert "Incident de sécurité sur le portail" in text
    assert "Un accès frauduleux a été détecté et bloqué" in text
    assert "Utilisez votre logiciel pour vérifier les droits" in text
    assert "Prochaine information : le 02/12/2026 à 12:30" in text  # 09:30 UTC + 2 h, Paris
    assert "Connexion au portail suspendue par précaution." in text
    assert "Retour prévu le 02/12/2026 à 14:30" in text
    assert text.count('class="pill off"') == 1  # the other five channels stay open

    clock.advance(minutes=30)
    await incidents.update_incident(
        rt,
        summary="Le périmètre est établi ; les personnes concernées seront informées.",
        next_update_at=rt.now() + timedelta(hours=6),
        actor=OFFICER,
    )
    feed = await api.http.get("/status.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(feed.content)  # noqa: S314 (our own feed, in a test)
    titles = [e.findtext(f"{ATOM}title") for e in root.iter(f"{ATOM}entry")]
    assert titles == [
        "Mise à jour : Incident de sécurité sur le portail",
        "Incident de sécurité sur le portail",
        "Connexion au portail : service suspendu",
    ]
    newest = next(root.iter(f"{ATOM}entry"))
    assert "périmètre est établi" in (newest.findtext(f"{ATOM}content") or "")
    assert "vous demandera jamais" in (newest.findtext(f"{ATOM}content") or "")  # default advice

    await channels.switch(rt, Channel.PORTAL_SIGNIN, open_=True, reason=None, actor=OFFICER)
    await incidents.close_incident(rt, summary="Le portail est rouvert.", actor=OFFICER)
    calm = (await api.http.get("/status")).text
    assert "Tous les services fonctionnent normalement." in calm
    assert "Incident de sécurité sur le portail" in calm  # in the history, not as current
    assert "Prochaine information" not in calm
    async with rt.db.read() as conn:
        published = (
            (
                await conn.execute(
                    select(audit_event.c.result).where(audit_event.c.purpose == "incident_publish")
                )
            )
            .scalars()
            .all()
        )
        history = (await conn.execute(select(channel_event.c.open))).scalars().all()
    assert sorted(published) == ["close", "open", "update"]
    assert sorted(history) == [False, True]


async def test_publishing_is_for_the_security_role_and_checks_its_fields(api: Api) -> None:
    rt = api.rt
    with pytest.raises(Forbidden):
        await incidents.open_incident(rt, title="x", summary="y", actor=AGENT)
    with pytest.raises(InvalidFields) as bad:
        await incidents.open_incident(rt, title="Panne", summary="  ", actor=OFFICER)
    assert [e.field for e in bad.value.errors] == ["summary"]
    with pytest.raises(InvalidFields) as late:
        await incidents.open_incident(
            rt, title="Panne", summary="s", next_update_at=rt.now(), actor=OFFICER
        )
    assert [e.field for e in late.value.errors] == ["next_update_at"]
    await incidents.open_incident(rt, title="Panne", summary="Réception lente.", actor=f.ACTOR)
    with pytest.raises(Conflict):
        await incidents.open_incident(rt, title="Autre", summary="s", actor=OFFICER)
