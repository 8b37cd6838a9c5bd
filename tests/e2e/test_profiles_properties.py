"""Properties through HTTP (hypothesis): arbitrary roster files and profile edits never get a
500 and never leave a partial record; a dry run never writes. The pure parse/validate is
property-tested more thoroughly in tests/unit/test_profiles_roster.py."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.profiles.roster import COLUMNS
from tests.e2e.test_programs import Org, _program
from tests.support import finished_import

VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["mentor", "mentee", "M2", "PGY-2", "fellow", "inst-a", "inst-b", "2", "-1",
                     "yes", "research;wellbeing", "cardiology", "en;es", "virtual",
                     "Europe/London", "x@example.org"]),
)
ROW = st.fixed_dictionaries(
    {"email": st.one_of(st.text(max_size=20), st.from_regex(r"p[0-9]{1,3}@example\.org",
                                                             fullmatch=True)),
     "first_name": VALUES, "last_name": VALUES,
     "institution_id": st.sampled_from(["inst-a", "inst-b", "", "nowhere"]),
     "role": st.sampled_from(["mentor", "mentee", "", "Mentor", "boss"]),
     "career_stage": st.sampled_from(["M2", "PGY-1", "fellow", "", "M9"])},
    optional={name: VALUES for name in COLUMNS[6:]},
)
SLOW = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _text(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), restval="")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.fixture
async def org(api, network_id) -> Org:
    org = Org(api, network_id)
    await org.setup("inst-a", "inst-b")
    return org


async def _everyone(org: Org) -> list[dict]:
    people, cursor = [], None
    while True:
        page = await org.api.http.get(
            f"{org.base}/people", params={"limit": 100, **({"cursor": cursor} if cursor else {})},
            headers=org.auth(),
        )
        assert page.status_code == 200
        people += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return people


@SLOW
@given(rows=st.lists(ROW, max_size=6))
async def test_arbitrary_rosters_never_500_and_leave_whole_people(org, rows):
    text = _text(rows)
    before = await _everyone(org)
    dry = await org.api.http.post(f"{org.base}/imports", params={"dry_run": "true"},
                                  content=text.encode(), headers=org.auth())
    assert dry.status_code in (200, 422), dry.text
    assert len(await _everyone(org)) == len(before)
    headers = org.auth()
    real = await finished_import(org.api.http, await org.api.http.post(
        f"{org.base}/imports", content=text.encode(), headers=headers), headers)
    assert real.status_code in (200, 422), real.text
    assert real.status_code == 422 or real.json()["status"] == "done", real.text
    after = await _everyone(org)
    if real.status_code == 200:
        assert len(after) == len(before) + real.json()["created"]
        assert real.json()["rows"] == len(rows)
    for person in after:
        assert person["display_name"] and person["email"] and person["career_stage"]
        assert person["roles"] and person["institution_id"] in ("inst-a", "inst-b")


PATCH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 60), st.text(max_size=15),
              st.sampled_from(["research", "cardiology", "en", "virtual", "M3"])),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(
                                   ["mentor", "mentee", "capacity", "needs", "goals", "text",
                                    "category", "languages", "paused", "display_name",
                                    "career_stage", "identity", "gender"]), children,
                                   max_size=3)),
    max_leaves=8,
)


@SLOW
@given(body=PATCH)
async def test_arbitrary_profile_edits_never_500_and_store_all_or_nothing(org, body):
    created = await org.create(_program("inst-a"))
    program = created.json()["id"]
    person = await org.api.http.post(f"{org.base}/mentors", json={
        "institution_id": "inst-a", "program_id": program, "display_name": "Prop Person",
        "email": f"prop-{program}@example.org", "career_stage": "fellow"}, headers=org.auth())
    url = f"{org.base}/people/{person.json()['id']}"
    before = (await org.api.http.get(url, headers=org.auth())).json()
    edit = await org.api.http.patch(f"{url}/profile", json=body,
                                    headers=org.auth() | {"If-Match": '"1"'})
    assert edit.status_code in (200, 403, 422), edit.text
    after = (await org.api.http.get(url, headers=org.auth())).json()
    if edit.status_code != 200:
        assert after == before
    else:
        assert after == edit.json() or after["version"] == edit.json()["version"]
