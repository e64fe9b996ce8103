"""Applicant lookup without a server: one encrypted file per application in ``r/``.

Every application with an id and a receipt code gets a file ``r/<name>.json``. Nobody can
tell from the public folder whose file is whose, nor which status it holds:

* ``master = PBKDF2-HMAC-SHA256(password=code, salt=round_salt ‖ round_id ‖ 0x00 ‖ application_id,
  iterations)`` — 32 bytes. ``round_salt`` is 16 random bytes per published version, stored in
  the public ``lookup.json`` with the iteration count;
* ``name = hex(HKDF-SHA256(master, info=NAME_INFO))`` and ``key = HKDF-SHA256(master,
  info=KEY_INFO)`` (empty HKDF salt);
* the file holds ``{"v": 1, "iv": …, "ct": …}``: the outcome as JSON, padded with spaces to one
  size for the whole version, sealed with AES-256-GCM (random 96-bit nonce, the name as
  associated data). Every file of a version has the same size, awardee or not.

The static page ``index.html`` does the same with WebCrypto in the browser; ``lookup_result``
does it in Python for the officers' ``voucher lookup``. Application ids are compared after
Unicode NFKC normalisation and trimming; receipt codes also ignore case (NFKC, trimmed,
upper-cased) — the same rule in Python and in the page.

Rows that cannot have a file, or share one:

* no application id → no file (nothing to look it up by; the officer answers from the run folder);
* no usable receipt code (intake blanks a code that is too short) → no file: a code shorter than
  the minimum would be guessable, so such applicants ask the programme office;
* a duplicated id → one file per distinct (id, code): the rows are all ineligible with
  ``duplicate_application_id``, so whoever holds one of its codes reads that reason.

The salt is random per version (not derived from the round id), so nobody can start guessing
codes before a version is out, and the files of two versions cannot be linked to each other.
The price: two publications of the same result would differ in ``r/`` — which never happens,
since publishing an unchanged result is a no-op that keeps the existing version.
"""

from __future__ import annotations

import base64
import json
import math
import os
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from allocation import files, schema, text

FORMAT = "voucher-lookup/1"
# PBKDF2 work per guess. Publishing derives once per application (~0.05 s each at 300k here);
# the page derives once per lookup. Raise it freely: lookup.json carries the number.
DEFAULT_ITERATIONS = 300_000
MIN_ITERATIONS = 100_000
NAME_INFO = "voucher-lookup/1 file-name"
KEY_INFO = "voucher-lookup/1 aes-256-gcm-key"
SALT_BYTES = 16
NONCE_BYTES = 12
PAD_BLOCK = 512
MIN_CODE_LENGTH = 8          # schema: receipt_code needs at least 8 characters


def normalise_id(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


def normalise_code(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip().upper()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class LookupParams:
    round_id: str
    salt: bytes
    iterations: int

    @classmethod
    def new(cls, round_id: str, iterations: int) -> "LookupParams":
        return cls(round_id, os.urandom(SALT_BYTES), iterations)

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "round_id": self.round_id, "salt": _b64(self.salt),
            "kdf": {"name": "PBKDF2", "hash": "SHA-256", "iterations": self.iterations, "length": 32,
                    "salt": "salt ‖ utf8(round_id) ‖ 0x00 ‖ utf8(NFKC(trim(application_id)))",
                    "password": "utf8(upper(NFKC(trim(receipt_code))))"},
            "name": {"name": "HKDF", "hash": "SHA-256", "info": NAME_INFO, "encoding": "hex"},
            "key": {"name": "HKDF", "hash": "SHA-256", "info": KEY_INFO, "cipher": "AES-256-GCM",
                    "aad": "utf8(file name without .json)"},
            "path": files.LOOKUP_DIR + "/{name}.json",
        }

    @classmethod
    def from_json(cls, data: dict) -> "LookupParams":
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown lookup format {data.get('format')!r}")
        return cls(data["round_id"], base64.b64decode(data["salt"]), int(data["kdf"]["iterations"]))


def _hkdf(master: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(master)


def derive(params: LookupParams, application_id: str, code: str) -> tuple[str, bytes]:
    """(file name, AES key) for one application id and receipt code."""
    salt = (params.salt + params.round_id.encode() + b"\x00"
            + normalise_id(application_id).encode("utf-8"))
    master = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt,
                        iterations=params.iterations).derive(normalise_code(code).encode("utf-8"))
    return _hkdf(master, NAME_INFO).hex(), _hkdf(master, KEY_INFO)


def seal(name: str, key: bytes, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext, name.encode())
    return json.dumps({"v": 1, "iv": _b64(nonce), "ct": _b64(sealed)}).encode() + b"\n"


def unseal(name: str, key: bytes, blob: bytes) -> bytes | None:
    try:
        data = json.loads(blob)
        return AESGCM(key).decrypt(base64.b64decode(data["iv"]), base64.b64decode(data["ct"]),
                                   name.encode())
    except Exception:   # wrong key, tampered or malformed file: all mean "not found"
        return None


# --- What an applicant reads ------------------------------------------------------

STATUS_LABELS: dict[str, dict[str, str]] = {
    schema.STATUS_AWARDED: {"ko": "선정", "en": "Awarded"},
    schema.STATUS_WAITLISTED: {"ko": "예비 선정 (대기)", "en": "Waitlisted"},
    schema.STATUS_NOT_SELECTED: {"ko": "미선정", "en": "Not selected"},
    schema.STATUS_INELIGIBLE: {"ko": "신청 요건 미충족", "en": "Ineligible"},
}

_REASONS: dict[str, tuple[str, str]] = {
    "funded": ("신청하신 GPU 사용 시간 전액이 지원됩니다.",
               "Your full request is funded."),
    "funded_partially": ("신청하신 GPU 사용 시간의 {pct}가 지원됩니다. 예산, GPU 용량 또는 의무 배정 비율 때문에 "
                         "더 많이 지원할 수 없었습니다.",
                         "{pct} of your request is funded: the budget, GPU capacity or a quota did not "
                         "allow more."),
    "below_min_score": ("평가 점수 {score}점이 이번 공모의 최소 점수 {min_score}점에 미치지 못했습니다.",
                        "Your score {score} is below the round's minimum score {min_score}."),
    "budget_exhausted": ("사업 예산이 점수가 더 높은 신청에 모두 배정되었습니다.",
                         "The programme budget went to applications with higher scores."),
    "declined": ("지원 제안을 거절하셨으므로 지원이 취소되었습니다.",
                 "You declined the award, so it has been released."),
    "lapsed": ("기한 내에 수락 의사를 밝히지 않아 지원이 취소되었습니다.",
               "The award was not accepted by the deadline, so it has lapsed."),
    "company_cap": ("한 기업이 받을 수 있는 지원 한도에 이미 도달했습니다.",
                    "Your company has reached the per-company award cap."),
    "quota": ("지역·첫 수혜 기업 등 의무 배정 비율을 지키기 위해 선정되지 않았습니다.",
              "Funding it would have broken a minimum-share quota (such as regions outside the "
              "capital area or first-time applicants)."),
    "not_optimal": ("같은 자원으로 점수가 더 높은 신청을 지원했습니다.",
                    "Other applications gave more merit for the same resources."),
    "missing_application_id": ("신청서에 접수번호가 없습니다.",
                               "The application has no application ID."),
    "duplicate_application_id": ("같은 접수번호의 신청서가 두 건 이상 제출되어 심사에서 제외되었습니다. "
                                 "사업 담당자에게 문의하세요.",
                                 "The application ID appears on more than one application, so it could "
                                 "not be assessed. Please contact the programme office."),
    "invalid_field": ("신청서의 필수 항목이 비어 있거나 형식이 올바르지 않습니다.",
                      "A required field of the application is missing or malformed."),
    "invalid_business_no": ("사업자등록번호가 유효하지 않습니다 (검증 번호 불일치).",
                            "The business registration number is not valid (checksum)."),
    "no_request": ("GPU 사용 시간 신청 내역이 없습니다.",
                   "The application requests no GPU-hours."),
    "invalid_request": ("GPU 사용 신청 내역 중 올바르지 않은 항목이 있습니다.",
                        "A GPU request row of the application is invalid."),
    "missing_reviews": ("규정된 수의 평가위원 평가가 완료되지 않았습니다.",
                        "The panel reviews of the application are incomplete."),
    "invalid_review": ("평가 기록 중 올바르지 않은 항목이 있습니다.",
                       "A review record of the application is invalid."),
}


def explain(row: dict, min_score: float | None, nobody_funded: bool = False) -> dict[str, str]:
    """Plain-word explanation in Korean and English of one outcome row (nobody_funded: the
    round awarded nothing, so no limit "went to applications with higher scores")."""
    reason = row.get("reason") or ""
    fmt = {"pct": f"{(row.get('award_fraction') or 0):.0%}",
           "score": _fmt_score(row.get("score")), "min_score": _fmt_score(min_score)}
    if nobody_funded and (reason == "budget_exhausted" or reason.startswith("capacity_")):
        ko, en = ("이번 공모에서는 선정된 신청이 없습니다: 예산 또는 GPU 제공량이 신청의 최소 지원 단위에 미치지 못했습니다.",
                  "Nobody was funded in this round: the programme budget or the GPU-hours on offer "
                  "did not cover the smallest award level of your application.")
    elif reason.startswith("capacity_") and reason.endswith("_exhausted"):
        gpu = reason[len("capacity_"):-len("_exhausted")]
        ko, en = (f"{gpu} GPU 사용 시간이 점수가 더 높은 신청에 모두 배정되었습니다.",
                  f"All {gpu} GPU-hours on offer went to applications with higher scores.")
    else:
        ko, en = _REASONS.get(reason, ("선정 결과의 상세 사유는 사업 담당자에게 문의하세요.",
                                       "Please ask the programme office for the detailed reason."))
        ko, en = ko.format(**fmt), en.format(**fmt)
    needed = row.get("score_needed")
    if (row.get("status") in (schema.STATUS_WAITLISTED, schema.STATUS_NOT_SELECTED)
            and reason != "below_min_score" and needed is not None and math.isfinite(needed)):
        ko += f" 이번 결과 기준으로 약 {needed:.2f}점 이상이었다면 선정될 수 있었습니다."
        en += f" At this round's clearing prices a score of about {needed:.2f} would have been needed."
    if row.get("status") == schema.STATUS_AWARDED and row.get("waitlist_rank"):
        n = row["waitlist_rank"]
        ko += f" 신청의 나머지 부분에 대해서는 예비 순위 {n}번입니다."
        en += f" For the rest of your request you are number {n} on the waitlist."
    if row.get("status") == schema.STATUS_WAITLISTED and row.get("waitlist_rank"):
        n = row["waitlist_rank"]
        ko += f" 예비 순위 {n}번입니다: 선정 기업이 지원을 포기하면 순위에 따라 지원될 수 있습니다."
        en += f" You are number {n} on the waitlist: if an awardee withdraws, the waitlist is funded in order."
    return {"ko": ko, "en": en}


def _fmt_score(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:g}" if float(value).is_integer() else f"{value:.2f}"


def _clean(value):
    """JSON-safe: NaN/inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def outcome_records(out_dir: Path, round_id: str, round_name: str = "",
                    min_score: float | None = None) -> tuple[list[tuple[str, str, dict]], dict]:
    """[(application_id, receipt_code, record)] for every row that gets a file, and counts."""
    outcomes = pl.read_parquet(out_dir / files.OUTCOMES_PARQUET)
    apps = pl.read_parquet(out_dir / files.INTAKE / "applications.parquet").select(
        "source_row", "receipt_code", "project_title")
    rows = outcomes.join(apps, on="source_row", how="left").sort("source_row")
    awards = pl.read_parquet(out_dir / files.AWARDS_PARQUET)
    awarded_hours: dict[str, dict[str, int]] = {}
    for app_id, gpu, hours in awards.sort("application_id", "gpu_type").select(
            "application_id", "gpu_type", "gpu_hours").iter_rows():
        awarded_hours.setdefault(app_id, {})[gpu] = int(hours)
    requested: dict[str, dict[str, int]] = {}
    requests_path = out_dir / files.INTAKE / "requests.parquet"
    if requests_path.is_file():
        req = pl.read_parquet(requests_path).drop_nulls(["application_id", "gpu_type", "gpu_hours"])
        for app_id, gpu, hours in req.sort("application_id", "gpu_type").select(
                "application_id", "gpu_type", "gpu_hours").iter_rows():
            requested.setdefault(app_id, {})[gpu] = int(hours)
    counts = {"rows": rows.height, "files": 0, "skipped_missing_id": 0, "skipped_missing_code": 0,
              "merged_duplicate_rows": 0}
    seen: set[tuple[str, str]] = set()
    records = []
    for row in rows.iter_rows(named=True):
        app_id, code = row["application_id"], row["receipt_code"]
        if app_id is None or not normalise_id(app_id):
            counts["skipped_missing_id"] += 1
            continue
        if code is None or len(normalise_code(code)) < MIN_CODE_LENGTH:
            counts["skipped_missing_code"] += 1
            continue
        key = (normalise_id(app_id), normalise_code(code))
        if key in seen:
            counts["merged_duplicate_rows"] += 1
            continue
        seen.add(key)
        status = row["status"]
        awarded = status == schema.STATUS_AWARDED
        record = {
            "round_id": round_id, "round_name": round_name,
            "application_id": app_id, "company_name": row["company_name"],
            "project_title": row["project_title"],
            "status": status, "status_label": STATUS_LABELS.get(status, {"ko": status, "en": status}),
            "reason": row["reason"],
            "explanation": explain(row, min_score, nobody_funded=awards.is_empty()),
            "reason_detail": row["reason_detail"],
            "score": _clean(row["score"]), "rank": row["rank"],
            "waitlist_rank": row["waitlist_rank"] or None,
            "score_needed": _clean(row["score_needed"]),
            "award_fraction": _clean(row["award_fraction"]) if awarded else 0.0,
            # a duplicated id's request rows cannot be told apart: none are shown
            "gpu_hours_requested": ({} if row["reason"] == "duplicate_application_id"
                                    else requested.get(app_id, {})),
            "gpu_hours_awarded": awarded_hours.get(app_id, {}) if awarded else {},
            "cost_krw": int(row["cost_krw"] or 0) if awarded else 0,
            "awarded_krw": int(row["awarded_krw"] or 0) if awarded else 0,
            "copay_krw": int(row["copay_krw"] or 0) if awarded else 0,
        }
        records.append((app_id, code, record))
    counts["files"] = len(records)
    return records, counts


def write_lookup_files(out_dir: Path, target: Path, round_id: str, *, round_name: str = "",
                       min_score: float | None = None,
                       iterations: int = DEFAULT_ITERATIONS) -> dict:
    """Write lookup.json and r/<name>.json into target; returns counts for the manifest."""
    params = LookupParams.new(round_id, iterations)
    records, counts = outcome_records(out_dir, round_id, round_name, min_score)
    plaintexts = [json.dumps(rec, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
                  for _, _, rec in records]
    size = PAD_BLOCK * (max((len(p) for p in plaintexts), default=0) // PAD_BLOCK + 1)
    sealed: dict[str, bytes] = {}
    for (app_id, code, _), plaintext in zip(records, plaintexts):
        name, key = derive(params, app_id, code)
        if name in sealed:   # (id, code) pairs are unique, so this is a 2^-256 event
            raise RuntimeError("lookup file name collision")
        sealed[name] = seal(name, key, plaintext.ljust(size, b" "))
    results = target / files.LOOKUP_DIR
    results.mkdir()
    for name in sorted(sealed):     # written in name order: nothing follows the input order
        (results / f"{name}.json").write_bytes(sealed[name])
    (target / files.LOOKUP_JSON).write_text(json.dumps(params.to_json(), indent=2, ensure_ascii=False)
                                      + "\n", encoding="utf-8")
    return {**counts, "plaintext_bytes": size, "iterations": iterations}


# --- Lookups (officers' CLI) --------------------------------------------------------

def resolve_version_dir(published: Path) -> Path:
    """A version folder (v<N>) as is; a round folder → its latest version."""
    published = Path(published)
    if (published / files.LOOKUP_JSON).is_file():
        return published
    latest = files.latest_version_dir(published)
    if latest is None or not (latest / files.LOOKUP_JSON).is_file():
        raise FileNotFoundError(f"{published}: not a published version (no {files.LOOKUP_JSON}) "
                                f"nor a round folder with versions")
    return latest


def lookup_result(published_dir: Path, application_id: str, code: str) -> dict | None:
    """The applicant's outcome record, or None when the id/code pair matches no file."""
    version = resolve_version_dir(Path(published_dir))
    params = LookupParams.from_json(json.loads((version / files.LOOKUP_JSON).read_text(encoding="utf-8")))
    if not normalise_id(application_id) or not normalise_code(code):
        return None
    name, key = derive(params, application_id, code)
    path = version / files.LOOKUP_DIR / f"{name}.json"
    if not path.is_file():
        return None
    plaintext = unseal(name, key, path.read_bytes())
    if plaintext is None:
        return None
    return json.loads(plaintext.decode("utf-8"))


def format_result(result: dict | None) -> str:
    """Plain text for the terminal (both languages)."""
    if result is None:
        return ("조회 결과가 없습니다: 접수번호 또는 확인 코드가 올바르지 않습니다.\n"
                "Not found: the application ID or the receipt code is wrong.")
    label = result["status_label"]
    lines = [f"{result['application_id']}  {result.get('company_name') or ''}",
             f"  과제 / project: {result.get('project_title') or '-'}",
             f"  결과 / status:  {label['ko']} / {label['en']}"]
    if result["status"] == schema.STATUS_AWARDED:
        hours = ", ".join(f"{g} {h:,}" for g, h in result["gpu_hours_awarded"].items()) or "-"
        lines += [f"  GPU 시간 / GPU-hours: {hours}",
                  f"  지원금 / awarded:   ₩{result['awarded_krw']:,}",
                  f"  자부담 / co-payment: ₩{result['copay_krw']:,}"]
    if result.get("score") is not None:
        lines.append(f"  점수 / score: {_fmt_score(result['score'])}")
    lines += [f"  사유: {result['explanation']['ko']}",
              f"  Reason: {result['explanation']['en']}",
              f"  Detail ({result.get('reason')}): {result.get('reason_detail') or '-'}"]
    return "\n".join(lines)


def cli_lookup(published: Path, application_id: str, code: str, *, as_json: bool = False) -> int:
    """`voucher lookup --published DIR APPLICATION_ID --code CODE`: print, return the exit code.

    DIR is a version folder (v<N>) or a round folder (its latest version). CODE "-" reads the
    code from standard input (keeps it out of the shell history). Exit 0 found, 1 not found
    or wrong code; FileNotFoundError when DIR holds no published version.
    """
    if code == "-":
        code = sys.stdin.readline().strip()
    result = lookup_result(Path(published), application_id, code)
    if as_json:
        print(text.terminal(json.dumps(result, ensure_ascii=False, indent=2, sort_keys=True)))
    else:
        print(text.terminal(format_result(result)))
    return 0 if result is not None else 1
