"""A long public award list is paged: no HTML file over 2 MB, any awardee found from the HTML."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from allocation.publish import award_list

MB2 = 2 * 1024 * 1024


def _awardees(n: int) -> pl.DataFrame:
    """n awardees with every text at its intake cap (title 500, company 200 Hangul characters)."""
    return pl.DataFrame({
        "application_id": [f"R9-{i:06d}" for i in range(n)],
        "company_name": [f"{'가' * 190}{i:06d}" for i in range(n)][::-1],
        "business_no": ["124-81-*****"] * n, "region": ["Busan"] * n,
        "project_title": ["과" * 500] * n, "gpu_hours_H100": list(range(n)),
        "award_fraction": [1.0] * n, "awarded_krw": [1_000_000] * n, "copay_krw": [250_000] * n})


def _links(html: str) -> list[tuple[str, str, str]]:
    return re.findall(r'<li><a href="([^"]+)">([^<]*) … ([^<]*)</a></li>', html)


def test_long_list_is_paged_and_searchable_by_id_and_company(tmp_path: Path):
    n = 1_234
    awards = _awardees(n)
    award_list.write_html_pages(awards, tmp_path, "Awards", "round", 1)
    landing = (tmp_path / "awards_public.html").read_text(encoding="utf-8")
    sizes = {p: p.stat().st_size for p in tmp_path.rglob("*.html")}
    assert max(sizes.values()) < MB2, max(sizes.values())
    links = _links(landing)
    by_id = [link for link in links if "/id-" in link[0]]
    by_co = [link for link in links if "/co-" in link[0]]
    assert len(by_id) == len(by_co) == -(-n // award_list.PAGE_ROWS) == 3
    for rows in (by_id, by_co):
        total = 0
        for href, _, _ in rows:
            total += (tmp_path / href).read_text(encoding="utf-8").count("<tr><td")
        assert total == n                                     # every awardee on exactly one page of each index

    def find(rows, key: str) -> str:
        """What a reader does: pick the page whose range holds the key, open only that page."""
        href = next(h for h, first, last in rows if first <= key <= last)
        return (tmp_path / href).read_text(encoding="utf-8")

    assert "R9-000777" in find(by_id, "R9-000777")
    company = awards.filter(pl.col("application_id") == "R9-000042")["company_name"][0]
    page = find(by_co, company)
    assert company in page and "R9-000042" in page
    # each page shows the round's totals and links back to the index
    assert f"합계 / total: {n}" in page and "../awards_public.html" in page


def test_short_list_stays_one_page(tmp_path: Path):
    award_list.write_html_pages(_awardees(10), tmp_path, "Awards", "round", 1)
    assert not (tmp_path / "awards").exists()
    assert (tmp_path / "awards_public.html").read_text(encoding="utf-8").count("<tr><td") == 10
