"""The community satisfaction index (IKM, *Indeks Kepuasan Masyarakat*) of PermenPANRB
14/2017 from SKM survey answers. Pure: numbers in, numbers out.

Every respondent scores the nine elements (*unsur*) U1..U9 from 1 to 4. Per element the
mean over the respondents who answered is taken; the regulation weighs every element
equally (1/9), so the index is the mean of the element means (the *nilai persepsi*, 1..4)
times 25, giving 25..100. It is rounded to two decimals (half up) before it is graded,
because the grade bands are published with two decimals:

    A  88.31 - 100.00   Sangat baik (very good)
    B  76.61 -  88.30   Baik (good)
    C  65.00 -  76.60   Kurang baik (poor)
    D  25.00 -  64.99   Tidak baik (very poor)

The quick one-tap rating (1..4) is not an SKM: it is reported next to the IKM as a
"quick satisfaction index" on the same 25..100 scale, never mixed into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from queue_service.errors import AntrianError

ELEMENTS = 9
LOW, HIGH = 1, 4

# (grade, lowest index of the grade, name in Bahasa Indonesia, name in English)
GRADES: tuple[tuple[str, Decimal, str, str], ...] = (
    ("A", Decimal("88.31"), "Sangat baik", "Very good"),
    ("B", Decimal("76.61"), "Baik", "Good"),
    ("C", Decimal("65.00"), "Kurang baik", "Poor"),
    ("D", Decimal("25.00"), "Tidak baik", "Very poor"),
)

# The SKM elements (unsur) in the order of the regulation's questionnaire: code, name
# (Bahasa Indonesia), name (English).
ELEMENT_NAMES: tuple[tuple[str, str, str], ...] = (
    ("u1", "Persyaratan", "Requirements"),
    ("u2", "Sistem, mekanisme, dan prosedur", "Procedure"),
    ("u3", "Waktu penyelesaian", "Completion time"),
    ("u4", "Biaya/tarif", "Cost/fee"),
    ("u5", "Produk spesifikasi jenis pelayanan", "Service product"),
    ("u6", "Kompetensi pelaksana", "Staff competence"),
    ("u7", "Perilaku pelaksana", "Staff conduct"),
    ("u8", "Sarana dan prasarana", "Facilities"),
    ("u9", "Penanganan pengaduan, saran dan masukan", "Complaint handling"),
)


class InvalidAnswers(AntrianError, ValueError, code="invalid_answers", status=400):
    """Answers that are not nine scores from 1 to 4."""


def check_scores(scores: Sequence[int]) -> None:
    if len(scores) != ELEMENTS:
        raise InvalidAnswers(f"expected {ELEMENTS} scores, got {len(scores)}")
    for i, score in enumerate(scores, 1):
        if isinstance(score, bool) or not isinstance(score, int) or not LOW <= score <= HIGH:
            raise InvalidAnswers(f"u{i} must be an integer from {LOW} to {HIGH}")


def round2(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def grade(index: float | Decimal) -> str | None:
    """The grade letter of an index (rounded to two decimals first); None below 25."""
    value = round2(index)
    for letter, lowest, _, _ in GRADES:
        if value >= lowest:
            return letter
    return None


def grade_names(letter: str | None) -> tuple[str, str]:
    for code, _, name_id, name_en in GRADES:
        if code == letter:
            return name_id, name_en
    return "", ""


@dataclass(frozen=True, slots=True)
class Ikm:
    respondents: int
    element_means: tuple[float, ...]  # nilai persepsi per element, 1..4
    perception: float  # mean of the element means, 1..4
    index: float  # perception x 25, rounded to 2 decimals
    grade: str | None

    def as_dict(self) -> dict[str, object]:
        name_id, name_en = grade_names(self.grade)
        return {
            "respondents": self.respondents,
            "element_means": {
                code: round(mean, 4)
                for (code, _, _), mean in zip(ELEMENT_NAMES, self.element_means, strict=True)
            },
            "perception": round(self.perception, 4),
            "ikm": self.index,
            "grade": self.grade,
            "grade_name": {"id": name_id, "en": name_en},
        }


def from_sums(sums: Sequence[float], respondents: int) -> Ikm | None:
    """The IKM from each element's sum of scores over `respondents` complete answers."""
    if respondents <= 0:
        return None
    if len(sums) != ELEMENTS:
        raise InvalidAnswers(f"expected {ELEMENTS} element sums, got {len(sums)}")
    means = tuple(s / respondents for s in sums)
    return from_means(means, respondents)


def from_means(means: Sequence[float], respondents: int) -> Ikm | None:
    if respondents <= 0:
        return None
    perception = sum(means) / len(means)
    index = round2(perception * 25)
    return Ikm(respondents, tuple(means), perception, float(index), grade(index))


def from_responses(responses: Iterable[Sequence[int]]) -> Ikm | None:
    """The IKM of complete SKM responses (nine scores each); None without any."""
    sums = [0] * ELEMENTS
    n = 0
    for scores in responses:
        check_scores(scores)
        for i, score in enumerate(scores):
            sums[i] += score
        n += 1
    return from_sums(sums, n)


def quick_index(rating_sum: float, respondents: int) -> float | None:
    """The quick one-tap rating's mean x 25 (25..100), not an SKM IKM; None without any."""
    if respondents <= 0:
        return None
    return float(round2(rating_sum / respondents * 25))


# Waits relative to the service standard, for "satisfaction by wait".
WAIT_BANDS: tuple[tuple[str, str, str], ...] = (
    ("within", "Dalam standar waktu tunggu", "Within the target wait"),
    ("up_to_2x", "Hingga 2x standar", "Up to 2x the target"),
    ("over_2x", "Lebih dari 2x standar", "Over 2x the target"),
    ("unknown", "Tidak diketahui", "Unknown"),
)


def wait_band(wait_seconds: float | None, target_seconds: float | None) -> str:
    if wait_seconds is None or not target_seconds:
        return "unknown"
    if wait_seconds <= target_seconds:
        return "within"
    if wait_seconds <= 2 * target_seconds:
        return "up_to_2x"
    return "over_2x"
