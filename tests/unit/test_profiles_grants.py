"""Who may give which grant (pure rules of services.profiles.grants)."""

from __future__ import annotations

import pytest

from services.profiles.grants import GrantForbidden, may_manage
from shared.auth import Grant, GrantRole, Kind, Principal

ADMIN = Grant(role=GrantRole.NETWORK_ADMIN)


def inst(i: str) -> Grant:
    return Grant(role=GrantRole.INSTITUTION_COORDINATOR, institution_id=i)


def prog(p: str) -> Grant:
    return Grant(role=GrantRole.PROGRAM_COORDINATOR, program_id=p)


def person(*grants: Grant, network: str = "n") -> Principal:
    return Principal(subject="p", network_id=network, person_id="p", grants=grants)


@pytest.mark.parametrize(("caller", "grant", "program_institution", "allowed"), [
    (person(ADMIN), ADMIN, None, True),
    (person(ADMIN), inst("i2"), None, True),
    (person(ADMIN), prog("p-net"), None, True),
    (person(inst("i1")), inst("i1"), None, True),
    (person(inst("i1")), prog("p1"), "i1", True),
    (person(inst("i1")), prog("p2"), "i2", False),  # another institution's program
    (person(inst("i1")), prog("p-net"), None, False),  # network-wide: the network's
    (person(inst("i1")), inst("i2"), None, False),
    (person(inst("i1")), ADMIN, None, False),
    (person(prog("p1")), prog("p1"), "i1", False),  # program coordinators appoint nobody
    (person(), inst("i1"), None, False),
    (person(ADMIN, network="other"), inst("i1"), None, False),
    (Principal(subject="o", kind=Kind.OPERATOR), ADMIN, None, True),
    (Principal(subject="o", kind=Kind.OPERATOR), inst("i1"), None, False),
    (Principal(subject="s", kind=Kind.SERVICE, network_id="n"), inst("i1"), None, False),
])
def test_who_may_give_which_grant(caller, grant, program_institution, allowed):
    if allowed:
        may_manage(caller, "n", grant, program_institution)
    else:
        with pytest.raises(GrantForbidden):
            may_manage(caller, "n", grant, program_institution)
