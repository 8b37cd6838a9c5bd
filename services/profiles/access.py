"""Who may read and change the organisation of a network. Tenancy is a security boundary.

* Only people of the network reach it: a token of another network, a service token and the
  platform operator get 403 on every route of this network, reads included (the network id
  is in the URL, so a 403 hides nothing and tells an integrator the real problem).
* Inside the network everyone may read institutions and programs: mentors and mentees need to
  see what they can join. Changing them is what grants allow, each over its own scope, and a
  person holding several grants may do what any of them allows:
  - a network admin manages everything, network-wide programs included;
  - an institution coordinator creates and edits programs of an institution they coordinate;
  - a program coordinator edits the programs they coordinate, and creates none (the program
    they would coordinate does not exist yet);
  - participants change nothing.
"""

from __future__ import annotations

from services.profiles.organisation import Program
from shared.auth import Principal, forbidden, require_network


def may_read(principal: Principal, network_id: str) -> None:
    require_network(principal, network_id)


def may_manage_institutions(principal: Principal, network_id: str) -> None:
    require_network(principal, network_id)
    if not principal.is_network_admin:
        raise forbidden("Only a network admin can add institutions or chapters to the network.")


def may_create_program(principal: Principal, network_id: str, institution_id: str | None) -> None:
    require_network(principal, network_id)
    if principal.is_network_admin:
        return
    if principal.institution_ids:
        if institution_id is None:
            raise forbidden("Only a network admin can create a network-wide program.")
        if not principal.coordinates_institution(institution_id):
            raise forbidden("You can only create programs of your own institution.")
        return
    if principal.program_ids:
        raise forbidden(
            "Program coordinators edit the programs they coordinate; ask an institution "
            "coordinator or a network admin to create a new one."
        )
    raise forbidden("Mentors and mentees can read programs but not create them.")


def may_edit_program(principal: Principal, program: Program) -> None:
    require_network(principal, program.network_id)
    if principal.is_network_admin or principal.coordinates_program(program.id):
        return
    if not program.network_wide and principal.coordinates_institution(program.institution_id):
        return
    if principal.institution_ids and program.network_wide:
        raise forbidden("Only a network admin can edit a network-wide program.")
    if principal.institution_ids:
        raise forbidden("You can only edit programs of your own institution.")
    if principal.program_ids:
        raise forbidden("You can only edit the programs you coordinate.")
    raise forbidden("Mentors and mentees can read programs but not change them.")
