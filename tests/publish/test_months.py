"""GPU capacity by month in the public pages: a full month is named in the reason label, the
report's heat map shows the share used per type and month."""

from allocation.publish.labels import reason_label
from allocation.publish.report import month_heat


def test_a_full_month_is_named_in_the_reason_label():
    assert reason_label("capacity_H100@2026-05_exhausted") == "H100 GPU 2026-05 사용 시간 소진 / H100 in 2026-05 is full"
    assert reason_label("capacity_H100_exhausted") == "H100 GPU 사용 시간 소진 / H100 GPU-hours ran out"


def test_heat_map_cells_per_type_and_month():
    assert month_heat(None) is None
    heat = month_heat({"H100": {"2026-05": {"awarded": 100, "capacity": 100, "utilisation": 1.0},
                                "2026-06": {"awarded": 0, "capacity": 0, "utilisation": None}}})
    assert heat["months"] == ["2026-05", "2026-06"]
    full, empty = heat["rows"][0]["cells"]
    assert full["full"] and full["title"] == "H100 2026-05: 100 / 100 h" and full["alpha"] == 0.85
    assert not empty["full"] and empty["alpha"] == 0.0


def test_the_applicant_page_names_the_full_month_in_words():
    from allocation.publish.lookup import explain
    by_month = explain({"reason": "capacity_H100@2026-05_exhausted", "status": "not_selected"}, 60.0)
    assert "All H100 GPU-hours on offer in 2026-05 went to applications with higher scores." in by_month["en"]
    assert "H100 GPU 2026-05 사용 시간" in by_month["ko"] and "@" not in by_month["en"] + by_month["ko"]
    single = explain({"reason": "capacity_H100_exhausted", "status": "not_selected"}, 60.0)
    assert "All H100 GPU-hours on offer went to applications with higher scores." in single["en"]
