"""Render a report (the dict of `build.build_report`) as JSON, CSV or printable HTML.

CSV is for Excel as the halls have it: UTF-8 with a byte-order mark (without it Excel
reads UTF-8 as the ANSI code page and breaks names), and by default the Indonesian
regional format, i.e. `;` between fields and a decimal comma, because Excel with id-ID
settings splits a comma-separated file on `;` only and reads `12.5` as text or a date.
`locale="en"` gives `,` and a decimal point instead. The file holds several tables, one
after the other with a blank line between them, each with its own header row.

HTML is one self-contained page (inline CSS and SVG charts, no script, nothing from the
internet) laid out for A4 so a manager can print it or save it as PDF from the browser.
Labels are Bahasa Indonesia first, English second.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from queue_service.domain.vocab import NoticeKind
from queue_service.reports.build import BOOKED, WALK_IN

CSV_BOM = "\ufeff"


# -- JSON ---------------------------------------------------------------------------------------


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=1)


# -- CSV ----------------------------------------------------------------------------------------

_FIGURE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("visits", "kunjungan/visits"),
    ("issued", "tiket diambil/issued"),
    ("served", "dilayani/served"),
    ("incomplete", "berkas tidak lengkap/incomplete"),
    ("referred", "dirujuk/referred"),
    ("no_show", "tidak hadir/no-show"),
    ("cancelled", "batal/cancelled"),
    ("transferred", "dialihkan/transferred"),
    ("expired", "kedaluwarsa saat hari berakhir/expired at day end"),
    ("open", "belum selesai/open"),
    ("wait.count", "jumlah tunggu/waits"),
    ("within_target.count", "dalam standar/within target"),
    (
        "within_target.waiting_past_target",
        "belum dipanggil melewati standar/not called, past target",
    ),
    ("within_target.share", "% dalam standar/% within target"),
    ("wait.p50", "tunggu p50 (detik)/wait p50 (s)"),
    ("wait.p90", "tunggu p90 (detik)/wait p90 (s)"),
    ("wait.max", "tunggu maks (detik)/wait max (s)"),
    ("wait.mean", "tunggu rata-rata (detik)/wait mean (s)"),
    ("walk.p50", "jalan p50 (detik)/walk p50 (s)"),
    ("walk.p90", "jalan p90 (detik)/walk p90 (s)"),
    ("walk.mean", "jalan rata-rata (detik)/walk mean (s)"),
    ("service.p50", "layanan p50 (detik)/service p50 (s)"),
    ("service.p90", "layanan p90 (detik)/service p90 (s)"),
    ("service.mean", "layanan rata-rata (detik)/service mean (s)"),
    ("estimate.count", "jumlah estimasi/estimates"),
    ("estimate.mae", "galat estimasi rata-rata (detik)/estimate MAE (s)"),
    ("estimate.bias", "bias estimasi (detik)/estimate bias (s)"),
)


# Antrian online (the report's `online` section): bookings whose slot is in the range, and
# the waits of booked citizens against walk-ins'.
_BOOKING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("made", "booking dibuat/bookings made"),
    ("booked", "belum check-in/not yet checked in"),
    ("checked_in", "check-in/checked in"),
    ("late", "check-in terlambat (walk-in)/checked in late (as walk-in)"),
    ("cancelled", "dibatalkan/cancelled"),
    ("missed", "tidak datang/missed"),
    ("moved", "dipindah jadwal/moved"),
    ("show_rate", "% hadir/show rate"),
    ("punctuality.p50", "ketepatan check-in p50 (detik)/check-in punctuality p50 (s)"),
    ("punctuality.p90", "ketepatan check-in p90 (detik)/check-in punctuality p90 (s)"),
)
# (key, Indonesian, English) of the two ways into a queue, prefixed to the wait columns.
_ENTRIES = ((BOOKED, "booking", "booked"), (WALK_IN, "datang langsung", "walk-in"))
_ENTRY_WAIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("wait.count", "jumlah tunggu/waits"),
    ("within_target.count", "dalam standar/within target"),
    (
        "within_target.waiting_past_target",
        "belum dipanggil melewati standar/not called, past target",
    ),
    ("within_target.share", "% dalam standar/% within target"),
    ("wait.p50", "tunggu p50 (detik)/wait p50 (s)"),
    ("wait.p90", "tunggu p90 (detik)/wait p90 (s)"),
)


# Reminders (the `online.*.reminders` of a report): notices delivered to the webhook and
# given up, by kind. (kind, Indonesian, English), in the table's order.
_REMINDER_KINDS: tuple[tuple[NoticeKind, str, str], ...] = (
    (NoticeKind.BOOKED, "booking dibuat", "booked"),
    (NoticeKind.RESCHEDULED, "dipindah jadwal", "moved"),
    (NoticeKind.CANCELLED, "dibatalkan", "cancelled"),
    (NoticeKind.MISSED, "tidak datang", "missed"),
    (NoticeKind.NEAR, "giliran dekat", "turn near"),
    (NoticeKind.CALLED, "dipanggil", "called"),
)
# (outcome, its column in all, its word in a kind's column)
_REMINDER_OUTCOMES: tuple[tuple[str, str, str], ...] = (
    ("delivered", "pengingat terkirim/reminders delivered", "terkirim/delivered"),
    ("failed", "pengingat gagal/reminders failed", "gagal/failed"),
)


def _reminder_cells(reminders: dict[str, Any]) -> list[Any]:
    """One row of the reminders table: in all, then per kind, delivered and failed."""
    return [
        *(reminders[outcome] for outcome, _, _ in _REMINDER_OUTCOMES),
        *(
            reminders["by_kind"][kind][outcome]
            for kind, _, _ in _REMINDER_KINDS
            for outcome, _, _ in _REMINDER_OUTCOMES
        ),
    ]


def _entry_label(id_word: str, en_word: str, label: str) -> str:
    """A wait column's header for one entry: "booking: jumlah tunggu/booked: waits"."""
    id_label, _, en_label = label.partition("/")
    return f"{id_word}: {id_label}/{en_word}: {en_label}"


def _online_cells(part: dict[str, Any]) -> list[Any]:
    """One row of the antrian online table: bookings, then the waits of each entry."""
    return [
        *(_get(part["bookings"], key) for key, _ in _BOOKING_COLUMNS),
        *(
            _get(part["waits"][entry], key)
            for entry, _, _ in _ENTRIES
            for key, _ in _ENTRY_WAIT_COLUMNS
        ),
    ]


def _get(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class _Cells:
    def __init__(self, locale: str) -> None:
        self.decimal = "," if locale == "id" else "."

    def __call__(self, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, float):
            text = f"{value:.4f}".rstrip("0").rstrip(".")
            return text.replace(".", self.decimal)
        return str(value)


def to_csv(report: dict[str, Any], locale: str = "id") -> str:
    """The report as Excel-ready CSV text (starting with the BOM)."""
    cell = _Cells(locale)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";" if locale == "id" else ",", lineterminator="\r\n")

    def rows(header: Sequence[str], body: Iterable[Sequence[Any]]) -> None:
        writer.writerow(header)
        for values in body:
            writer.writerow([cell(v) for v in values])
        writer.writerow([])

    site = report["site"]
    rows(
        ["laporan/report", "lokasi/site", "dari/from", "sampai/to", "dibuat/generated"],
        [["antrian", site["id"], report["from"], report["to"], report["generated_at"]]],
    )
    figure_rows: list[list[Any]] = []

    def add(level: str, ident: str, name: str, row: dict[str, Any], extra: Sequence[Any]) -> None:
        figure_rows.append(
            [level, ident, name, *extra, *(_get(row, key) for key, _ in _FIGURE_COLUMNS)]
        )

    add("site", site["id"], site["name"], report["totals"], ["", "", "", "", ""])
    for a in report["agencies"]:
        add("agency", a["id"], a["name"], a, ["", "", "", "", ""])
    for s in report["services"]:
        add(
            "service",
            s["code"],
            s["name"]["id"],
            s,
            [s["agency"], s["target_wait_seconds"], "", "", ""],
        )
    for c in report["counters"]:
        add(
            "counter",
            c["id"],
            c["name"],
            c,
            ["", "", c["open_seconds"], c["busy_seconds"], c["idle_while_queue_seconds"]],
        )
    rows(
        [
            "tingkat/level",
            "id",
            "nama/name",
            "instansi/agency",
            "standar tunggu (detik)/target wait (s)",
            "buka (detik)/open (s)",
            "sibuk (detik)/busy (s)",
            "menganggur saat ada antrian (detik)/idle while queue (s)",
            *(label for _, label in _FIGURE_COLUMNS),
        ],
        figure_rows,
    )
    rows(
        [
            "jam/hour",
            "kedatangan/arrivals",
            "jumlah tunggu/waits",
            "tunggu rata-rata (detik)/wait mean (s)",
            "tunggu p90 (detik)/wait p90 (s)",
        ],
        [
            [h["hour"], h["arrivals"], h["waits"], h["wait_mean"], h["wait_p90"]]
            for h in report["hours"]
        ],
    )
    rows(
        [
            "hari/day",
            "tiket diambil/issued",
            "dilayani/served",
            "kedaluwarsa saat hari berakhir/expired at day end",
            "jumlah tunggu/waits",
            "dalam standar/within target",
            "belum dipanggil melewati standar/not called, past target",
            "% dalam standar/% within target",
            "tunggu p90 (detik)/wait p90 (s)",
        ],
        [
            [
                d["day"],
                d["issued"],
                d["served"],
                d["expired"],
                d["waits"],
                d["within_target_count"],
                d["waiting_past_target"],
                d["within_target_share"],
                d["wait_p90"],
            ]
            for d in report["daily"]
        ],
    )
    online = report["online"]
    if online["services"]:
        levels = [
            ("site", site["id"], site["name"], online["totals"]),
            *(("service", svc["code"], svc["name"]["id"], svc) for svc in online["services"]),
        ]
        rows(
            [
                "tingkat/level",
                "id",
                "nama/name",
                *(label for _, label in _BOOKING_COLUMNS),
                *(
                    _entry_label(id_word, en_word, label)
                    for _, id_word, en_word in _ENTRIES
                    for _, label in _ENTRY_WAIT_COLUMNS
                ),
            ],
            [[level, ident, name, *_online_cells(part)] for level, ident, name, part in levels],
        )
        rows(
            [
                "tingkat/level",
                "id",
                "nama/name",
                *(label for _, label, _ in _REMINDER_OUTCOMES),
                *(
                    _entry_label(id_word, en_word, word)
                    for _, id_word, en_word in _REMINDER_KINDS
                    for _, _, word in _REMINDER_OUTCOMES
                ),
            ],
            [
                [level, ident, name, *_reminder_cells(part["reminders"])]
                for level, ident, name, part in levels
            ],
        )
    elements = [e["code"] for e in report["ikm"]["elements"]]
    ikm_rows: list[list[Any]] = []

    def add_ikm(level: str, ident: str, part: dict[str, Any]) -> None:
        means = part.get("element_means") or {}
        ikm_rows.append(
            [
                level,
                ident,
                part["respondents"],
                *(means.get(code) for code in elements),
                part["ikm"],
                part["grade"],
                part["quick"]["respondents"],
                part["quick"]["index"],
            ]
        )

    add_ikm("site", site["id"], report["ikm"]["site"])
    for a in report["ikm"]["agencies"]:
        add_ikm("agency", a["id"], a)
    for s in report["ikm"]["services"]:
        add_ikm("service", s["code"], s)
    for b in report["ikm"]["by_wait_band"]:
        add_ikm("wait_band", b["band"], b)
    rows(
        [
            "tingkat/level",
            "id",
            "responden/respondents",
            *(f"nilai {code.upper()}/mean {code.upper()}" for code in elements),
            "IKM",
            "mutu/grade",
            "responden cepat/quick respondents",
            "indeks cepat/quick index",
        ],
        ikm_rows,
    )
    return CSV_BOM + out.getvalue()


# -- HTML ---------------------------------------------------------------------------------------


def _local_time(report: dict[str, Any]) -> str:
    """When the report was made, in the site's timezone (YYYY-MM-DD HH:MM)."""
    try:
        made = datetime.fromisoformat(report["generated_at"])
        return made.astimezone(ZoneInfo(report["site"]["timezone"])).strftime("%Y-%m-%d %H:%M")
    except (ValueError, KeyError, ZoneInfoNotFoundError):
        return str(report.get("generated_at", ""))[:16]


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "\u2013"
    m = seconds / 60
    return f"{m:.1f}".replace(".", ",")


def _pct(share: float | None) -> str:
    return "\u2013" if share is None else f"{share * 100:.1f}%".replace(".", ",")


def _hm(seconds: float) -> str:
    total = round(seconds / 60)
    return f"{total // 60}:{total % 60:02d}"


def _bi(id_text: str, en_text: str) -> str:
    return f'{escape(id_text)} <span class="en">{escape(en_text)}</span>'


def _bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    unit: str,
    line: Sequence[float | None] | None = None,
    line_label: str = "",
    reference: float | None = None,
    marks: Sequence[float | None] | None = None,
    line_top: float | None = None,
    width: int = 680,
    height: int = 190,
) -> str:
    """An SVG bar chart: an optional second series as a line on its own (right) axis, a
    dashed reference level, or `marks`, one level per bar on the bars' own axis."""
    pad_l, pad_r, pad_t, pad_b = 40, 40 if line else 10, 14, 28
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max([*values, reference or 0, *(m or 0 for m in marks or ()), 1.0])
    n = max(len(values), 1)
    step = inner_w / n
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for frac in (0, 0.5, 1):
        y = pad_t + inner_h * (1 - frac)
        parts.append(
            f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{pad_l - 4}" y="{y + 3:.1f}" class="tick" text-anchor="end">'
            f"{escape(_fmt_axis(top * frac))}</text>"
        )
    for i, value in enumerate(values):
        h = inner_h * value / top
        x = pad_l + i * step + step * 0.15
        parts.append(
            f'<rect x="{x:.1f}" y="{pad_t + inner_h - h:.1f}" width="{step * 0.7:.1f}"'
            f' height="{h:.1f}" class="bar"><title>{escape(labels[i])}: '
            f"{escape(_fmt_axis(value))} {escape(unit)}</title></rect>"
        )
    for i, mark in enumerate(marks or ()):
        if mark is None:
            continue
        y = pad_t + inner_h * (1 - mark / top)
        x = pad_l + i * step + step * 0.08
        parts.append(
            f'<line x1="{x:.1f}" x2="{x + step * 0.84:.1f}" y1="{y:.1f}" y2="{y:.1f}"'
            f' class="mark"><title>{escape(labels[i])}: {escape(_fmt_axis(mark))}'
            f" {escape(unit)}</title></line>"
        )
    every = max(1, n // 16)
    for i, label in enumerate(labels):
        if i % every == 0:
            x = pad_l + i * step + step / 2
            parts.append(
                f'<text x="{x:.1f}" y="{height - 10}" class="tick" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    if reference is not None and reference <= top:
        y = pad_t + inner_h * (1 - reference / top)
        parts.append(
            f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}" class="ref"/>'
        )
    if line:
        known = [v for v in line if v is not None]
        ltop = line_top or max([*known, 1.0])
        xy = [
            (pad_l + i * step + step / 2, pad_t + inner_h * (1 - v / ltop))
            for i, v in enumerate(line)
            if v is not None
        ]
        if len(xy) > 1:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            parts.append(f'<polyline points="{points}" class="line"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="dot"/>' for x, y in xy)
        parts.append(
            f'<text x="{width - pad_r + 4}" y="{pad_t + 3}" class="tick">'
            f"{escape(_fmt_axis(ltop))}</text>"
            f'<text x="{width - pad_r + 4}" y="{pad_t + inner_h + 3}" class="tick">0</text>'
        )
        if line_label:
            parts.append(
                f'<text x="{width - pad_r}" y="{pad_t - 4}" class="tick line-label"'
                f' text-anchor="end">{escape(line_label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _fmt_axis(value: float) -> str:
    if value >= 100 or value == int(value):
        return str(round(value))
    return f"{value:.1f}".replace(".", ",")


_CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.35 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #1b2a35;
       margin: 0 auto; max-width: 190mm; padding: 8mm 0; }
h1 { font-size: 17pt; margin: 0 0 2mm; color: #084569; }
h2 { font-size: 12.5pt; margin: 7mm 0 2mm; color: #084569; border-bottom: 1.5pt solid #084569;
     padding-bottom: 1mm; break-after: avoid; }
.en { color: #5a6b78; font-weight: normal; font-size: 0.88em; }
.meta { color: #3d4f5c; margin: 0 0 4mm; }
table { width: 100%; border-collapse: collapse; margin: 1mm 0 3mm; font-size: 8.6pt; }
th, td { border-bottom: 0.5pt solid #c5d0d8; padding: 1.2mm 1.4mm; text-align: right;
         vertical-align: top; }
th { background: #e9f0f5; color: #13324a; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
tr { break-inside: avoid; }
tr.total td { font-weight: 700; border-top: 1pt solid #084569; }
.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 3mm; margin: 3mm 0; }
.kpi { border: 0.8pt solid #c5d0d8; border-radius: 2mm; padding: 2.5mm; }
.kpi b { display: block; font-size: 16pt; color: #084569; }
.kpi span { font-size: 8.5pt; color: #3d4f5c; }
.chart { width: 100%; height: auto; display: block; margin: 1mm 0 2mm; }
.chart .bar { fill: #2f7fb0; }
.chart .line { fill: none; stroke: #d9822b; stroke-width: 2; }
.chart .ref { stroke: #c0392b; stroke-width: 1.2; stroke-dasharray: 4 3; }
.chart .mark { stroke: #d9822b; stroke-width: 3; }
.chart .dot { fill: #d9822b; }
.chart .grid { stroke: #dde5ea; stroke-width: 0.8; }
.chart .tick { font-size: 9px; fill: #3d4f5c; }
.chart .line-label { fill: #b3641a; }
.legend { font-size: 8.5pt; color: #3d4f5c; margin: 0 0 2mm; }
.sw { display: inline-block; width: 3mm; height: 3mm; vertical-align: middle; margin: 0 1mm 0 3mm; }
.grade { display: inline-block; min-width: 6mm; text-align: center; border-radius: 1mm;
         color: #fff; font-weight: 700; padding: 0 1mm; }
.grade-A { background: #1e7b45; } .grade-B { background: #2f7fb0; }
.grade-C { background: #c77d14; } .grade-D { background: #b03a2e; }
.kpi .grade { font-size: 12pt; vertical-align: 3pt; padding: 0 2mm; }
.note { font-size: 8.5pt; color: #3d4f5c; }
.comments li { margin: 0 0 1mm; }
.section { break-inside: avoid; }
@media screen { body { padding: 10mm; } }
"""


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], total_first: bool = False) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="total"' if total_first and i == 0 else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _grade(letter: str | None) -> str:
    if not letter:
        return "\u2013"
    return f'<span class="grade grade-{escape(letter)}">{escape(letter)}</span>'


def _ikm_value(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.2f}".replace(".", ",")


def _seconds_signed(seconds: float | None) -> str:
    """Minutes with a sign (punctuality: negative is early)."""
    return "\u2013" if seconds is None else f"{seconds / 60:+.1f}".replace(".", ",")


def _online_html(online: dict[str, Any]) -> list[str]:
    """The antrian online section: bookings by state per service, and the waits of booked
    citizens against walk-ins'. Nothing when no service takes bookings or had any."""
    if not online["services"]:
        return []
    head = [
        _bi("Layanan", "Service"),
        _bi("Booking", "Bookings"),
        _bi("Check-in", "Checked in"),
        _bi("Terlambat", "Late"),
        _bi("Batal", "Cancelled"),
        _bi("Tidak datang", "Missed"),
        _bi("% hadir", "Show rate"),
        _bi("Ketepatan p50", "Punctuality p50") + " (min)",
        _bi("% dalam standar: booking / langsung", "% within target: booked / walk-in"),
        _bi("Tunggu p50: booking / langsung", "Wait p50: booked / walk-in") + " (min)",
    ]

    def cells(name: str, part: dict[str, Any]) -> list[str]:
        b, w = part["bookings"], part["waits"]
        return [
            name,
            str(b["made"]),
            str(b["checked_in"]),
            str(b["late"]),
            str(b["cancelled"]),
            str(b["missed"]),
            _pct(b["show_rate"]),
            _seconds_signed(b["punctuality"]["p50"]),
            f"{_pct(w[BOOKED]['within_target']['share'])} / "
            f"{_pct(w[WALK_IN]['within_target']['share'])}",
            f"{_minutes(w[BOOKED]['wait']['p50'])} / {_minutes(w[WALK_IN]['wait']['p50'])}",
        ]

    rows = [cells("<b>Total</b>", online["totals"])] + [
        cells(f"{escape(s['name']['id'])} <span class='en'>{escape(s['name']['en'])}</span>", s)
        for s in online["services"]
    ]
    return [
        f"<div class='section'><h2>{_bi('Antrian online', 'Bookings and remote joins')}</h2>",
        _table(head, rows, total_first=True),
        "<p class='note'>"
        + _bi(
            "Booking dihitung menurut hari slotnya. % hadir = check-in \u00f7 (check-in +"
            " tidak datang). Ketepatan = check-in \u2212 awal slot (negatif: lebih awal)."
            " Tunggu booking dihitung sejak yang lebih akhir dari check-in dan awal slot;"
            " booking yang check-in terlambat dilayani sebagai datang langsung.",
            "Bookings are counted by their slot's day. Show rate = checked in \u00f7"
            " (checked in + missed). Punctuality = check-in \u2212 slot start (negative:"
            " early). A booked wait runs from the later of check-in and slot start; a booking"
            " checked in late is served as a walk-in.",
        )
        + "</p></div>",
        *_reminders_html(online),
    ]


def _reminders_html(online: dict[str, Any]) -> list[str]:
    """The reminders of the antrian online section: notices delivered to the webhook and
    given up, in all and per kind, for the site and each service."""
    head = [
        _bi("Layanan", "Service"),
        _bi("Terkirim", "Delivered"),
        _bi("Gagal", "Failed"),
        *(
            _bi(id_word.capitalize(), en_word.capitalize())
            for _, id_word, en_word in _REMINDER_KINDS
        ),
    ]

    def cells(name: str, reminders: dict[str, Any]) -> list[str]:
        by_kind = reminders["by_kind"]
        return [
            name,
            str(reminders["delivered"]),
            str(reminders["failed"]),
            *(
                f"{by_kind[kind]['delivered']} / {by_kind[kind]['failed']}"
                for kind, _, _ in _REMINDER_KINDS
            ),
        ]

    rows = [cells("<b>Total</b>", online["totals"]["reminders"])] + [
        cells(
            f"{escape(s['name']['id'])} <span class='en'>{escape(s['name']['en'])}</span>",
            s["reminders"],
        )
        for s in online["services"]
    ]
    return [
        f"<div class='section'><h2>{_bi('Pengingat', 'Reminders')}</h2>",
        _table(head, rows, total_first=True),
        "<p class='note'>"
        + _bi(
            "Pemberitahuan ke nomor telepon warga, per jenis: terkirim / gagal. Terkirim:"
            " penerima webhook menjawab 2xx; gagal: ditinggalkan setelah percobaan"
            " terakhir. Dihitung menurut hari layanan saat hasilnya diketahui; percobaan"
            " ulang tidak dihitung.",
            "Notices to citizens' phones, per kind: delivered / failed. Delivered: the"
            " webhook's receiver answered 2xx; failed: given up after the last attempt."
            " Counted by the service day the outcome was known on; retried attempts are"
            " not counted.",
        )
        + "</p></div>",
    ]


_IKM_RULE_ID = (
    "IKM = rata-rata nilai unsur \u00d7 25; mutu A 88,31\u2013100, B 76,61\u201388,30,"
    " C 65,00\u201376,60, D 25,00\u201364,99."
)
_IKM_RULE_EN = "IKM = mean of the element means \u00d7 25."


def to_html(report: dict[str, Any]) -> str:
    site = report["site"]
    totals = report["totals"]
    ikm = report["ikm"]
    title = f"Laporan Pelayanan — {site['name']}"
    out: list[str] = [
        "<!doctype html><html lang='id'><head><meta charset='utf-8'>",
        f"<title>{escape(title)} ({escape(report['from'])} \u2013 {escape(report['to'])})</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Laporan Pelayanan dan Kepuasan Masyarakat <span class='en'>Service and "
        "satisfaction report</span></h1>",
        f"<p class='meta'><b>{escape(site['name'])}</b> ({escape(site['id'])}) · "
        f"{escape(report['from'])} \u2013 {escape(report['to'])} ({report['days']} hari/days, "
        f"{escape(site['timezone'])}) · dibuat/generated {escape(_local_time(report))}"
        + (
            " · <b>hari ini belum selesai / today is not over</b>"
            if report["partial_today"]
            else ""
        )
        + "</p>",
    ]
    site_ikm = ikm["site"]
    kpis = [
        (_bi("Tiket diambil", "Tickets issued"), str(totals["issued"])),
        (_bi("Dilayani", "Served"), str(totals["served"])),
        (_bi("Dalam standar", "Within target"), _pct(totals["within_target"]["share"])),
        (_bi("Tunggu p90 (menit)", "Wait p90 (min)"), _minutes(totals["wait"]["p90"])),
        (_bi("Tunggu rata-rata (menit)", "Mean wait (min)"), _minutes(totals["wait"]["mean"])),
        (_bi("Layanan p50 (menit)", "Service p50 (min)"), _minutes(totals["service"]["p50"])),
        (
            _bi("IKM", "Satisfaction index"),
            f"{_ikm_value(site_ikm['ikm'])} {_grade(site_ikm['grade'])}",
        ),
        (_bi("Responden SKM", "SKM respondents"), str(site_ikm["respondents"])),
    ]
    out.append(
        "<div class='kpis'>"
        + "".join(f"<div class='kpi'><b>{v}</b><span>{k}</span></div>" for k, v in kpis)
        + "</div>"
    )

    # Per agency, service and counter.
    head = [
        _bi("Nama", "Name"),
        _bi("Diambil", "Issued"),
        _bi("Dilayani", "Served"),
        _bi("Tidak hadir", "No-show"),
        _bi("Batal", "Cancelled"),
        _bi("Dialihkan", "Transferred"),
        _bi("Kedaluwarsa", "Expired"),
        _bi("% dalam standar", "% within target"),
        _bi("Tunggu p50/p90/maks", "Wait p50/p90/max") + " (min)",
        _bi("Layanan p50/p90", "Service p50/p90") + " (min)",
    ]

    counts = ("issued", "served", "no_show", "cancelled", "transferred", "expired")

    def figure_cells(name: str, f: dict[str, Any]) -> list[str]:
        w, s = f["wait"], f["service"]
        return [
            name,
            *(str(f[k]) for k in counts),
            _pct(f["within_target"]["share"]),
            f"{_minutes(w['p50'])} / {_minutes(w['p90'])} / {_minutes(w['max'])}",
            f"{_minutes(s['p50'])} / {_minutes(s['p90'])}",
        ]

    out.append(f"<div class='section'><h2>{_bi('Per instansi', 'By agency')}</h2>")
    out.append(
        _table(
            head,
            [figure_cells("<b>Total</b>", totals)]
            + [figure_cells(escape(a["name"]), a) for a in report["agencies"] if a["visits"]],
            total_first=True,
        )
        + "</div>"
    )
    out.append(f"<h2>{_bi('Per layanan', 'By service')}</h2>")
    svc_head = [*head]
    svc_head.insert(1, _bi("Standar", "Target") + " (min)")
    svc_rows = []
    for s in report["services"]:
        if not s["visits"]:
            continue
        cells = figure_cells(
            f"{escape(s['name']['id'])} <span class='en'>{escape(s['name']['en'])}</span>", s
        )
        cells.insert(1, _minutes(s["target_wait_seconds"]))
        svc_rows.append(cells)
    out.append(_table(svc_head, svc_rows))
    # Chart: p90 wait against the target per service.
    served = [s for s in report["services"] if s["wait"]["count"]]
    if served:
        out.append(
            f"<div class='section'><h2>{_bi('Tunggu p90 per layanan', 'Wait p90 by service')}"
            "</h2><p class='legend'><span class='sw' style='background:#2f7fb0'></span>"
            f"{_bi('tunggu p90 (menit)', 'wait p90 (min)')}<span class='sw' "
            "style='background:#d9822b'></span>"
            f"{_bi('standar (menit)', 'target (min)')}</p>"
        )
        out.append(
            _bar_chart(
                [s["code"] for s in served],
                [(s["wait"]["p90"] or 0) / 60 for s in served],
                title="Wait p90 by service (minutes)",
                unit="min",
                marks=[
                    None if s["target_wait_seconds"] is None else s["target_wait_seconds"] / 60
                    for s in served
                ],
            )
            + "</div>"
        )

    if totals["estimate"]["count"]:
        out.append(
            "<div class='section'><h2>"
            + _bi("Akurasi estimasi waktu tunggu", "Accuracy of the estimated wait")
            + "</h2><p class='note'>"
            + _bi(
                "Estimasi yang diberikan saat mengambil nomor dibandingkan dengan waktu tunggu"
                " sebenarnya. Bias positif: warga menunggu lebih lama dari estimasi.",
                "The wait told at issue against the actual wait. Positive bias: citizens"
                " waited longer than told.",
            )
            + "</p>"
        )

        def estimate_cells(name: str, f: dict[str, Any]) -> list[str]:
            e = f["estimate"]
            bias = "\u2013" if e["bias"] is None else f"{e['bias'] / 60:+.1f}".replace(".", ",")
            return [name, str(e["count"]), _minutes(e["mae"]), bias]

        out.append(
            _table(
                [
                    _bi("Nama", "Name"),
                    _bi("Jumlah", "Count"),
                    _bi("Galat rata-rata", "Mean abs. error") + " (min)",
                    "Bias (min)",
                ],
                [estimate_cells("<b>Total</b>", totals)]
                + [
                    estimate_cells(escape(s["name"]["id"]), s)
                    for s in report["services"]
                    if s["estimate"]["count"]
                ],
                total_first=True,
            )
            + "</div>"
        )

    out.extend(_online_html(report["online"]))

    out.append(f"<div class='section'><h2>{_bi('Per loket', 'By counter')}</h2>")
    ctr_head = [
        _bi("Loket", "Counter"),
        _bi("Dilayani", "Served"),
        _bi("Buka", "Open") + " (j:m)",
        _bi("Sibuk", "Busy") + " (j:m)",
        _bi("Pemanfaatan", "Utilisation"),
        _bi("Menganggur saat ada antrian", "Idle while queue") + " (j:m)",
        _bi("Layanan p50/p90", "Service p50/p90") + " (min)",
    ]
    ctr_rows = [
        [
            escape(c["name"]),
            str(c["served"]),
            _hm(c["open_seconds"]),
            _hm(c["busy_seconds"]),
            _pct(c["utilisation"]),
            _hm(c["idle_while_queue_seconds"]),
            f"{_minutes(c['service']['p50'])} / {_minutes(c['service']['p90'])}",
        ]
        for c in report["counters"]
        if c["visits"] or c["open_seconds"]
    ]
    out.append(_table(ctr_head, ctr_rows) + "</div>")

    if report["hours"]:
        hours = report["hours"]
        out.append(
            f"<div class='section'><h2>{_bi('Jam tersibuk', 'Busiest hours')} "
            f"<span class='en'>({escape(site['timezone'])})</span></h2>"
            "<p class='legend'><span class='sw' style='background:#2f7fb0'></span>"
            f"{_bi('kedatangan', 'arrivals')}<span class='sw' style='background:#d9822b'>"
            f"</span>{_bi('tunggu rata-rata (menit)', 'mean wait (min)')}</p>"
        )
        out.append(
            _bar_chart(
                [f"{h['hour']:02d}" for h in hours],
                [float(h["arrivals"]) for h in hours],
                title="Arrivals and mean wait per hour",
                unit="",
                line=[None if h["wait_mean"] is None else h["wait_mean"] / 60 for h in hours],
                line_label="menit/min",
            )
            + "</div>"
        )
    if len(report["daily"]) > 1:
        daily = report["daily"]
        out.append(
            f"<div class='section'><h2>{_bi('Per hari', 'By day')}</h2><p class='legend'>"
            "<span class='sw' style='background:#2f7fb0'></span>"
            f"{_bi('tiket diambil', 'tickets issued')}<span class='sw' "
            "style='background:#d9822b'></span>"
            f"{_bi('% dalam standar', '% within target')}</p>"
        )
        out.append(
            _bar_chart(
                [d["day"][5:] for d in daily],
                [float(d["issued"]) for d in daily],
                title="Tickets issued and share within target per day",
                unit="",
                line=[
                    None if d["within_target_share"] is None else d["within_target_share"] * 100
                    for d in daily
                ],
                line_label="%",
                line_top=100.0,
            )
            + "</div>"
        )

    # IKM
    out.append(
        f"<div class='section'><h2>{_bi('Indeks Kepuasan Masyarakat (IKM)', 'Satisfaction index')}"
        "</h2><p class='note'>SKM PermenPANRB 14/2017: " + _bi(_IKM_RULE_ID, _IKM_RULE_EN) + "</p>"
    )
    elements = ikm["elements"]
    ikm_head = [
        _bi("Nama", "Name"),
        _bi("Responden", "Respondents"),
        *(escape(e["code"].upper()) for e in elements),
        "IKM",
        _bi("Mutu", "Grade"),
    ]

    def ikm_cells(name: str, part: dict[str, Any]) -> list[str]:
        means = part.get("element_means") or {}
        return [
            name,
            str(part["respondents"]),
            *(
                "\u2013"
                if means.get(e["code"]) is None
                else f"{means[e['code']]:.2f}".replace(".", ",")
                for e in elements
            ),
            _ikm_value(part["ikm"]),
            _grade(part["grade"]),
        ]

    ikm_rows = [ikm_cells("<b>Total</b>", site_ikm)] + [
        ikm_cells(escape(s["name"]["id"]), s) for s in ikm["services"] if s["respondents"]
    ]
    out.append(_table(ikm_head, ikm_rows, total_first=True))
    out.append(
        "<p class='note'>"
        + " · ".join(
            f"<b>{escape(e['code'].upper())}</b> {_bi(e['name']['id'], e['name']['en'])}"
            for e in elements
        )
        + "</p></div>"
    )
    bands = [b for b in ikm["by_wait_band"] if b["respondents"] or b["quick"]["respondents"]]
    if bands:
        out.append(
            "<div class='section'><h2>"
            + _bi("Kepuasan menurut lama tunggu", "Satisfaction by wait")
            + "</h2>"
        )
        out.append(
            _table(
                [
                    _bi("Lama tunggu", "Wait"),
                    _bi("Responden", "Respondents"),
                    _bi("Tunggu rata-rata (menit)", "Mean wait (min)"),
                    "IKM",
                    _bi("Mutu", "Grade"),
                    _bi("Indeks cepat", "Quick index"),
                ],
                [
                    [
                        _bi(b["name"]["id"], b["name"]["en"]),
                        str(b["respondents"]),
                        _minutes(b["wait_mean"]),
                        _ikm_value(b["ikm"]),
                        _grade(b["grade"]),
                        _ikm_value(b["quick"]["index"]),
                    ]
                    for b in bands
                ],
            )
        )
        scored = [b for b in bands if b["ikm"] is not None]
        if scored:
            out.append(
                _bar_chart(
                    [b["name"]["id"] for b in scored],
                    [float(b["ikm"]) for b in scored],
                    title="IKM by wait band",
                    unit="IKM",
                    reference=76.61,
                    height=150,
                )
            )
        out.append("</div>")
    if site_ikm["quick"]["respondents"]:
        out.append(
            "<p class='note'>"
            + _bi(
                f"Penilaian cepat (satu sentuhan): {site_ikm['quick']['respondents']} responden,"
                f" indeks {_ikm_value(site_ikm['quick']['index'])} (bukan IKM SKM).",
                "Quick one-tap ratings are shown apart; they are not an SKM IKM.",
            )
            + "</p>"
        )
    if report["comments"]:
        out.append(f"<h2>{_bi('Saran dan komentar', 'Comments')}</h2><ul class='comments'>")
        for c in report["comments"]:
            out.append(
                f"<li><span class='note'>{escape(c['day'])} · {escape(c['service'])}</span> "
                f"{escape(c['text'])}</li>"
            )
        out.append("</ul>")
    out.append(
        "<p class='note'>"
        + _bi(
            "Definisi: tunggu = panggilan pertama \u2212 ambil nomor (per layanan bila"
            " dialihkan); jalan = mulai \u2212 panggilan terakhir; layanan = selesai \u2212"
            " mulai; % dalam standar = dipanggil dengan tunggu ≤ standar waktu tunggu"
            " layanan \u00f7 (dipanggil + belum dipanggil yang sudah menunggu melewati"
            " standar: kedaluwarsa, atau masih menunggu saat laporan dibuat); yang batal"
            " tidak dihitung. Kedaluwarsa = masih menunggu, dipanggil atau dilayani saat"
            " hari layanan berakhir (tengah malam). Persentil: interpolasi linear.",
            "Wait = first call \u2212 issue; walk = start \u2212 last call; service ="
            " finish \u2212 start; % within target = called with a wait ≤ the service's"
            " target \u00f7 (called + never called but waited past the target: expired, or"
            " still waiting when the report was made); cancelled visits are not counted."
            " Expired = still waiting, called or being served when the service day ended"
            " (midnight). Percentiles interpolate linearly.",
        )
        + "</p></body></html>"
    )
    return "".join(out)
