"""Retiring vocabulary terms: a network admin stops a term from being chosen (a specialty
renamed, a help category folded into another), and can bring it back.

A retired term is refused in new choices (profiles, rosters) with a message that says so;
people who already hold it keep it and can edit the rest of their profile (see
`Vocabularies.allowing`). Same authorization as adding terms: network admins of the network.
Audited, like every change of who may say what.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.profiles import audit
from services.profiles.api import Store as PeopleStoreDep
from services.profiles.people import VocabularyKind
from shared.auth import CurrentPrincipal, Principal, require_network
from shared.service import Database

router = APIRouter(prefix="/networks/{network_id}/vocabularies/{kind}/retirements",
                   tags=["people"])


class RetireIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terms: Annotated[list[Annotated[str, Field(min_length=1, max_length=80)]],
                     Field(min_length=1, max_length=100)]


class RetiredOut(BaseModel):
    kind: VocabularyKind
    retired: list[str]
    terms: list[str]


def _admin(principal: Principal, network_id: str) -> None:
    require_network(principal, network_id)
    if not principal.is_network_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Only a network admin can retire terms of the network's vocabularies.")


async def _out(people, network_id: str, kind: VocabularyKind) -> RetiredOut:
    vocab = await people.vocabularies(network_id)
    return RetiredOut(kind=kind, retired=sorted(vocab.retired.get(kind, frozenset())),
                      terms=sorted(vocab.terms(kind)))


@router.get("", response_model=RetiredOut)
async def retired_terms(network_id: str, kind: VocabularyKind, principal: CurrentPrincipal,
                        people: PeopleStoreDep) -> RetiredOut:
    require_network(principal, network_id)
    return await _out(people, network_id, kind)


@router.post("", response_model=RetiredOut)
async def retire(network_id: str, kind: VocabularyKind, body: RetireIn,
                 principal: CurrentPrincipal, people: PeopleStoreDep, db: Database) -> RetiredOut:
    _admin(principal, network_id)
    vocab = await people.vocabularies(network_id)
    terms = list(dict.fromkeys(" ".join(t.split()) for t in body.terms))
    unknown = [t for t in terms if t not in vocab.known(kind)]
    if unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                            f"Not terms of this vocabulary: {', '.join(unknown)}.")
    if not vocab.terms(kind) - set(terms):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                            "A vocabulary must keep at least one term people can choose.")
    await people.retire_terms(network_id, kind, terms)
    await audit.record(db, audit.entry(principal, network_id, "vocabulary.retired", "vocabulary",
                                       kind.value, None, terms))
    return await _out(people, network_id, kind)


@router.delete("/{term}", status_code=status.HTTP_204_NO_CONTENT)
async def reinstate(network_id: str, kind: VocabularyKind, term: str,
                    principal: CurrentPrincipal, people: PeopleStoreDep, db: Database) -> Response:
    """Bring a retired term back into use."""
    _admin(principal, network_id)
    vocab = await people.vocabularies(network_id)
    if term not in vocab.retired.get(kind, frozenset()):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{term!r} is not a retired term here.")
    await people.retire_terms(network_id, kind, [term], retire=False)
    await audit.record(db, audit.entry(principal, network_id, "vocabulary.reinstated",
                                       "vocabulary", kind.value, None, [term]))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
