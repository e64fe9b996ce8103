"""Applicant lookup without a server: one encrypted file per application in ``r/``.

Every application with an id and a receipt code of sufficient strength gets a file
``r/<2 hex>/<name>.json``. Nobody can tell from the public folder whose file is whose, nor which status
it holds. Two steps (see allocation.intake.receipt for the floor and the strength classes):

* once per round, at intake: ``master = PBKDF2-HMAC-SHA256(password=normalise_code(code),
  salt=round_salt ‖ round_id ‖ 0x00 ‖ normalise_id(application_id), iterations of the code's
  strength class)`` — 32 bytes, kept in the officers' run folder instead of the code;
* per published version: ``name = hex(HKDF-SHA256(master, salt=version_salt, info=NAME_INFO))``,
  ``key = HKDF-SHA256(master, salt=version_salt, info=KEY_INFO)``; ``version_salt`` is 16 random
  bytes chosen by the round's first version and carried by every later version of the round
  (fresh again only when the previous version's lookup.json is gone, e.g. purged), so a
  republish runs no PBKDF2 and an unchanged record keeps its file name and key;
* the file holds ``{"v": 2, "iv": …, "ct": …}``: the outcome as JSON, long texts truncated
  (``cap_record``), padded with spaces to ``PLAINTEXT_SIZE`` bytes (the same in every version and
  every round), sealed with AES-256-GCM (random 96-bit nonce, the name as associated data).

``lookup.json`` (public) holds the round salt, the version salt, the strength classes with their
iterations and how they were computed. The page ``index.html`` grades what the applicant types,
picks the class's iterations and does the same with WebCrypto; ``lookup_result`` does it in
Python for the officers' ``voucher lookup``. Application ids and receipt codes are both NFKC
normalised, trimmed and upper-cased (codes also lose spaces and hyphens) — the same rule in
Python and in the page.

Rows that cannot have a file, or share one:

* no application id → no file (the officer answers from the run folder);
* no usable receipt code (too short at intake) or a weak one (below the floor's weakest class:
  ``weak_receipt_code`` in intake's issues) → no file: they ask the programme office;
* a duplicated id → one file per distinct (id, code): the rows are all ineligible with
  ``duplicate_application_id``, so whoever holds one of its codes reads that reason;
* two different applications whose (id, code) normalise to the same pair → no file for either
  (``skipped_ambiguous``).

Sealing runs in worker processes that write their files straight to disk; the sha256 of every
``r/`` file goes to ``r.sha256`` (sha256sum format), which the signed manifest pins. It runs in
three phases — ``prepare_lookup`` → ``seal_lookup_chunk`` (any process, any order: worker
processes here, mapped Airflow tasks in production) → ``finalize_lookup`` — that hand over
through the officers' run folder (``lookup_work/``), never through the public folder.

Republishing: what did not change is not sealed again. Each publication leaves in the run
folder (``files.LOOKUP_STATE``, officers only: it holds the masters) the master, file name,
sha256 and a 128-bit digest of every record's inputs (two seeded polars row hashes of the
outcome, title, request and award columns). The next version of the round, when that state
describes exactly its previous version (same ``r.sha256`` bytes, same salt, same round name
and minimum score, same code of this module and the schema, same polars version), hard-links
the previous file of every record whose digest is unchanged (a copy across file systems) and
reuses its ``r.sha256`` line; changed and new records are sealed (same name and key, a fresh
nonce), removed ones get no file. Anything else — no state, another run folder without one, a
previous file gone — seals again; it is never wrong, only slower.

The privacy cost, stated plainly: because an unchanged record keeps its file, anyone comparing
two versions of a round sees which anonymous files were replaced, added or removed (how many
outcomes changed — a count the award lists and changes.json already reveal) and can follow one
anonymous file across versions. They still cannot tell whose a file is, nor read it, without
that applicant's id and receipt code: names and contents come from the master as before, and
guessing a code costs the same PBKDF2 floor per guess.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import json
import math
import multiprocessing
import os
import shutil
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from allocation import files, schema, text
from allocation.intake import receipt
from allocation.publish.manifest import sha256_file

FORMAT = "voucher-lookup/2"
NAME_INFO = "voucher-lookup/2 file-name"
KEY_INFO = "voucher-lookup/2 aes-256-gcm-key"
SALT_BYTES = 16
NONCE_BYTES = 12
# Every plaintext is padded to this size (a sealed file is then 3,993 bytes: one 4 KiB block).
PLAINTEXT_SIZE = 2_944
# Long applicant text is cut to these many characters in the lookup record (… marks the cut);
# the full text stays in the officers' run folder.
TEXT_CAPS = {"company_name": 80, "project_title": 120, "reason_detail": 300}
CHUNK_ROWS = 20_000
SERIAL_BELOW = 5_000          # rows: smaller rounds are sealed in this process
SHARD = 2                     # r/<first 2 hex digits of the name>/<name>.json
normalise_id = receipt.normalise_id
normalise_code = receipt.normalise_code


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class LookupParams:
    round_id: str
    round_salt: bytes
    version_salt: bytes

    @classmethod
    def new(cls, round_id: str, round_salt: bytes) -> "LookupParams":
        return cls(round_id, round_salt, os.urandom(SALT_BYTES))

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "round_id": self.round_id,
            "round_salt": _b64(self.round_salt), "version_salt": _b64(self.version_salt),
            "normalise": {"application_id": "upper(trim(NFKC(id), ' \\t\\r\\n'))",
                          "receipt_code": "upper(NFKC(code)) without ' ', '\\t', '\\r', '\\n', '-'"},
            "kdf": {"name": "PBKDF2", "hash": "SHA-256", "length": 32,
                    "salt": "round_salt ‖ utf8(round_id) ‖ 0x00 ‖ utf8(normalised application_id)",
                    "password": "utf8(normalised receipt_code)",
                    "iterations": "classes[c].iterations for the class c of the code's strength"},
            "floor": receipt.floor_json(),
            "name": {"name": "HKDF", "hash": "SHA-256", "salt": "version_salt", "info": NAME_INFO,
                     "encoding": "hex"},
            "key": {"name": "HKDF", "hash": "SHA-256", "salt": "version_salt", "info": KEY_INFO,
                    "cipher": "AES-256-GCM", "aad": "utf8(file name without .json)"},
            "plaintext_bytes": PLAINTEXT_SIZE,
            "path": files.LOOKUP_DIR + "/{prefix}/{name}.json",
            "prefix_hex_digits": SHARD,
        }

    @classmethod
    def from_json(cls, data: dict) -> "LookupParams":
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown lookup format {data.get('format')!r}")
        return cls(data["round_id"], base64.b64decode(data["round_salt"]),
                   base64.b64decode(data["version_salt"]))


def _hkdf(master: bytes, salt: bytes, info: str) -> bytes:
    """HKDF-SHA256 (RFC 5869) with 32 bytes of output: Extract, then one block of Expand."""
    prk = hmac.digest(salt, master, "sha256")
    return hmac.digest(prk, info.encode() + b"\x01", "sha256")


def file_keys(master: bytes, version_salt: bytes) -> tuple[str, bytes]:
    """(file name, AES key) of one master in one version."""
    return _hkdf(master, version_salt, NAME_INFO).hex(), _hkdf(master, version_salt, KEY_INFO)


def master_of(params: LookupParams, application_id: str, code: str) -> bytes | None:
    """The applicant's master from what they type (None: the code is too weak to have a file)."""
    iterations = receipt.iterations_for(code)
    if iterations is None or not normalise_id(application_id):
        return None
    return receipt.master(params.round_salt, params.round_id, application_id, code, iterations)


def derive(params: LookupParams, application_id: str, code: str) -> tuple[str, bytes] | None:
    """(file name, AES key) for one application id and receipt code; None for a weak code."""
    master = master_of(params, application_id, code)
    return None if master is None else file_keys(master, params.version_salt)


def seal(name: str, key: bytes, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext, name.encode())
    return json.dumps({"v": 2, "iv": _b64(nonce), "ct": _b64(sealed)}).encode() + b"\n"


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
        gpu, _, month = reason[len("capacity_"):-len("_exhausted")].partition("@")   # H100@2026-05: by month
        ko, en = (f"{gpu} GPU{f' {month}' if month else ''} 사용 시간이 점수가 더 높은 신청에 모두 배정되었습니다.",
                  f"All {gpu} GPU-hours on offer{f' in {month}' if month else ''} went to applications "
                  "with higher scores.")
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


def _cut(value, limit: int):
    if isinstance(value, str) and len(value) > limit:
        return value[:max(limit - 1, 0)] + "…"
    return value


def cap_record(record: dict) -> bytes:
    """The record as compact JSON of at most PLAINTEXT_SIZE bytes: company_name, project_title
    and reason_detail cut to TEXT_CAPS characters, then halved (reason_detail first) until it fits."""
    record = {k: _cut(v, TEXT_CAPS[k]) if k in TEXT_CAPS else v for k, v in record.items()}
    for _ in range(64):
        data = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        if len(data) <= PLAINTEXT_SIZE:
            return data
        field = max(TEXT_CAPS, key=lambda k: len(record.get(k) or "") * (2 if k == "reason_detail" else 1))
        record[field] = _cut(record[field], len(record[field]) // 2)
    raise ValueError("lookup record does not fit PLAINTEXT_SIZE")


def _record(row: dict, round_id: str, round_name: str, min_score: float | None,
            nobody_funded: bool) -> dict:
    status = row["status"]
    awarded = status == schema.STATUS_AWARDED
    return {
        "round_id": round_id, "round_name": round_name,
        "application_id": row["application_id"], "company_name": row["company_name"],
        "project_title": row["project_title"],
        "status": status, "status_label": STATUS_LABELS.get(status, {"ko": status, "en": status}),
        "reason": row["reason"],
        "explanation": explain(row, min_score, nobody_funded=nobody_funded),
        "reason_detail": row["reason_detail"],
        "score": _clean(row["score"]), "rank": row["rank"],
        "waitlist_rank": row["waitlist_rank"] or None,
        "score_needed": _clean(row["score_needed"]),
        "award_fraction": _clean(row["award_fraction"]) if awarded else 0.0,
        # a duplicated id's request rows cannot be told apart: none are shown
        "gpu_hours_requested": ({} if row["reason"] == "duplicate_application_id"
                                else dict(zip(row["req_gpu"] or [], row["req_hours"] or []))),
        "gpu_hours_awarded": dict(zip(row["aw_gpu"] or [], row["aw_hours"] or [])) if awarded else {},
        "cost_krw": int(row["cost_krw"] or 0) if awarded else 0,
        "awarded_krw": int(row["awarded_krw"] or 0) if awarded else 0,
        "copay_krw": int(row["copay_krw"] or 0) if awarded else 0,
        # GPU capacity by month: the award's first month (month rounds only)
        **({schema.START_MONTH: row[schema.START_MONTH] if awarded else None}
           if schema.START_MONTH in row else {}),
    }


def _hours(frame: pl.DataFrame, prefix: str) -> pl.DataFrame:
    return (frame.drop_nulls(["application_id", "gpu_type", "gpu_hours"])
            .sort("application_id", "gpu_type")
            .group_by("application_id", maintain_order=True)
            .agg(pl.col("gpu_type").alias(f"{prefix}_gpu"), pl.col("gpu_hours").cast(pl.Int64).alias(f"{prefix}_hours")))


OUTCOME_COLUMNS = ("application_id", "source_row", "company_name", "status", "reason", "reason_detail",
                   "score", "rank", "waitlist_rank", "score_needed", "award_fraction", "cost_krw",
                   "awarded_krw", "copay_krw")   # what a record shows (nothing else is read)


def lookup_rows(out_dir: Path) -> tuple[pl.DataFrame, dict, bool, bytes]:
    """The rows that get a file (one per distinct master), the counts, whether the result funds
    nobody, and the round salt (from the officers' run folder)."""
    out_dir = Path(out_dir)
    meta = json.loads((out_dir / files.INTAKE / files.INTAKE_META).read_text(encoding="utf-8"))
    round_salt = bytes.fromhex(meta.get("lookup_salt") or "")
    by_month = schema.START_MONTH in pl.read_parquet_schema(out_dir / files.OUTCOMES_PARQUET)
    outcomes = pl.read_parquet(out_dir / files.OUTCOMES_PARQUET,
                               columns=list(OUTCOME_COLUMNS) + ([schema.START_MONTH] if by_month else []))
    apps_path = out_dir / files.INTAKE / "applications.parquet"
    if receipt.MASTER_COLUMN not in pl.read_parquet_schema(apps_path) or not round_salt:
        raise ValueError(f"{out_dir}: intake holds no lookup masters (a run folder from before "
                         f"receipt codes were sealed at intake); run the round again")
    apps = pl.read_parquet(apps_path, columns=["source_row", "project_title", receipt.MASTER_COLUMN,
                                               receipt.MILLIBITS_COLUMN, receipt.ITERATIONS_COLUMN])
    awards = pl.read_parquet(out_dir / files.AWARDS_PARQUET)
    if by_month:   # awards per month: the record shows the hours per GPU type
        awards = awards.group_by("application_id", "gpu_type").agg(pl.col("gpu_hours").sum())
    rows = outcomes.join(apps, on="source_row", how="left").sort("source_row")
    rows = rows.join(_hours(awards, "aw"), on="application_id", how="left", maintain_order="left")
    requests_path = out_dir / files.INTAKE / "requests.parquet"
    req = (_hours(pl.read_parquet(requests_path), "req") if requests_path.is_file()
           else pl.DataFrame(schema={"application_id": pl.String, "req_gpu": pl.List(pl.String),
                                     "req_hours": pl.List(pl.Int64)}))
    rows = rows.join(req, on="application_id", how="left", maintain_order="left")
    no_id = rows["application_id"].is_null() | (rows["application_id"].map_elements(
        normalise_id, return_dtype=pl.String, skip_nulls=True) == "").fill_null(True)
    no_code = rows[receipt.MILLIBITS_COLUMN].is_null()
    weak = ~no_code & rows[receipt.ITERATIONS_COLUMN].is_null()
    usable = rows.filter(~no_id & rows[receipt.MASTER_COLUMN].is_not_null())
    grouped = usable.with_columns(
        n=pl.len().over(receipt.MASTER_COLUMN),
        dup_only=(pl.col("reason") == "duplicate_application_id").all().over(receipt.MASTER_COLUMN),
        first=pl.int_range(pl.len()).over(receipt.MASTER_COLUMN) == 0)
    ambiguous = grouped.filter((pl.col("n") > 1) & ~pl.col("dup_only"))
    keep = grouped.filter(pl.col("first") & ((pl.col("n") == 1) | pl.col("dup_only")))
    counts = {"rows": rows.height, "files": keep.height,
              "skipped_missing_id": int(no_id.sum()),
              "skipped_missing_code": int((~no_id & no_code).sum()),
              "skipped_weak_code": int((~no_id & weak).sum()),
              "skipped_ambiguous": ambiguous.height,
              "merged_duplicate_rows": int(grouped.filter(pl.col("dup_only") & ~pl.col("first")).height)}
    return keep.drop("n", "dup_only", "first"), counts, awards.is_empty(), round_salt


def _write_file(path: str, blob: bytes, stamp: float) -> None:
    # O_EXCL: a name collision (2^-256) is an error, never an overwrite
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, blob)
        os.utime(fd, (stamp, stamp))
    finally:
        os.close(fd)


def _seal_chunk(chunk: pl.DataFrame, folder: str, version_salt: bytes, round_id: str,
                round_name: str, min_score: float | None, nobody_funded: bool,
                stamp: float) -> bytes:
    """Seal and write one chunk of rows (a worker process); per row, in order, the 32-byte file
    name and the 32-byte sha256 of the file."""
    out = []
    for row in chunk.iter_rows(named=True):
        plaintext = cap_record(_record(row, round_id, round_name, min_score, nobody_funded))
        name, key = file_keys(row[receipt.MASTER_COLUMN], version_salt)
        blob = seal(name, key, plaintext.ljust(PLAINTEXT_SIZE, b" "))
        _write_file(os.path.join(folder, name[:SHARD], name + ".json"), blob, stamp)
        out.append(bytes.fromhex(name) + hashlib.sha256(blob).digest())
    return b"".join(out)


def _link_chunk(names: list[bytes], previous: str, folder: str) -> list[int]:
    """Reuse the previous version's files of unchanged records (a worker process): a hard link,
    or a copy across file systems. Returns the positions whose file is missing (sealed again)."""
    missing = []
    for k, raw in enumerate(names):
        name = raw.hex()
        rel = os.path.join(name[:SHARD], name + ".json")
        try:
            os.link(os.path.join(previous, rel), os.path.join(folder, rel))
        except FileNotFoundError:
            missing.append(k)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            shutil.copy2(os.path.join(previous, rel), os.path.join(folder, rel))
    return missing


def _chunks(frame: pl.DataFrame, size: int):
    for start in range(0, frame.height, size):
        yield frame.slice(start, size)


def _write_listing(state: pl.DataFrame, path: Path) -> None:
    """r.sha256 (sha256sum format) sorted by file name, from the state's name and sha256."""
    ordered = state.select("name", "sha256").sort("name")
    with open(path, "wb") as handle:
        for part in _chunks(ordered, 100_000):
            name = pl.col("name").bin.encode("hex")
            part.select(pl.concat_str(pl.col("sha256").bin.encode("hex"), pl.lit(f"  {files.LOOKUP_DIR}/"),
                                      name.str.slice(0, SHARD), pl.lit("/"), name, pl.lit(".json"))) \
                .write_csv(handle, include_header=False, quote_style="never")


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))


# --- Republishing: what did not change is not sealed again -----------------------------

_DIGEST_SEEDS = (0x766F7563, 0x6C6F6F6B)   # two 64-bit row hashes: a 128-bit record digest
_NOT_DIGESTED = (receipt.MASTER_COLUMN, receipt.MILLIBITS_COLUMN, receipt.ITERATIONS_COLUMN)
_STATE_SCHEMA = {receipt.MASTER_COLUMN: pl.Binary, "d1": pl.UInt64, "d2": pl.UInt64,
                 "name": pl.Binary, "sha256": pl.Binary}


def _with_digests(rows: pl.DataFrame) -> pl.DataFrame:
    """d1, d2: the row's record inputs hashed (polars row hash, two seeds)."""
    cols = [c for c in rows.columns if c not in _NOT_DIGESTED]
    return rows.with_columns(d1=pl.struct(cols).hash(_DIGEST_SEEDS[0]),
                             d2=pl.struct(cols).hash(_DIGEST_SEEDS[1]))


def record_context(params: LookupParams, round_name: str, min_score: float | None,
                   nobody_funded: bool) -> str:
    """What every record of a version depends on besides its row: the file salt, the round's
    name and minimum score, whether it funds nobody, the code that builds and seals records
    (this module and the schema) and the polars version (its row hash). Another context: every
    file is sealed again."""
    digest = hashlib.sha256()
    for source in (Path(__file__), Path(schema.__file__)):
        digest.update(hashlib.sha256(source.read_bytes()).digest())
    digest.update(json.dumps([params.round_id, _b64(params.round_salt), _b64(params.version_salt),
                              round_name, min_score, nobody_funded, PLAINTEXT_SIZE, pl.__version__,
                              _DIGEST_SEEDS]).encode())
    return digest.hexdigest()


def carried_params(previous: Path | None, round_id: str, round_salt: bytes) -> LookupParams:
    """The previous version's salt when it is a lookup of the same round (same masters), so
    unchanged records keep their file name and key; otherwise a fresh one."""
    path = Path(previous) / files.LOOKUP_JSON if previous is not None else None
    if path is not None and path.is_file():
        try:
            old = LookupParams.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError):
            old = None
        if old is not None and old.round_id == round_id and old.round_salt == round_salt:
            return old
    return LookupParams.new(round_id, round_salt)


def previous_state(previous: Path | None, state_dirs: list[Path], context: str) -> pl.DataFrame | None:
    """The state of the previous version's lookup files from the first of state_dirs (run
    folders) whose state describes exactly that version's r.sha256 in this context; else None."""
    listing = Path(previous) / files.LOOKUP_LISTING if previous is not None else None
    if listing is None or not listing.is_file() or not (Path(previous) / files.LOOKUP_DIR).is_dir():
        return None
    want = sha256_file(listing)
    for folder in state_dirs:
        meta_path, state_path = Path(folder) / files.LOOKUP_STATE_META, Path(folder) / files.LOOKUP_STATE
        if not (meta_path.is_file() and state_path.is_file()):
            continue
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if meta.get("listing_sha256") == want and meta.get("context") == context:
            return pl.read_parquet(state_path)
    return None


def _split(rows: pl.DataFrame, state: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows to seal, unchanged rows with the name and sha256 of their previous file)."""
    if state is None:
        return rows, rows.clear().with_columns(name=pl.lit(None, pl.Binary), sha256=pl.lit(None, pl.Binary))
    joined = rows.join(state.rename({"d1": "old_d1", "d2": "old_d2"}), on=receipt.MASTER_COLUMN,
                       how="left", maintain_order="left")
    same = ((pl.col("old_d1") == pl.col("d1")) & (pl.col("old_d2") == pl.col("d2"))).fill_null(False)
    unchanged = joined.filter(same).select(*rows.columns, "name", "sha256")
    reseal = joined.filter(~same).select(rows.columns)
    return reseal, unchanged


def _sealed_state(chunk: pl.DataFrame, pairs: bytes) -> pl.DataFrame:
    """The state rows of a sealed chunk from its worker's (name, sha256) pairs."""
    return chunk.select(receipt.MASTER_COLUMN, "d1", "d2").with_columns(
        name=pl.Series([pairs[i:i + 32] for i in range(0, len(pairs), 64)], dtype=pl.Binary),
        sha256=pl.Series([pairs[i + 32:i + 64] for i in range(0, len(pairs), 64)], dtype=pl.Binary))


# --- Three phases: prepare → seal chunk i (any process, any order) → finalize --------------
# The rows to seal and the files to reuse go to the officers' run folder (files.LOOKUP_WORK,
# 0700/0600), never to the version folder; a chunk reads only its own rows from there and writes
# its result there. The local publisher runs the chunks in worker processes; the production DAG
# runs them as mapped Airflow tasks (dags/voucher_publish.py).

PLAN = "plan.json"
SEAL_ROWS = "seal.parquet"           # the rows to seal (new or changed records)
LINK_ROWS = "link.parquet"           # the unchanged records: their previous name and sha256
LINK_CHUNK_ROWS = 100_000


def _work(out_dir: Path) -> Path:
    return Path(out_dir) / files.LOOKUP_WORK


def _done(out_dir: Path, index: int) -> Path:
    return _work(out_dir) / f"done-{index:05d}.parquet"


def prepare_lookup(out_dir: Path, target: Path, round_id: str, *, round_name: str = "",
                   min_score: float | None = None, stamp: float | None = None,
                   previous: Path | None = None, state_dirs: list[Path] | None = None,
                   chunk_rows: int = CHUNK_ROWS) -> dict:
    """Phase 1: decide what to seal and what to reuse; the r/ shard folders in target; the plan
    (its chunks) in the run folder. Returns the plan."""
    out_dir = Path(out_dir)
    rows, counts, nobody_funded, round_salt = lookup_rows(out_dir)
    params = carried_params(previous, round_id, round_salt)
    context = record_context(params, round_name, min_score, nobody_funded)
    rows = _with_digests(rows)
    state = previous_state(previous, state_dirs if state_dirs is not None else [out_dir], context)
    reseal, unchanged = _split(rows, state)
    del rows, state
    unchanged = unchanged.select(*_STATE_SCHEMA)
    work = _work(out_dir)
    if work.exists():
        shutil.rmtree(work)
    files.private_dir(work)
    files.write_parquet(reseal, work / SEAL_ROWS, row_group_size=chunk_rows)
    files.write_parquet(unchanged, work / LINK_ROWS, row_group_size=LINK_CHUNK_ROWS)
    results = Path(target) / files.LOOKUP_DIR
    results.mkdir()
    for k in range(16 ** SHARD):      # r/<first two hex digits>/: no directory of a million entries
        (results / f"{k:0{SHARD}x}").mkdir()
    chunks = ([{"kind": "link", "offset": o, "rows": min(LINK_CHUNK_ROWS, unchanged.height - o)}
               for o in range(0, unchanged.height, LINK_CHUNK_ROWS)]
              + [{"kind": "seal", "offset": o, "rows": min(chunk_rows, reseal.height - o)}
                 for o in range(0, reseal.height, chunk_rows)])
    plan = {"round_id": round_id, "round_name": round_name, "min_score": min_score,
            "nobody_funded": nobody_funded, "stamp": stamp if stamp is not None else 0.0,
            "lookup": params.to_json(), "context": context, "target": str(target),
            "previous": str(previous) if previous is not None else None,
            "counts": counts, "chunks": chunks}
    files.write_json(work / PLAN, plan)
    return plan


def read_plan(out_dir: Path) -> dict:
    path = _work(out_dir) / PLAN
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no lookup plan (prepare_lookup did not run for this run folder)")
    return files.read_json(path)


def seal_lookup_chunk(out_dir: Path, index: int) -> int:
    """Phase 2, chunk `index` of the plan: seal its rows or link its unchanged files into the
    version folder; its result (state rows) to the run folder. Safe to run again after a crash
    (its files are replaced). Returns the rows done."""
    plan = read_plan(out_dir)
    chunk = plan["chunks"][index]
    work = _work(out_dir)
    kind = chunk["kind"]
    rows = pl.scan_parquet(work / (SEAL_ROWS if kind == "seal" else LINK_ROWS)) \
        .slice(chunk["offset"], chunk["rows"]).collect()
    params = LookupParams.from_json(plan["lookup"])
    results = str(Path(plan["target"]) / files.LOOKUP_DIR)
    started = work / f"started-{index:05d}"
    if started.exists():               # an earlier attempt may have written some of its files
        names = (rows["name"].to_list() if kind == "link" else
                 [bytes.fromhex(file_keys(m, params.version_salt)[0]) for m in rows[receipt.MASTER_COLUMN]])
        for raw in names:
            name = raw.hex()
            Path(results, name[:SHARD], name + ".json").unlink(missing_ok=True)
    files.write_text(started, "")
    if kind == "seal":
        pairs = _seal_chunk(rows, results, params.version_salt, plan["round_id"], plan["round_name"],
                            plan["min_score"], plan["nobody_funded"], plan["stamp"])
        done = _sealed_state(rows, pairs).with_columns(missing=pl.lit(False))
    else:
        missing = _link_chunk(rows["name"].to_list(), str(Path(plan["previous"]) / files.LOOKUP_DIR), results)
        done = rows.with_columns(missing=pl.int_range(pl.len()).is_in(missing))
    files.write_parquet(done, _done(out_dir, index))
    return rows.height


def finalize_lookup(out_dir: Path) -> dict:
    """Phase 3: every chunk's result → r.sha256 and lookup.json in the version folder, this
    version's state to the run folder (files.LOOKUP_STATE); the work folder removed. Unchanged
    records whose previous file was missing are sealed here. Returns the counts for the manifest."""
    out_dir = Path(out_dir)
    plan = read_plan(out_dir)
    absent = [k for k in range(len(plan["chunks"])) if not _done(out_dir, k).is_file()]
    if absent:
        raise RuntimeError(f"lookup chunks {absent[:5]} of {len(plan['chunks'])} were not sealed; "
                           f"nothing was published")
    done = (pl.concat([pl.read_parquet(_done(out_dir, k)) for k in range(len(plan["chunks"]))])
            if plan["chunks"] else pl.DataFrame(schema={**_STATE_SCHEMA, "missing": pl.Boolean}))
    sealed = sum(c["rows"] for c in plan["chunks"] if c["kind"] == "seal")
    lost = done.filter("missing")
    state = done.filter(~pl.col("missing")).drop("missing")
    del done
    target = Path(plan["target"])
    params = LookupParams.from_json(plan["lookup"])
    if lost.height:        # unchanged, but the previous file is gone: sealed again
        rows = _with_digests(lookup_rows(out_dir)[0])
        rows = rows.filter(pl.col(receipt.MASTER_COLUMN).is_in(lost[receipt.MASTER_COLUMN].implode()))
        pairs = _seal_chunk(rows, str(target / files.LOOKUP_DIR), params.version_salt, plan["round_id"],
                            plan["round_name"], plan["min_score"], plan["nobody_funded"], plan["stamp"])
        state = pl.concat([state, _sealed_state(rows, pairs)])
        sealed += rows.height
    listing = target / files.LOOKUP_LISTING
    _write_listing(state, listing)
    (target / files.LOOKUP_JSON).write_text(
        json.dumps(params.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files.write_parquet(state, out_dir / files.LOOKUP_STATE)
    files.write_json(out_dir / files.LOOKUP_STATE_META,
                     {"listing_sha256": sha256_file(listing), "context": plan["context"],
                      "round_id": plan["round_id"], "files": state.height, "sealed": sealed,
                      "reused": state.height - sealed})
    shutil.rmtree(_work(out_dir), ignore_errors=True)
    return {**plan["counts"], "plaintext_bytes": PLAINTEXT_SIZE, "listing": files.LOOKUP_LISTING,
            "floor_gpu_years": receipt.FLOOR_GPU_YEARS,
            "classes": {str(b): it for b, it in receipt.CLASSES}}


def write_lookup_files(out_dir: Path, target: Path, round_id: str, *, round_name: str = "",
                       min_score: float | None = None, workers: int | None = None,
                       stamp: float | None = None, previous: Path | None = None,
                       state_dirs: list[Path] | None = None) -> dict:
    """Write lookup.json, r/<name>.json and r.sha256 into target; returns counts for the manifest.

    The three phases in one call: the chunks run in `workers` processes (default: the usable
    cores, at most 8), each reading its rows from the run folder and writing its files to disk.

    previous: the round's latest published version. Its salt is carried over, and when one of
    state_dirs (default: out_dir) holds the state of exactly that version, the records whose
    digest did not change keep their file (hard-linked, or copied across file systems) and
    their r.sha256 line; only changed and new records are sealed, removed ones are left out.
    The state of this version goes to out_dir (files.LOOKUP_STATE, officers only)."""
    plan = prepare_lookup(out_dir, target, round_id, round_name=round_name, min_score=min_score,
                          stamp=stamp, previous=previous, state_dirs=state_dirs)
    run_lookup_chunks(out_dir, len(plan["chunks"]), workers=workers, serial=is_small(plan))
    return finalize_lookup(out_dir)


def is_small(plan: dict) -> bool:
    """Few rows to seal: cheaper in this process than starting workers."""
    return sum(c["rows"] for c in plan["chunks"] if c["kind"] == "seal") < SERIAL_BELOW


def run_lookup_chunks(out_dir: Path, count: int, *, workers: int | None = None, serial: bool = False) -> None:
    """Phase 2 for every chunk: in `workers` processes, or in this one (serial, or one worker)."""
    workers = workers or default_workers()
    if serial or workers == 1 or count <= 1:
        for k in range(count):
            seal_lookup_chunk(out_dir, k)
        return
    ctx = multiprocessing.get_context("spawn")   # no fork of a threaded (polars) process
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for _ in pool.map(seal_lookup_chunk, [Path(out_dir)] * count, range(count)):
            pass


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
    derived = derive(params, application_id, code)
    if derived is None:      # too weak a code never has a file
        return None
    name, key = derived
    path = version / files.LOOKUP_DIR / name[:SHARD] / f"{name}.json"
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
