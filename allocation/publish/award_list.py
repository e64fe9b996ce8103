"""The public award list: awardees only, business numbers masked, formula cells neutralised;
written as CSV (UTF-8 with BOM), Parquet, XLSX and HTML."""

from __future__ import annotations

from pathlib import Path

import markupsafe
import polars as pl
import xlsxwriter

from allocation import files, schema
from allocation.identifiers import mask_business_no
from allocation.publish import report

# Spreadsheet programs run cells starting with these as formulas (CSV/formula injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix text cells that a spreadsheet would treat as a formula with an apostrophe."""
    # a formula character first, possibly behind spaces or invisible characters ("\u200b=1+7")
    risky = ("^[\\s\\p{Cc}\\p{Cf}]*[" + "".join("\\" + c if c in "+-" else c for c in FORMULA_PREFIXES)
             + "]")
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(risky)).then("'" + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, dtype in frame.schema.items() if dtype == pl.String
    )


def public_award_list(out_dir: Path) -> pl.DataFrame:
    """Awardees only, with masked business numbers and hours per GPU type."""
    outcomes = (pl.scan_parquet(out_dir / files.OUTCOMES_PARQUET)    # awardees only, never all rows
                .filter(pl.col("status") == schema.STATUS_AWARDED)
                .select("application_id", "company_name", "business_no", "region", "award_fraction",
                        "awarded_krw", "copay_krw").collect())
    awards = pl.read_parquet(out_dir / files.AWARDS_PARQUET)
    apps = pl.read_parquet(out_dir / files.INTAKE / "applications.parquet",
                           columns=["application_id", "project_title"])
    if schema.CAPACITY_MONTH in awards.columns:   # awards per month: the list shows hours per type
        awards = awards.group_by("application_id", "gpu_type").agg(pl.col("gpu_hours").sum())
    hours = awards.pivot(on="gpu_type", index="application_id", values="gpu_hours",
                         sort_columns=True)
    hours = hours.rename({c: f"gpu_hours_{c}" for c in hours.columns if c != "application_id"})
    listed = (
        outcomes.join(apps.unique("application_id", keep="first"), on="application_id", how="left")
        .join(hours, on="application_id", how="left")
        .with_columns(business_no=pl.col("business_no").map_elements(mask_business_no,
                                                                     return_dtype=pl.String))
        .sort("application_id")
    )
    gpu_cols = sorted(c for c in listed.columns if c.startswith("gpu_hours_"))
    return neutralise(listed.select(
        "application_id", "company_name", "business_no", "region", "project_title",
        *gpu_cols, "award_fraction", "awarded_krw", "copay_krw",
    ).with_columns(pl.col(gpu_cols).fill_null(0)))


_LABELS = {"application_id": "접수번호 / ID", "company_name": "기업명 / company",
           "business_no": "사업자등록번호 / business no.", "region": "지역 / region",
           "project_title": "과제명 / project", "award_fraction": "지원 비율 / share",
           "awarded_krw": "지원금 / awarded (KRW)", "copay_krw": "자부담 / co-payment (KRW)"}


PAGE_ROWS = 500            # awardees per HTML page: <= 1.3 MB even with every text at its intake cap
PAGES_DIR = "awards"       # awards/id-<k>.html (by application id), awards/co-<k>.html (by company)


def _columns(frame: pl.DataFrame) -> list[dict]:
    columns = []
    for name, dtype in frame.schema.items():
        label = _LABELS.get(name) or (f"{name.removeprefix('gpu_hours_')} GPU-h"
                                      if name.startswith("gpu_hours_") else name)
        columns.append({"name": name, "label": label, "num": dtype.is_numeric(),
                        "wrap": name == "project_title"})
    return columns


def _cell(name, value):
    if value is None:
        return ""
    if name == "award_fraction":
        return f"{value:.0%}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def html_award_list(frame: pl.DataFrame, title: str, round_name: str, version: int, *,
                    nav: dict | None = None, totals_of: pl.DataFrame | None = None) -> str:
    """One page of the list (all of it when short); nav: links of a paged list; totals_of: the
    whole list (a page's footer shows the round's totals)."""
    columns = _columns(frame)
    whole = frame if totals_of is None else totals_of
    # rows rendered here (escaped cell by cell), not by a template loop: 300k awardees in seconds
    classes = [' class="num"' if c["num"] else (' class="wrap"' if c["wrap"] else "") for c in columns]
    names = [c["name"] for c in columns]
    rows = markupsafe.Markup("\n".join(
        "      <tr>" + "".join(f"<td{k}>{markupsafe.escape(_cell(n, v))}</td>"
                             for k, n, v in zip(classes, names, row)) + "</tr>"
        for row in frame.iter_rows()))
    totals = {c["name"]: f"{whole[c['name']].sum():,}" for c in columns
              if c["name"] in ("awarded_krw", "copay_krw") or c["name"].startswith("gpu_hours_")}
    totals["application_id"] = f"합계 / total: {whole.height}"
    return report.render("awards.html.j2", title=title, round_name=round_name, version=version,
                         columns=columns, rows=rows, totals=totals, nav=nav or {})


def _paged(frame: pl.DataFrame, key: str, prefix: str) -> list[dict]:
    """Pages of PAGE_ROWS rows in `key` order: file name, first and last key, the rows."""
    ordered = frame.sort(key, "application_id", nulls_last=True)
    pages = []
    for k, start in enumerate(range(0, ordered.height, PAGE_ROWS), 1):
        part = ordered.slice(start, PAGE_ROWS)
        pages.append({"file": f"{PAGES_DIR}/{prefix}-{k:04d}.html", "first": str(part[key][0] or ""),
                      "last": str(part[key][-1] or ""), "rows": part})
    return pages


def write_html_pages(awards: pl.DataFrame, target: Path, title: str, round_name: str, version: int) -> None:
    """awards_public.html: the whole list when it has at most PAGE_ROWS awardees; otherwise a
    landing page with two indexes — pages by application id and pages by company name, each
    link showing the first and last key on its page — and the pages themselves under awards/.
    No page holds more than PAGE_ROWS rows, and nothing needs a script."""
    if awards.height <= PAGE_ROWS:
        (target / files.AWARDS_PUBLIC_HTML).write_text(
            html_award_list(awards, title, round_name, version), encoding="utf-8")
        return
    (target / PAGES_DIR).mkdir()
    indexes = {"id": _paged(awards, "application_id", "id"), "co": _paged(awards, "company_name", "co")}
    for kind, pages in indexes.items():
        for k, page in enumerate(pages):
            nav = {"up": "../" + files.AWARDS_PUBLIC_HTML, "kind": kind,
                   "prev": "../" + pages[k - 1]["file"] if k else None,
                   "next": "../" + pages[k + 1]["file"] if k + 1 < len(pages) else None,
                   "page": k + 1, "pages": len(pages), "first": page["first"], "last": page["last"]}
            (target / page["file"]).write_text(
                html_award_list(page.pop("rows"), title, round_name, version, nav=nav, totals_of=awards),
                encoding="utf-8")
    (target / files.AWARDS_PUBLIC_HTML).write_text(report.render(
        "awards_index.html.j2", title=title, round_name=round_name, version=version,
        count=awards.height, page_rows=PAGE_ROWS, indexes=indexes,
        awarded_krw=int(awards["awarded_krw"].sum())), encoding="utf-8")


def write_xlsx(frame: pl.DataFrame, path: Path) -> None:
    """One sheet: a frozen header row, then the rows, streamed in constant memory (xlsxwriter
    writes each row as it goes: 300k awardees need no more memory than 3). Text is always a
    text cell (never a formula, number or link); column widths from the longest value."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_urls": False,
                                               "strings_to_formulas": False, "strings_to_numbers": False})
    workbook.set_properties({"created": files.XLSX_CREATED, "title": "Compute voucher awards"})
    try:
        sheet = workbook.add_worksheet("awards")
        bold = workbook.add_format({"bold": True})
        formats = {name: workbook.add_format({"num_format": "0%" if name == "award_fraction" else "#,##0"})
                   for name, dtype in frame.schema.items() if dtype.is_numeric()}
        widths = frame.select(pl.col(c).cast(pl.String).str.len_chars().max().fill_null(0)
                              for c in frame.columns).row(0) if frame.height else [0] * frame.width
        for c, (name, width) in enumerate(zip(frame.columns, widths)):
            sheet.set_column(c, c, min(max(int(width), len(name)) + 2, 60))
        sheet.freeze_panes(1, 0)
        sheet.write_row(0, 0, frame.columns, bold)
        kinds = [(c, name, formats.get(name)) for c, name in enumerate(frame.columns)]
        for r, row in enumerate(frame.iter_rows(), 1):
            for (c, name, fmt), value in zip(kinds, row):
                if value is None:
                    continue
                if fmt is None:
                    sheet.write_string(r, c, str(value))
                else:
                    sheet.write_number(r, c, value, fmt)
    finally:
        workbook.close()


def write_award_list(out_dir: Path, target: Path, round_id: str, round_name: str, version: int) -> pl.DataFrame:
    """awards_public.{csv,parquet,xlsx,html} into target; returns the list."""
    awards = public_award_list(out_dir)
    awards.write_csv(target / files.AWARDS_PUBLIC_CSV, include_bom=True)
    awards.write_parquet(target / files.AWARDS_PUBLIC_PARQUET, statistics=False)
    write_xlsx(awards, target / files.AWARDS_PUBLIC_XLSX)
    title = f"Compute voucher awards — round {round_id}"
    write_html_pages(awards, target, title, round_name, version)
    return awards
