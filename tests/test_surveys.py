"""SKM surveys and the IKM: the computation against a worked example, one survey per served
ticket through the real API and PostgreSQL, clear errors with stable codes, the counter's
survey tablet and the one-tap mode."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from queue_service.config import AppConfig
from queue_service.domain import ikm
from queue_service.domain.clock import ManualClock
from queue_service.settings import Settings
from queue_service.web.app import create_app
from tests.conftest import auth
from tests.test_reports import BASE, MANAGER, T0, Day, play_day, report_hall

# A worked example: four respondents, nine elements each.
WORKED = [
    (4, 4, 3, 3, 4, 3, 4, 3, 4),
    (3, 3, 3, 2, 3, 3, 4, 3, 3),
    (4, 3, 2, 3, 4, 4, 4, 3, 4),
    (3, 4, 3, 3, 3, 3, 4, 4, 3),
]
# Element sums 14 14 11 11 14 13 16 13 14 (= 120); element means 3.5 3.5 2.75 2.75 3.5
# 3.25 4 3.25 3.5; their mean 120 / 36 = 3.3333; x 25 = 83.33: grade B (Baik).
WORKED_MEANS = (3.5, 3.5, 2.75, 2.75, 3.5, 3.25, 4.0, 3.25, 3.5)
WORKED_IKM = 83.33


def test_ikm_of_the_worked_example_is_83_33_grade_b() -> None:
    result = ikm.from_responses(WORKED)
    assert result is not None
    assert result.respondents == 4
    assert result.element_means == WORKED_MEANS
    assert result.index == WORKED_IKM and result.grade == "B"
    assert ikm.grade_names(result.grade) == ("Baik", "Good")


@pytest.mark.parametrize(
    ("index", "grade"),
    [
        (100.0, "A"),
        (88.31, "A"),
        (88.305, "A"),  # rounds half up to 88.31
        (88.3049, "B"),
        (88.30, "B"),
        (76.61, "B"),
        (76.60, "C"),
        (65.00, "C"),
        (64.99, "D"),
        (25.00, "D"),
        (24.99, None),
    ],
)
def test_grade_bands_follow_the_regulation_at_two_decimals(index: float, grade: str) -> None:
    assert ikm.grade(index) == grade


def test_all_ones_and_all_fours_are_the_ends_of_the_scale() -> None:
    low = ikm.from_responses([(1,) * 9])
    high = ikm.from_responses([(4,) * 9])
    assert low is not None and high is not None
    assert (low.index, low.grade) == (25.0, "D")
    assert (high.index, high.grade) == (100.0, "A")
    assert ikm.from_responses([]) is None


@pytest.mark.parametrize("scores", [(4,) * 8, (4,) * 10, (0, *(4,) * 8), (5, *(4,) * 8)])
def test_answers_that_are_not_nine_scores_from_1_to_4_are_refused(scores: tuple[int, ...]) -> None:
    with pytest.raises(ikm.InvalidAnswers):
        ikm.from_responses([scores])


def test_wait_bands_are_relative_to_the_service_target() -> None:
    assert ikm.wait_band(600, 600) == "within"
    assert ikm.wait_band(601, 600) == "up_to_2x"
    assert ikm.wait_band(1200, 600) == "up_to_2x"
    assert ikm.wait_band(1201, 600) == "over_2x"
    assert ikm.wait_band(None, 600) == "unknown"


# -- through the API ---------------------------------------------------------------------


@pytest.fixture
def config() -> AppConfig:
    """The report hall, for the `client` fixture."""
    return report_hall()


async def submit(client: TestClient, ticket_id: str, body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post(f"/api/v1/tickets/{ticket_id}/survey", json=body)
    return resp.status, await resp.json()


SCORES = [4, 4, 3, 3, 4, 3, 4, 3, 4]


async def test_a_served_ticket_can_be_rated_once_and_never_twice(
    client: TestClient, clock: ManualClock
) -> None:
    day = await play_day(client, clock)
    t1 = day.tickets["T1"]
    status = await (await client.get(f"/api/v1/tickets/{t1}/survey")).json()
    assert status["status"] == "open" and status["ticket"] == "A001"
    assert status["survey"]["mode"] == "skm" and len(status["survey"]["questions"]) == 9
    assert status["survey"]["complaint_url"] == "https://www.lapor.go.id"
    code, body = await submit(client, t1, {"scores": SCORES, "comment": "Cepat."})
    assert code == 201 and body["status"] == "submitted"
    code, body = await submit(client, t1, {"scores": SCORES})
    assert code == 409 and body["code"] == "survey_already_submitted"
    status = await (await client.get(f"/api/v1/tickets/{t1}/survey")).json()
    assert status["status"] == "submitted"


@pytest.mark.parametrize(
    ("name", "outcome"), [("T2", "no_show"), ("T5", "cancelled"), ("T6", "incomplete")]
)
async def test_a_ticket_that_was_not_served_cannot_be_rated(
    client: TestClient, clock: ManualClock, name: str, outcome: str
) -> None:
    day = await play_day(client, clock)
    code, body = await submit(client, day.tickets[name], {"scores": SCORES})
    assert code == 409 and body["code"] == "survey_not_available"
    assert body["details"] == {"outcome": outcome}
    status = await (await client.get(f"/api/v1/tickets/{day.tickets[name]}/survey")).json()
    assert status["status"] == "not_served"


async def test_a_waiting_ticket_cannot_be_rated_and_an_unknown_one_is_404(
    client: TestClient, clock: ManualClock
) -> None:
    day = Day(client, clock)
    day.at(0)
    await day.issue("W", "S1")
    code, body = await submit(client, day.tickets["W"], {"scores": SCORES})
    assert code == 409 and body["details"] == {"outcome": None}
    code, body = await submit(client, "no-such-ticket", {"scores": SCORES})
    assert code == 404 and body["code"] == "unknown_ticket"
    resp = await client.get("/api/v1/tickets/no-such-ticket/survey")
    assert resp.status == 404 and (await resp.json())["code"] == "unknown_ticket"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"scores": SCORES[:8]}, "invalid_survey", "scores"),
        ({"scores": [*SCORES[:3], 5, *SCORES[4:]]}, "invalid_survey", "scores[3]"),
        ({"scores": [*SCORES[:3], 0, *SCORES[4:]]}, "invalid_survey", "scores[3]"),
        ({"scores": ["4", *SCORES[1:]]}, "invalid_survey", "scores[0]"),
        ({"scores": [True, *SCORES[1:]]}, "invalid_survey", "scores[0]"),
        ({"scores": "4444"}, "invalid_survey", "scores"),
        ({}, "invalid_survey", "scores"),
        ({"scores": SCORES, "comment": "x" * 501}, "invalid_survey", "comment"),
        ({"scores": SCORES, "comment": 7}, "invalid_survey", "comment"),
        ({"scores": SCORES, "channel": "email"}, "invalid_survey", "channel"),
        ({"rating": 4}, "survey_mode_mismatch", None),
        ({"scores": SCORES, "name": "Budi"}, "unknown_field", None),
        ([SCORES], "invalid_json", None),
    ],
)
async def test_bad_submissions_get_400_with_a_stable_code_and_store_nothing(
    client: TestClient,
    clock: ManualClock,
    database_url: str,
    body: Any,
    code: str,
    field: str | None,
) -> None:
    day = await play_day(client, clock)
    status, answer = await submit(client, day.tickets["T1"], body)
    assert status == 400 and answer["code"] == code
    if field is not None:
        assert answer["details"]["field"] == field
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM surveys") == 0
    finally:
        await conn.close()
    status, _ = await submit(client, day.tickets["T1"], {"scores": SCORES})
    assert status == 201


async def test_the_survey_is_tied_to_the_served_visit_with_its_wait_and_service(
    client: TestClient, clock: ManualClock, database_url: str
) -> None:
    day = await play_day(client, clock)
    status, _ = await submit(client, day.tickets["T4"], {"scores": SCORES, "channel": "counter"})
    assert status == 201
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM surveys")
    finally:
        await conn.close()
    assert row is not None
    # T4 waited 920 s in S1, was transferred, waited 100 s in S2 and was served in 200 s.
    assert (row["segment"], row["service"], row["counter_id"]) == (1, "S2", "c2")
    assert (row["wait_seconds"], row["service_seconds"]) == (1020.0, 200.0)
    assert (row["mode"], row["channel"], row["u9"], row["rating"]) == ("skm", "counter", 4, None)
    assert "name" not in row and "nik" not in row  # tied to the visit, never to a person


async def test_the_survey_closes_seven_days_after_the_visit(
    client: TestClient, clock: ManualClock
) -> None:
    day = await play_day(client, clock)
    clock.set(T0 + timedelta(days=6))
    status = await (await client.get(f"/api/v1/tickets/{day.tickets['T1']}/survey")).json()
    assert status["status"] == "open"  # still rateable on a later day
    clock.set(T0 + timedelta(days=7, hours=1))
    code, body = await submit(client, day.tickets["T1"], {"scores": SCORES})
    assert code == 409 and body["code"] == "survey_closed"


async def test_ikm_through_the_api_equals_the_worked_example(
    client: TestClient, clock: ManualClock
) -> None:
    day = await play_day(client, clock)
    # A fourth served ticket (S1 at c1, waited 100 s: within its 600 s target).
    day.at(4000)
    await day.act("c1", "open")
    await day.issue("T7", "S1")
    day.at(4100)
    await day.call("c1", "T7")
    await day.act("c1", "finish", {"outcome": "served"})
    for name, scores in zip(("T1", "T3", "T4", "T7"), WORKED, strict=True):
        status, _ = await submit(client, day.tickets[name], {"scores": list(scores)})
        assert status == 201
    resp = await client.get(f"{BASE}/ikm", params={"from": "2026-11-23"}, headers=MANAGER)
    assert resp.status == 200
    body = await resp.json()
    site = body["site"]
    assert site["respondents"] == 4 and site["ikm"] == WORKED_IKM and site["grade"] == "B"
    assert tuple(site["element_means"].values()) == WORKED_MEANS
    # S1: T1 and T7 -> sums 7 8 6 6 7 6 8 7 7 = 62 / 18 x 25 = 86.11
    s1 = next(s for s in body["services"] if s["code"] == "S1")
    assert s1["respondents"] == 2 and s1["ikm"] == 86.11
    # Bands: T1 (300 <= 600) and T7 (100 <= 600) within; T3 (480 > 300, <= 600) up to 2x;
    # T4 (1020 in total > 2 x 300) over 2x.
    bands = {b["band"]: b for b in body["by_wait_band"]}
    assert bands["within"]["respondents"] == 2 and bands["within"]["ikm"] == 86.11
    # T3: 3 3 3 2 3 3 4 3 3 = 27 / 9 x 25 = 75.00 (C)
    assert (bands["up_to_2x"]["ikm"], bands["up_to_2x"]["grade"]) == (75.0, "C")
    # T4: 4 3 2 3 4 4 4 3 4 = 31 / 9 x 25 = 86.11 (B)
    assert (bands["over_2x"]["ikm"], bands["over_2x"]["grade"]) == (86.11, "B")
    assert bands["unknown"]["respondents"] == 0
    forbidden = await client.get(f"{BASE}/ikm")
    assert forbidden.status == 401


async def test_the_counter_tablet_offers_the_counters_last_served_ticket(
    client: TestClient, clock: ManualClock
) -> None:
    day = await play_day(client, clock)
    clock.set(T0 + timedelta(seconds=1560))
    c2 = auth("survey-c2")  # the tablet's own role, "survey", bound to c2
    url = f"{BASE}/surveys/pending"
    pending = await (await client.get(url, params={"counter": "c2"}, headers=c2)).json()
    assert pending["ticket"]["id"] == day.tickets["T4"] and pending["ticket"]["number"] == "A003"
    status, _ = await submit(client, day.tickets["T4"], {"scores": SCORES, "channel": "counter"})
    assert status == 201
    pending = await (await client.get(url, params={"counter": "c2"}, headers=c2)).json()
    assert pending["ticket"]["id"] == day.tickets["T3"]
    clock.set(T0 + timedelta(seconds=1500 + 16 * 60))  # T3 (960) is past the 15 min window
    pending = await (await client.get(url, params={"counter": "c2"}, headers=c2)).json()
    assert pending["ticket"] is None
    other = await client.get(url, params={"counter": "c1"}, headers=c2)
    assert other.status == 403 and (await other.json())["code"] == "counter_not_allowed"
    unknown = await client.get(url, params={"counter": "c9"}, headers=c2)
    assert unknown.status == 404 and (await unknown.json())["code"] == "unknown_counter"
    # The counter's own token works too.
    own = await client.get(url, params={"counter": "c2"}, headers=auth("report-c2"))
    assert own.status == 200


async def test_a_survey_token_can_do_nothing_but_offer_its_counters_surveys(
    client: TestClient, clock: ManualClock
) -> None:
    """The tablet citizens touch holds a "survey" token: no counter action, no ticket,
    snapshot or report (the stream and the display are public anyway)."""
    await play_day(client, clock)
    tablet = auth("survey-c2")
    refused = [
        await client.post(f"{BASE}/counters/c2/call-next", json={}, headers=tablet),
        await client.post(f"{BASE}/counters/c2/open", json={}, headers=tablet),
        await client.post(f"{BASE}/tickets", json={"service": "S1"}, headers=tablet),
        await client.get(f"{BASE}/snapshot", headers=tablet),
        await client.get(f"{BASE}/report", headers=tablet),
        await client.get(f"{BASE}/ikm", headers=tablet),
    ]
    for resp in refused:
        assert resp.status == 403, (resp.method, resp.url)
        assert (await resp.json())["code"] == "role_not_allowed"
    pending = await client.get(f"{BASE}/surveys/pending?counter=c2", headers=tablet)
    assert pending.status == 200


async def test_a_hall_with_the_one_tap_survey_takes_a_rating_not_the_nine_scores(
    settings: Settings, clock: ManualClock, aiohttp_client: Any
) -> None:
    quick = report_hall(site_fields={"survey": "quick"})  # `survey = "quick"` in the file
    client = await aiohttp_client(create_app(settings, quick, clock))
    day = await play_day(client, clock)
    config = await (await client.get(f"{BASE}/survey")).json()
    assert config["mode"] == "quick" and [c["value"] for c in config["choices"]] == [1, 2, 3, 4]
    code, body = await submit(client, day.tickets["T1"], {"scores": SCORES})
    assert code == 400 and body["code"] == "survey_mode_mismatch"
    code, body = await submit(client, day.tickets["T1"], {"rating": 9})
    assert code == 400 and body["details"]["field"] == "rating"
    code, body = await submit(client, day.tickets["T1"], {"rating": 4})
    assert code == 201 and body["mode"] == "quick"
    code, _ = await submit(client, day.tickets["T3"], {"rating": 3})
    assert code == 201
    ikm_body = await (await client.get(f"{BASE}/ikm", headers=MANAGER)).json()
    # Quick ratings are not an SKM IKM: (4 + 3) / 2 x 25 = 87.5 as the quick index.
    assert ikm_body["site"]["respondents"] == 0 and ikm_body["site"]["ikm"] is None
    assert ikm_body["site"]["quick"] == {"respondents": 2, "index": 87.5}
