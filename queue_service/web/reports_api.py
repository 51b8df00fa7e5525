"""Reports, SKM surveys and the IKM over HTTP.

- Reports (JSON, CSV, printable HTML) and the IKM: manager and admin tokens for the site.
- Surveys: the ticket id is the citizen's capability, as for the ticket status: no token.
  (Roles are checked before the handlers run: see web/routes.py.)
  A ticket can be rated once, only after its visit ended `served`, within
  SURVEY_WINDOW_DAYS. The counter's survey tablet (a counter token) asks which ticket the
  counter served last.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from aiohttp import web

from queue_service.domain import errors, ikm
from queue_service.domain.site import Site
from queue_service.domain.vocab import Outcome, SurveyMode
from queue_service.reports.build import build_ikm, build_report, default_range
from queue_service.reports.render import to_csv, to_html
from queue_service.reports.task import ReportsTask
from queue_service.store import surveys
from queue_service.web.api import read_body
from queue_service.web.errors import ApiError
from queue_service.web.keys import CLOCK, CONFIG, ENGINE, STORE
from queue_service.web.spec import Body

REPORTS = web.AppKey("reports", ReportsTask)

SURVEY_WINDOW_DAYS = 7
COMMENT_MAX = 500
# How long after a visit the counter's tablet still offers its survey.
TABLET_WINDOW = timedelta(minutes=15)
COMPLAINT_URL = "https://www.lapor.go.id"
REPORT_FORMATS = ("json", "csv", "html")
REPORT_LOCALES = ("id", "en")  # a CSV's regional format: `;` and decimal commas, or `,`

# The SKM questionnaire of PermenPANRB 14/2017 (its appendix), U1..U9, with the four
# answers from 1 (worst) to 4 (best), in Bahasa Indonesia and English.
SKM_QUESTIONS: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "u1",
        "Bagaimana pendapat Saudara tentang kesesuaian persyaratan pelayanan dengan jenis"
        " pelayanannya?",
        "Do the requirements fit the service?",
        ("Tidak sesuai", "Kurang sesuai", "Sesuai", "Sangat sesuai"),
        ("Not fitting", "Barely fitting", "Fitting", "Very fitting"),
    ),
    (
        "u2",
        "Bagaimana pemahaman Saudara tentang kemudahan prosedur pelayanan di unit ini?",
        "How easy is the procedure here?",
        ("Tidak mudah", "Kurang mudah", "Mudah", "Sangat mudah"),
        ("Not easy", "Rather hard", "Easy", "Very easy"),
    ),
    (
        "u3",
        "Bagaimana pendapat Saudara tentang kecepatan waktu dalam memberikan pelayanan?",
        "How fast was the service?",
        ("Tidak cepat", "Kurang cepat", "Cepat", "Sangat cepat"),
        ("Not fast", "Rather slow", "Fast", "Very fast"),
    ),
    (
        "u4",
        "Bagaimana pendapat Saudara tentang kewajaran biaya/tarif dalam pelayanan?",
        "How fair was the fee?",
        ("Sangat mahal", "Cukup mahal", "Murah", "Gratis"),
        ("Very expensive", "Rather expensive", "Cheap", "Free"),
    ),
    (
        "u5",
        "Bagaimana pendapat Saudara tentang kesesuaian produk pelayanan antara yang tercantum"
        " dalam standar pelayanan dengan hasil yang diberikan?",
        "Did you get what the service standard promises?",
        ("Tidak sesuai", "Kurang sesuai", "Sesuai", "Sangat sesuai"),
        ("Not as promised", "Partly", "As promised", "Fully as promised"),
    ),
    (
        "u6",
        "Bagaimana pendapat Saudara tentang kompetensi/kemampuan petugas dalam pelayanan?",
        "How competent was the officer?",
        ("Tidak kompeten", "Kurang kompeten", "Kompeten", "Sangat kompeten"),
        ("Not competent", "Barely competent", "Competent", "Very competent"),
    ),
    (
        "u7",
        "Bagaimana pendapat Saudara tentang perilaku petugas dalam pelayanan terkait kesopanan"
        " dan keramahan?",
        "How polite and friendly was the officer?",
        (
            "Tidak sopan dan ramah",
            "Kurang sopan dan ramah",
            "Sopan dan ramah",
            "Sangat sopan dan ramah",
        ),
        ("Not polite", "Barely polite", "Polite", "Very polite"),
    ),
    (
        "u8",
        "Bagaimana pendapat Saudara tentang kualitas sarana dan prasarana?",
        "How good are the facilities?",
        ("Buruk", "Cukup", "Baik", "Sangat baik"),
        ("Poor", "Fair", "Good", "Very good"),
    ),
    (
        "u9",
        "Bagaimana pendapat Saudara tentang penanganan pengaduan pengguna layanan?",
        "How are complaints handled?",
        (
            "Tidak ada",
            "Ada tetapi tidak berfungsi",
            "Berfungsi kurang maksimal",
            "Dikelola dengan baik",
        ),
        ("There is none", "Exists, does not work", "Works partly", "Well handled"),
    ),
)
QUICK_CHOICES = (
    ("Tidak puas", "Not satisfied"),
    ("Kurang puas", "Somewhat unsatisfied"),
    ("Puas", "Satisfied"),
    ("Sangat puas", "Very satisfied"),
)


class SurveyConflict(ApiError):
    status, code = 409, "survey_not_available"


class InvalidSurvey(ApiError):
    status, code = 400, "invalid_survey"


def survey_config(site: Site) -> dict[str, Any]:
    mode = site.survey
    out: dict[str, Any] = {
        "site": site.id,
        "mode": mode,
        "comment_max": COMMENT_MAX,
        "complaint_url": COMPLAINT_URL,
        "window_days": SURVEY_WINDOW_DAYS,
    }
    if mode == SurveyMode.SKM:
        out["questions"] = [
            {
                "code": code,
                "element": {"id": name_id, "en": name_en},
                "text": {"id": q_id, "en": q_en},
                "choices": [
                    {"value": v, "id": a_id, "en": a_en}
                    for v, (a_id, a_en) in enumerate(zip(ans_id, ans_en, strict=True), 1)
                ],
            }
            for (code, q_id, q_en, ans_id, ans_en), (_, name_id, name_en) in zip(
                SKM_QUESTIONS, ikm.ELEMENT_NAMES, strict=True
            )
        ]
    else:
        out["choices"] = [
            {"value": v, "id": a_id, "en": a_en} for v, (a_id, a_en) in enumerate(QUICK_CHOICES, 1)
        ]
    return out


def _site(request: web.Request) -> Site:
    site_id = request.match_info["site"]
    site = request.app[CONFIG].sites.get(site_id)
    if site is None:
        raise errors.UnknownSite(f"site {site_id!r} does not exist", site=site_id)
    return site


def _range(request: web.Request, site: Site) -> tuple[date, date]:
    """`from` and `to` of the query (each defaults when absent; present, it must be a date:
    an empty one is refused, not taken for the default)."""
    first, last = default_range(site, request.app[CLOCK].now())
    try:
        if "from" in request.query:
            first = date.fromisoformat(request.query["from"])
        if "to" in request.query:
            last = date.fromisoformat(request.query["to"])
    except ValueError:
        raise ApiError("'from' and 'to' must be dates, YYYY-MM-DD", code="invalid_date") from None
    return first, last


# -- reports ------------------------------------------------------------------------------------


async def report(request: web.Request) -> web.StreamResponse:
    site = _site(request)
    fmt = request.query.get("format", "json")
    if fmt not in REPORT_FORMATS:
        raise ApiError(
            f"format must be one of {', '.join(REPORT_FORMATS)}",
            code="invalid_format",
            allowed=list(REPORT_FORMATS),
        )
    locale = request.query.get("locale", "id")
    if locale not in REPORT_LOCALES:
        raise ApiError(f"locale must be {' or '.join(REPORT_LOCALES)}", code="invalid_format")
    first, last = _range(request, site)
    body = await build_report(request.app[STORE].pool, site, first, last, request.app[CLOCK].now())
    name = f"laporan-{site.id}-{first.isoformat()}-{last.isoformat()}"
    private = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    if fmt == "json":
        return web.json_response(body, headers=private)
    if fmt == "csv":
        return web.Response(
            body=to_csv(body, locale).encode("utf-8"),
            content_type="text/csv",
            charset="utf-8",
            headers={**private, "Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return web.Response(
        text=to_html(body),
        content_type="text/html",
        headers={
            **private,
            "Content-Disposition": f'inline; filename="{name}.html"',
            # Self-contained: inline CSS and SVG only; no script may run in it.
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:;"
                " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
        },
    )


async def ikm_index(request: web.Request) -> web.Response:
    site = _site(request)
    first, last = _range(request, site)
    body = await build_ikm(request.app[STORE].pool, site, first, last)
    return web.json_response(body, headers={"Cache-Control": "private, no-store"})


# -- surveys ------------------------------------------------------------------------------------


async def site_survey(request: web.Request) -> web.Response:
    return web.json_response(survey_config(_site(request)))


async def _visit(request: web.Request) -> tuple[surveys.ServedVisit, Site]:
    ticket_id = request.match_info["ticket"]
    if not ticket_id or len(ticket_id) > 64:
        raise errors.UnknownTicket("no such ticket", ticket=None)
    visit = await surveys.served_visit(request.app[STORE].pool, ticket_id)
    site = request.app[CONFIG].sites.get(visit.site_id) if visit else None
    if visit is None or site is None:
        raise errors.UnknownTicket("no such ticket")
    return visit, site


# A ticket's survey status (`_status`, or submitted).
SURVEY_STATES = ("open", "submitted", "not_served", "closed")


def _status(visit: surveys.ServedVisit, request: web.Request) -> str:
    if visit.outcome != Outcome.SERVED:
        return "not_served"
    assert visit.finished_at is not None
    if request.app[CLOCK].now() - visit.finished_at > timedelta(days=SURVEY_WINDOW_DAYS):
        return "closed"
    return "open"


async def ticket_survey(request: web.Request) -> web.Response:
    visit, site = await _visit(request)
    stored = await surveys.survey_of(request.app[STORE].pool, visit.ticket_id)
    status = "submitted" if stored is not None else _status(visit, request)
    service = site.services.get(visit.service)
    return web.json_response(
        {
            "ticket": visit.number,
            "site": site.id,
            "site_name": site.name,
            "service": visit.service,
            "service_name": {"id": service.name_id, "en": service.name_en} if service else None,
            "status": status,
            "submitted_at": stored["submitted_at"].isoformat() if stored else None,
            "survey": survey_config(site),
        }
    )


def _score(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not ikm.LOW <= value <= ikm.HIGH:
        raise InvalidSurvey(f"{field} must be an integer from {ikm.LOW} to {ikm.HIGH}", field=field)
    return value


def parse_answers(body: dict[str, Any], mode: str) -> surveys.SurveyAnswers:
    comment = body.get("comment")
    if comment is not None:
        if not isinstance(comment, str):
            raise InvalidSurvey("comment must be text", field="comment")
        comment = comment.strip() or None
        if comment is not None and len(comment) > COMMENT_MAX:
            raise InvalidSurvey(
                f"comment is longer than {COMMENT_MAX} characters",
                field="comment",
                max_length=COMMENT_MAX,
            )
    channel = body.get("channel", "phone")
    if channel not in SURVEY_CHANNELS:
        raise InvalidSurvey("channel must be phone or counter", field="channel")
    if mode == SurveyMode.SKM:
        if "rating" in body:
            raise InvalidSurvey(
                "this hall uses the full SKM survey: send 'scores', not 'rating'",
                code="survey_mode_mismatch",
                mode=mode,
            )
        scores = body.get("scores")
        if not isinstance(scores, list) or len(scores) != ikm.ELEMENTS:
            raise InvalidSurvey(
                f"scores must be a list of {ikm.ELEMENTS} integers from {ikm.LOW} to {ikm.HIGH}"
                " (U1..U9)",
                field="scores",
            )
        values = tuple(_score(v, f"scores[{i}]") for i, v in enumerate(scores))
        return surveys.SurveyAnswers(SurveyMode.SKM, values, None, comment, channel)
    if "scores" in body:
        raise InvalidSurvey(
            "this hall uses the one-tap rating: send 'rating', not 'scores'",
            code="survey_mode_mismatch",
            mode=mode,
        )
    if "rating" not in body:
        raise InvalidSurvey(f"rating is required ({ikm.LOW} to {ikm.HIGH})", field="rating")
    return surveys.SurveyAnswers(
        SurveyMode.QUICK, None, _score(body["rating"], "rating"), comment, channel
    )


SURVEY_CHANNELS = ("phone", "counter")
# One answer's score: the SKM's 1 (worst) to 4 (best), for the one-tap rating too.
SCORE = {"type": "integer", "minimum": ikm.LOW, "maximum": ikm.HIGH}
SUBMIT_SURVEY = Body(
    "SurveyRequest",
    other={
        "scores": {
            "type": "array",
            "minItems": ikm.ELEMENTS,
            "maxItems": ikm.ELEMENTS,
            "items": SCORE,
            "description": "U1..U9, 1 (worst) to 4 (best); mode `skm`.",
        },
        "rating": {
            **SCORE,
            "description": "One-tap rating; mode `quick`.",
        },
        "comment": {
            "type": ["string", "null"],
            "description": "Optional suggestion.",
            "maxLength": COMMENT_MAX,
        },
        "channel": {"type": "string", "enum": list(SURVEY_CHANNELS), "default": "phone"},
    },
    must_send=True,
    description="The answers.",
    example={"scores": [4, 3, 3, 4, 3, 4, 4, 3, 3], "comment": "Petugas ramah."},
)


async def submit_survey(request: web.Request) -> web.Response:
    visit, site = await _visit(request)
    body = await read_body(request, SUBMIT_SURVEY)
    mode = site.survey
    answers = parse_answers(body, mode)
    status = _status(visit, request)
    if status == "not_served":
        raise SurveyConflict(
            "only a visit that ended 'served' can be rated",
            outcome=visit.outcome,
        )
    if status == "closed":
        raise SurveyConflict(
            f"the survey closes {SURVEY_WINDOW_DAYS} days after the visit",
            code="survey_closed",
            window_days=SURVEY_WINDOW_DAYS,
        )
    now = request.app[CLOCK].now()
    if not await surveys.insert_survey(request.app[STORE].pool, visit, answers, now):
        raise SurveyConflict(
            "this ticket's visit has already been rated", code="survey_already_submitted"
        )
    return web.json_response(
        {
            "ticket": visit.number,
            "site": site.id,
            "service": visit.service,
            "mode": answers.mode,
            "status": "submitted",
            "submitted_at": now.isoformat(),
        },
        status=201,
    )


async def pending_survey(request: web.Request) -> web.Response:
    """The counter's survey tablet: the ticket it served last, if not rated yet."""
    site = _site(request)
    counter_id = request.query["counter"]  # a counter of the site (the role check saw to it)
    now = request.app[CLOCK].now()
    rows = await surveys.pending_for_counter(
        request.app[STORE].pool, site.id, site.service_day(now), counter_id, now - TABLET_WINDOW
    )
    ticket: dict[str, Any] | None = None
    if rows:
        row = rows[0]
        state = request.app[ENGINE].committed.get(site.id)
        held = state.tickets.get(row["ticket_id"]) if state is not None else None
        service = site.services.get(row["service"])
        ticket = {
            "id": row["ticket_id"],
            "number": held.number if held is not None else None,
            "service": row["service"],
            "service_name": {"id": service.name_id, "en": service.name_en} if service else None,
            "finished_at": row["finished_at"].isoformat(),
        }
    return web.json_response(
        {"site": site.id, "counter": counter_id, "ticket": ticket, "survey": survey_config(site)},
        headers={"Cache-Control": "no-store"},
    )
