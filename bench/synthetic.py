"""Synthetic rounds: realistic, deterministic round folders for demos, tests and benchmarks.

``generate_round(out_dir, n)`` writes a complete round folder (round.toml, applications,
requests, reviews, capacity and a README.md describing it). Everything is drawn with numpy
``Generator``s seeded from ``seed`` and built column-wise with numpy/polars (no per-row Python
objects), so one million applications take seconds and the same seed gives identical bytes.

What the data looks like:

* applications: Korean SME names ("(주)한빛에이아이", "딥러닝랩 주식회사", "NeuroSoft Inc."),
  valid business numbers (NTS checksum), ~50% Seoul/Gyeonggi but all 17 regions, micro/small/
  medium companies founded 2005-2025, prior awards mostly 0, Korean project titles, random
  10-character receipt codes; about 5% of companies submit two applications.
* requests: 1-2 GPU types per application (H200, H100, A100, L40S), sized so the cost is
  mostly ₩10M-₩350M with some above the ₩300M per-company cap.
* capacity: GPU-hours per type with KRW prices; H200 is the scarcest type.
* reviews: ``reviewers_per_application`` reviewers per application from a pool, three criteria,
  scores = latent application quality + per-reviewer leniency/harshness + noise.
* round.toml: budget sized from ``oversubscription`` (total requested cost divided by the cost
  the budget can fund, budget / (1 - copay_share)); quotas scaled to the data so that the
  non-capital quota binds and the first-time quota is comfortably achievable.

``bad_rows=True`` adds a few documented defects (see ``BadRow`` and the README.md written
into the folder); the clean data is otherwise identical to ``bad_rows=False``.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from allocation import schema
from allocation.intake import receipt
from allocation.identifiers import WEIGHTS
from bench.synthetic_panel import add_panel

# --- Constants -----------------------------------------------------------------

ROUND_ID = "2026-R1"
APPLICATION_PREFIX = "R1-"
GPU_TYPES: tuple[str, ...] = ("H200", "H100", "A100", "L40S")
GPU_PRICES_KRW: tuple[int, ...] = (9_500, 7_000, 3_500, 1_800)     # per GPU-hour
GPU_POPULARITY: tuple[float, ...] = (0.15, 0.35, 0.30, 0.20)
# GPU-hours on offer relative to what the money budget would buy of each type:
# < 1 means the type runs out before the money does (H200 binds).
CAPACITY_FACTOR: tuple[float, ...] = (0.7, 1.1, 1.4, 1.8)
CRITERIA: tuple[str, ...] = ("technical", "feasibility", "impact")
CRITERION_WEIGHTS: tuple[float, ...] = (0.4, 0.3, 0.3)
COPAY_SHARE = 0.2
MAX_KRW_PER_COMPANY = 300_000_000
MIN_SCORE = 60
EXCEL_MAX_ROWS = 1_048_576
MIN_APPLICATIONS_FOR_BAD_ROWS = 40
TABLE_FORMATS: tuple[str, ...] = ("csv", "xlsx", "parquet")
ENCODINGS: tuple[str, ...] = ("utf-8", "cp949")
UNKNOWN_GPU = "V100"
BAD_DATE = "2019-13-45"
BAD_REGION = "Tokyo"
BAD_SCORE = 105
BAD_HOURS = -5

# Region shares: Seoul + Gyeonggi = 50%, non-capital ~45%.
REGION_WEIGHTS: dict[str, float] = {
    "Seoul": 0.29, "Gyeonggi": 0.21, "Incheon": 0.04, "Busan": 0.06, "Daegu": 0.04,
    "Gwangju": 0.03, "Daejeon": 0.06, "Ulsan": 0.02, "Sejong": 0.01, "Gangwon": 0.02,
    "Chungbuk": 0.03, "Chungnam": 0.03, "Jeonbuk": 0.02, "Jeonnam": 0.02, "Gyeongbuk": 0.03,
    "Gyeongnam": 0.06, "Jeju": 0.03,
}
SIZE_WEIGHTS: tuple[float, ...] = (0.50, 0.35, 0.15)           # micro, small, medium
SIZE_COST_FACTOR: tuple[float, ...] = (0.75, 1.0, 1.5)
PRIOR_AWARD_WEIGHTS: tuple[float, ...] = (0.60, 0.22, 0.11, 0.07)   # 0, 1, 2, 3

KO_STEMS = (
    "한빛", "누리", "새봄", "가온", "다온", "라온", "미르", "해솔", "별빛", "아라", "슬기", "바른",
    "푸른", "하늘", "나래", "세움", "이음", "마루", "한결", "도담", "온누리", "큰별", "새빛", "한울",
    "단비", "여울", "다솜", "그린", "하나", "미래", "지능", "혜안", "창의", "성진", "대성", "동방",
    "은하", "우주", "청림", "보람", "코리아", "씨앗", "두레", "빛고을", "참빛", "솔빛", "온빛", "초록",
)
KO_SUFFIXES = (
    "에이아이", "데이터", "테크", "소프트", "랩스", "로보틱스", "비전", "시스템즈", "바이오",
    "헬스케어", "모빌리티", "인텔리전스", "네트웍스", "솔루션즈", "이노베이션", "메디컬", "에너지",
    "클라우드", "엔지니어링", "인포텍", "컴퓨팅", "웍스", "다이나믹스", "팩토리", "로직", "브레인",
)
KO_STANDALONE = (
    "딥러닝랩", "에이아이웍스", "데이터메이트", "비전스페이스", "브레인코어", "마인즈랩", "코어센스",
    "스마트팩토리원", "뉴럴웍스", "알고리즘랩", "텐서코리아", "픽셀로직",
)
KO_FORMS = ("(주){}", "{} 주식회사", "주식회사 {}", "{}", "(유){}")
LATIN_FORMS = ("{} Inc.", "{} Co., Ltd.", "{} Corp.")
NAME_FORM_WEIGHTS = (0.36, 0.14, 0.18, 0.10, 0.04, 0.07, 0.06, 0.05)   # KO_FORMS then LATIN_FORMS
LATIN_STEMS = (
    "Neuro", "Deep", "Quantum", "Nova", "Hyper", "Cogni", "Smart", "Bright", "Blue", "Alpha",
    "Meta", "Omni", "Tensor", "Pixel", "Aurora", "Vector", "Cortex", "Lumi", "Nexus", "Orbit",
    "Synapse", "Zeta", "Kore", "Hana",
)
LATIN_SUFFIXES = (
    "Soft", "Mind", "Labs", "Works", "Tech", "AI", "Bio", "Logic", "Wave", "Robotics", "Systems",
    "Cloud", "Vision", "Data", "Gen", "Net",
)
# (domain, task, model) triples that make sense together.
PROJECT_TRIPLES = (
    ("제조 공정", "불량 검출", "비전 모델"),
    ("반도체 웨이퍼", "결함 분류", "비전 트랜스포머"),
    ("디스플레이 패널", "얼룩 검출", "딥러닝 비전 모델"),
    ("자동차 부품", "외관 검사", "비전 모델"),
    ("제조 설비", "예지 보전", "시계열 이상 탐지 모델"),
    ("의료 영상", "병변 분할", "3D U-Net 모델"),
    ("흉부 X-ray", "판독 보조", "멀티모달 모델"),
    ("병리 슬라이드", "암 조직 분류", "파운데이션 모델"),
    ("의료 기록", "구조화", "의료 특화 LLM"),
    ("신약 후보물질", "결합력 예측", "그래프 신경망"),
    ("단백질", "구조 예측", "생물 서열 언어모델"),
    ("화학 소재", "물성 예측", "과학 파운데이션 모델"),
    ("금융 거래", "이상 탐지", "시계열 모델"),
    ("보험 청구", "심사 자동화", "대규모 언어모델(LLM)"),
    ("법률 문서", "요약", "대규모 언어모델(LLM)"),
    ("특허 문헌", "선행기술 조사", "검색 증강 생성(RAG) 모델"),
    ("고객 상담", "자동 응대", "한국어 LLM"),
    ("공공 민원", "자동 분류", "한국어 LLM"),
    ("교육 콘텐츠", "문항 생성", "한국어 LLM"),
    ("콜센터 음성", "인식", "음성 인식 모델"),
    ("방송 미디어", "자막 생성", "음성-언어 멀티모달 모델"),
    ("물류 창고", "수요 예측", "시계열 트랜스포머"),
    ("유통 매장", "재고 최적화", "수요 예측 모델"),
    ("물류 로봇", "경로 계획", "강화학습 에이전트"),
    ("해양 선박", "항로 최적화", "강화학습 모델"),
    ("자율주행 센서", "객체 인식", "3D 인식 모델"),
    ("드론 항공 영상", "객체 탐지", "비전 모델"),
    ("보안 관제 영상", "이상 행동 탐지", "영상 이해 모델"),
    ("건설 현장", "안전 위험 감지", "영상 분석 모델"),
    ("스마트팜 작물", "생육 예측", "멀티모달 모델"),
    ("농업 병해충", "진단", "경량 비전 모델"),
    ("에너지 수요", "예측", "시계열 트랜스포머"),
    ("전력 설비", "고장 예측", "이상 탐지 모델"),
    ("기상 관측", "초단기 강수 예측", "파운데이션 모델"),
    ("이커머스 상품", "개인화 추천", "순차 행동 예측 모델"),
    ("패션 이미지", "생성", "확산 모델"),
    ("게임 캐릭터", "모션 합성", "생성형 AI 모델"),
    ("웹툰 채색", "자동화", "이미지 생성 모델"),
    ("음악", "작곡 보조", "오디오 생성 모델"),
)
PROJECT_ACTIONS = ("학습", "파인튜닝", "사전학습", "고도화", "개발", "경량화 및 추론 최적화", "실증",
                   "재학습")
# (template, weight): "제조 공정 불량 검출 비전 모델 학습", ...
PROJECT_TEMPLATES = (
    ("{d} {t} {m} {a}", 0.40),
    ("{m} 기반 {d} {t} 서비스 개발", 0.20),
    ("{d} 특화 {m} {a}", 0.15),
    ("{d} {t} 고도화를 위한 {m} {a}", 0.10),
    ("{d} 데이터 기반 {t} {m} {a} 및 실증", 0.15),
)
ALPHANUM = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)


# --- Result types ------------------------------------------------------------------


@dataclass(frozen=True)
class BadRow:
    """One deliberate defect, located as the officer sees it (header = row 1)."""

    table: str                      # table stem: "applications", "requests", "reviews"
    rows: tuple[int, ...]           # rows in that file; empty when the defect is a missing row
    application_id: str | None      # the application concerned (None if none exists)
    application_row: int | None     # its first row in the applications file (None if none)
    column: str | None
    value: str                      # the offending value as written ('' when rows are missing)
    problem: str                    # what is wrong, in plain English
    expected_reason: str | None     # schema.INELIGIBLE_REASONS code intake should report

    def file(self, table_format: str = "csv") -> str:
        return f"{self.table}.{table_format}"


@dataclass
class SyntheticRound:
    """A generated round in memory: policy text, the four tables and the defects."""

    config_text: str
    tables: dict[str, pl.DataFrame]
    bad_rows: list[BadRow] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)


# --- Helpers ------------------------------------------------------------------------


def _streams(seed: int, n: int) -> list[np.random.Generator]:
    """Independent generators per component, so adding defects changes nothing else."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _pick(rng: np.random.Generator, weights, size: int) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum())


def _vocab(words, index: np.ndarray) -> pl.Series:
    return pl.Series(list(words), dtype=pl.String).gather(index)


def _check_digits(first_nine: np.ndarray) -> np.ndarray:
    """Vectorised NTS check digit (same rule as identifiers.check_digit)."""
    total = np.zeros(len(first_nine), dtype=np.int64)
    digits = [(first_nine // 10 ** (8 - i)) % 10 for i in range(9)]
    for d, w in zip(digits, WEIGHTS):
        total += d * w
    total += (digits[8] * 5) // 10
    return (10 - total % 10) % 10


def _unique_draw(draw, n: int) -> np.ndarray:
    """Draw n distinct int64 values, redrawing collisions (deterministic, one full sort)."""
    values = draw(n)
    order = np.argsort(values, kind="stable")
    srt = values[order]
    repeat = np.zeros(n, dtype=bool)
    repeat[1:] = srt[1:] == srt[:-1]
    redo = order[repeat]                       # later occurrences of a value: draw again
    taken = srt[~repeat]                       # sorted distinct values kept
    while len(redo):
        new = draw(len(redo))
        pos = np.minimum(np.searchsorted(taken, new), len(taken) - 1)
        ok = taken[pos] != new
        _, first = np.unique(new, return_index=True)
        once = np.zeros(len(new), dtype=bool)
        once[first] = True
        ok &= once
        values[redo[ok]] = new[ok]
        accepted = np.sort(new[ok])
        taken = np.insert(taken, np.searchsorted(taken, accepted), accepted)
        redo = redo[~ok]
    return values


def _round_sig(x: float, digits: int = 3) -> int:
    """Round to `digits` significant figures, as an officer would write a budget."""
    if x <= 0:
        return 0
    unit = 10 ** max(0, int(math.floor(math.log10(x))) - digits + 1)
    return int(round(x / unit) * unit)


def _id_width(n: int) -> int:
    return max(6, len(str(n + 1)))


def _application_ids(numbers: np.ndarray, width: int) -> pl.Series:
    digits = pl.Series(numbers, dtype=pl.Int64).cast(pl.String).str.zfill(width)
    return (APPLICATION_PREFIX + digits).alias("application_id")


# --- Tables -------------------------------------------------------------------------


def _companies(rng: np.random.Generator, n_companies: int) -> dict[str, object]:
    c = n_companies
    # business numbers: tax office 101-899, type code (81/86/87/88 corporations, 01-79 sole
    # proprietors), 4-digit serial, check digit; unique per company.
    corp_codes = np.array([81, 86, 87, 88])

    def draw(k: int) -> np.ndarray:
        office = rng.integers(101, 900, size=k)
        corporate = rng.random(k) < 0.8
        middle = np.where(corporate, corp_codes[rng.integers(0, 4, size=k)],
                          rng.integers(1, 80, size=k))
        serial = rng.integers(1, 10_000, size=k)
        return office * 1_000_000 + middle * 10_000 + serial

    nine = _unique_draw(draw, c)
    digits = (nine[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    chars = np.full((c, 12), ord("-"), dtype=np.uint8)
    chars[:, [0, 1, 2, 4, 5, 7, 8, 9, 10]] = digits + ord("0")
    chars[:, 11] = _check_digits(nine) + ord("0")
    business_no = _ascii_series(chars)

    # names: every possible name is built once (a few thousand), then gathered per company
    form = _pick(rng, NAME_FORM_WEIGHTS, c)
    korean = form < len(KO_FORMS)
    standalone = rng.random(c) < 0.10
    n_ko_core = len(KO_STEMS) * len(KO_SUFFIXES) + len(KO_STANDALONE)
    ko_core = np.where(standalone,
                       len(KO_STEMS) * len(KO_SUFFIXES) + rng.integers(0, len(KO_STANDALONE), c),
                       rng.integers(0, len(KO_STEMS), c) * len(KO_SUFFIXES)
                       + rng.integers(0, len(KO_SUFFIXES), c))
    la_core = (rng.integers(0, len(LATIN_STEMS), c) * len(LATIN_SUFFIXES)
               + rng.integers(0, len(LATIN_SUFFIXES), c))
    name_index = np.where(korean, form * n_ko_core + ko_core,
                          len(KO_FORMS) * n_ko_core + (form - len(KO_FORMS)) * len(LATIN_SUFFIXES)
                          * len(LATIN_STEMS) + la_core)
    company_name = _company_name_vocab().gather(name_index).alias("company_name")

    size = _pick(rng, SIZE_WEIGHTS, c)
    region = _pick(rng, [REGION_WEIGHTS[r] for r in schema.REGIONS], c)
    if c >= len(schema.REGIONS):            # every region present at least once
        region[rng.choice(c, size=len(schema.REGIONS), replace=False)] = np.arange(len(schema.REGIONS))
    # founded 2005-01-01 .. 2025-12-31, skewed to recent years; medium companies older
    start, end = np.datetime64("2005-01-01"), np.datetime64("2025-12-31")
    span = int((end - start).astype(int))
    young, old = rng.beta(1.8, 1.0, size=c), rng.beta(1.0, 1.4, size=c)
    frac = np.where(size == 2, old, young)
    founded = start + np.round(frac * span).astype("timedelta64[D]")
    prior = _pick(rng, PRIOR_AWARD_WEIGHTS, c)
    return {
        "business_no": business_no, "company_name": company_name, "size": size,
        "region": region, "founded": founded, "prior": prior,
    }


def _project_titles(rng: np.random.Generator, n: int) -> pl.Series:
    triple = rng.integers(0, len(PROJECT_TRIPLES), n)
    action = rng.integers(0, len(PROJECT_ACTIONS), n)
    template = _pick(rng, [w for _, w in PROJECT_TEMPLATES], n)
    index = (template * len(PROJECT_TRIPLES) + triple) * len(PROJECT_ACTIONS) + action
    return _project_title_vocab().gather(index).alias("project_title")


def _company_name_vocab() -> pl.Series:
    """All names, ordered as indexed in _companies: Korean forms x cores, then Latin."""
    ko_cores = [s + x for s in KO_STEMS for x in KO_SUFFIXES] + list(KO_STANDALONE)
    la_cores = [s + x for s in LATIN_STEMS for x in LATIN_SUFFIXES]
    names = [f.format(core) for f in KO_FORMS for core in ko_cores]
    names += [f.format(core) for f in LATIN_FORMS for core in la_cores]
    return pl.Series(names, dtype=pl.String)


def _project_title_vocab() -> pl.Series:
    titles = [tpl.format(d=d, t=t, m=m, a=a) for tpl, _ in PROJECT_TEMPLATES
              for d, t, m in PROJECT_TRIPLES for a in PROJECT_ACTIONS]
    return pl.Series(titles, dtype=pl.String)


def _ascii_series(chars: np.ndarray) -> pl.Series:
    """(n, width) uint8 ASCII codes -> String series, without per-row Python objects."""
    width = chars.shape[1]
    return pl.Series(np.ascontiguousarray(chars).view(f"S{width}").ravel()).cast(pl.String)


def _receipt_codes(rng: np.random.Generator, n: int) -> pl.Series:
    return _ascii_series(ALPHANUM[rng.integers(0, len(ALPHANUM), size=(n, 10))]).alias("receipt_code")


def _scores(rng: np.random.Generator, quality: np.ndarray, reviewers_per_application: int
            ) -> tuple[np.ndarray, np.ndarray, int]:
    """Panel assignment and scores: (panel (n, k) reviewer indices, scores (n, k, 3), pool)."""
    n, k = len(quality), reviewers_per_application
    pool = max(k + 3, math.ceil(n * k / 25))           # ~25 applications per reviewer
    panel = rng.integers(0, pool, size=(n, k))
    while True:                                           # distinct reviewers per application
        srt = np.sort(panel, axis=1)
        bad = (np.diff(srt, axis=1) == 0).any(axis=1) if k > 1 else np.zeros(n, bool)
        if not bad.any():
            break
        panel[bad] = rng.integers(0, pool, size=(int(bad.sum()), k))
    panel.sort(axis=1)
    # reviewer temperament: 20% lenient, 20% harsh, 60% roughly neutral; some spread scores
    kind = _pick(rng, (0.2, 0.2, 0.6), pool)
    bias = np.where(kind == 0, rng.normal(9, 3, pool),
                    np.where(kind == 1, rng.normal(-9, 3, pool), rng.normal(0, 2.5, pool)))
    scale = rng.uniform(0.6, 1.4, pool)
    # float32 and in-place arithmetic: the (n, k, criteria) arrays are the big ones
    centre = np.float32(70.0)
    merit = rng.standard_normal((n, 1, len(CRITERIA)), dtype=np.float32) * np.float32(5)
    merit += (quality.astype(np.float32) - centre)[:, None, None]
    raw = rng.standard_normal((n, k, len(CRITERIA)), dtype=np.float32)
    raw *= np.float32(4)                                              # reviewer noise
    raw += scale.astype(np.float32)[panel][:, :, None] * merit
    raw += (bias.astype(np.float32)[panel] + centre)[:, :, None]
    np.rint(raw, out=raw)
    np.clip(raw, 0, 100, out=raw)
    return panel, raw.astype(np.int16), pool


def build_round(n_applications: int, *, seed: int = 0, bad_rows: bool = False,
                oversubscription: float = 4.0, reviewers_per_application: int = 3,
                capacity_factors: tuple[float, ...] | None = None,
                quota_shares: tuple[float, float] | None = None,
                review_panel: bool = False, months: int = 0) -> SyntheticRound:
    """Generate a round in memory (see generate_round).

    months: > 0 gives GPU capacity by month (issue 18): capacity per type and month (from
    FIRST_MONTH on, a seasonal profile around an even split of the same totals) and applications
    with duration_months and start windows (add_months); 0 = a single-period round.

    quota_shares: (non_capital, first_time) min_share of the two quotas; default: non-capital
    5 points above its group's share of the requested cost (binds), first-time well below it.
    review_panel: also a review panel (bench.synthetic_panel): topic tags, reviewers, conflicts,
    assignments, reviews by the assigned panel, two deliberate panel defects.

    capacity_factors: GPU-hours on offer per type (GPU_TYPES order) relative to what the budget
    would buy of it; default CAPACITY_FACTOR (only H200 scarcer than the money).
    """
    n = int(n_applications)
    factors = CAPACITY_FACTOR if capacity_factors is None else tuple(float(f) for f in capacity_factors)
    if len(factors) != len(GPU_TYPES) or min(factors) <= 0:
        raise ValueError(f"capacity_factors needs {len(GPU_TYPES)} positive numbers "
                         f"({', '.join(GPU_TYPES)}), got {list(factors)}")
    if n < 1:
        raise ValueError("n_applications must be at least 1")
    if oversubscription <= 0:
        raise ValueError("oversubscription must be positive")
    if reviewers_per_application < 1:
        raise ValueError("reviewers_per_application must be at least 1")
    if bad_rows and n < MIN_APPLICATIONS_FOR_BAD_ROWS:
        raise ValueError(f"bad_rows needs at least {MIN_APPLICATIONS_FOR_BAD_ROWS} applications")
    if bad_rows and reviewers_per_application < 2:
        raise ValueError("bad_rows needs reviewers_per_application >= 2")
    r_comp, r_app, r_req, r_rev, r_bad = _streams(seed, 5)

    # --- applications -------------------------------------------------------------
    n_companies = max(1, round(n / 1.05))                # ~5% of companies apply twice
    n_extra = n - n_companies
    comp = _companies(r_comp, n_companies)
    app_company = np.concatenate([
        np.arange(n_companies), r_app.choice(n_companies, size=n_extra, replace=False)])
    app_company = app_company[r_app.permutation(n)]
    width = _id_width(n)
    app_ids = _application_ids(np.arange(1, n + 1), width)
    region_idx = comp["region"][app_company]
    size_idx = comp["size"][app_company]
    prior = comp["prior"][app_company]
    applications = pl.DataFrame({
        "application_id": app_ids,
        "business_no": comp["business_no"].gather(app_company),
        "company_name": comp["company_name"].gather(app_company),
        "company_size": _vocab(schema.COMPANY_SIZES, size_idx),
        "region": _vocab(schema.REGIONS, region_idx),
        "founded_on": pl.Series(comp["founded"][app_company]).cast(pl.String),
        "prior_awards": pl.Series(prior, dtype=pl.Int64),
        "project_title": _project_titles(r_app, n),
        "receipt_code": _receipt_codes(r_app, n),
    })

    # --- requests -----------------------------------------------------------------
    two = r_req.random(n) < 0.3
    first = _pick(r_req, GPU_POPULARITY, n)
    second = _pick(r_req, GPU_POPULARITY, n)
    while (clash := two & (second == first)).any():
        second[clash] = _pick(r_req, GPU_POPULARITY, int(clash.sum()))
    cost = np.exp(r_req.normal(np.log(80e6), 0.75, n)) * np.asarray(SIZE_COST_FACTOR)[size_idx]
    cost = np.clip(cost, 8e6, 900e6)
    share = np.where(two, r_req.uniform(0.3, 0.7, n), 1.0)
    prices = np.asarray(GPU_PRICES_KRW, dtype=np.float64)
    hours1 = np.maximum(10, np.rint(cost * share / prices[first] / 10) * 10).astype(np.int64)
    hours2 = np.maximum(10, np.rint(cost * (1 - share) / prices[second] / 10) * 10).astype(np.int64)
    req_app = np.concatenate([np.arange(n), np.flatnonzero(two)])
    req_gpu = np.concatenate([first, second[two]])
    req_hours = np.concatenate([hours1, hours2[two]])
    order = np.argsort(req_app, kind="stable")
    req_app, req_gpu, req_hours = req_app[order], req_gpu[order], req_hours[order]
    requests = pl.DataFrame({
        "application_id": app_ids.gather(req_app),
        "gpu_type": _vocab(GPU_TYPES, req_gpu),
        "gpu_hours": pl.Series(req_hours, dtype=pl.Int64),
    })
    req_cost = req_hours * np.asarray(GPU_PRICES_KRW, dtype=np.int64)[req_gpu]
    app_cost = np.bincount(req_app, weights=req_cost, minlength=n)
    total_cost = int(req_cost.sum())

    # --- capacity and budget --------------------------------------------------------
    demand = np.bincount(req_gpu, weights=req_hours, minlength=len(GPU_TYPES))
    cap_hours = [_round_sig(demand[g] / oversubscription * factors[g]) for g in range(len(GPU_TYPES))]
    capacity = pl.DataFrame({
        "gpu_type": list(GPU_TYPES),
        "gpu_hours": pl.Series(cap_hours, dtype=pl.Int64),
        "krw_per_gpu_hour": pl.Series(list(GPU_PRICES_KRW), dtype=pl.Int64),
    })
    budget = _round_sig(total_cost * (1 - COPAY_SHARE) / oversubscription)

    # --- reviews --------------------------------------------------------------------
    quality = (r_rev.normal(70, 10, n) + 1.5 * (prior > 0)
               + np.asarray([-1.0, 0.0, 2.0])[size_idx])
    k = reviewers_per_application
    panel, scores, pool = _scores(r_rev, quality, k)
    rev_width = max(3, len(str(pool)))
    pool_ids = "REV-" + (pl.Series(np.arange(1, pool + 1), dtype=pl.Int64).cast(pl.String)
                         .str.zfill(rev_width))
    m = len(CRITERIA)
    reviews = pl.DataFrame({
        "application_id": app_ids.gather(np.repeat(np.arange(n), k * m)),
        "reviewer_id": pool_ids.gather(np.repeat(panel.ravel(), m)),
        "criterion": _vocab(CRITERIA, np.tile(np.arange(m), n * k)),
        "score": pl.Series(scores.ravel()).cast(pl.Int64),
    })
    del panel, scores

    # --- policy ---------------------------------------------------------------------
    non_capital = ~np.isin(region_idx, [schema.REGIONS.index(r) for r in schema.CAPITAL_REGIONS])
    first_time = prior == 0
    nc_share = float(app_cost[non_capital].sum() / total_cost)
    ft_share = float(app_cost[first_time].sum() / total_cost)
    # non-capital minimum above the group's natural share (binds); first-time well below (slack)
    nc_min = min(0.9, math.ceil((nc_share + 0.05) * 20) / 20) if nc_share > 0 else 0.0
    ft_min = max(0.05, math.floor((ft_share - 0.15) * 20) / 20) if ft_share > 0.2 else 0.0
    if quota_shares is not None:
        nc_min, ft_min = (float(x) for x in quota_shares)
    min_reviewers = min(2, k)
    stats = {
        "total_cost_krw": total_cost, "budget_krw": budget,
        "fundable_cost_krw": budget / (1 - COPAY_SHARE),
        "oversubscription": total_cost / (budget / (1 - COPAY_SHARE)) if budget else float("inf"),
        "non_capital_cost_share": nc_share, "first_time_cost_share": ft_share,
        "reviewer_pool": pool, "companies": n_companies,
    }
    config_text = _config_text(seed=seed, budget=budget, nc_min=nc_min, ft_min=ft_min,
                               min_reviewers=min_reviewers, n=n, nc_share=nc_share,
                               ft_share=ft_share, oversubscription=oversubscription)

    result = SyntheticRound(config_text=config_text,
                            tables={"applications": applications, "requests": requests,
                                    "reviews": reviews, "capacity": capacity},
                            stats=stats)
    if bad_rows:
        _add_bad_rows(result, r_bad, app_company, req_app, width, k, min_reviewers)
    if review_panel:
        add_panel(result, seed, k, BadRow)
    if months:
        add_months(result, seed, months)
    return result


FIRST_MONTH = (2026, 3)
MONTH_PROFILE_AMPLITUDE = 0.3     # capacity per month: even split x (1 +- 0.3, a seasonal wave)


def add_months(result: SyntheticRound, seed: int, months: int) -> None:
    """GPU capacity by month: split each type's hours over `months` months (capacity gains a
    month column) and give applications duration_months (1 to min(6, months), mostly 2-4) and
    start windows (earliest_start for about half, latest_start for about a third, the rest
    empty = the defaults). Its own random stream: the rest of the round is unchanged."""
    if months < 1:
        raise ValueError("months must be at least 1")
    rng = np.random.default_rng([seed, 18])
    names = [f"{(FIRST_MONTH[0] * 12 + FIRST_MONTH[1] - 1 + k) // 12:04d}-"
             f"{(FIRST_MONTH[0] * 12 + FIRST_MONTH[1] - 1 + k) % 12 + 1:02d}" for k in range(months)]
    profile = 1 + MONTH_PROFILE_AMPLITUDE * np.sin(np.arange(months) * 2 * np.pi / max(months, 1) + 1.0)
    profile = profile / profile.sum()
    cap = result.tables["capacity"]
    rows = []
    for gpu, hours, price in cap.select("gpu_type", "gpu_hours", "krw_per_gpu_hour").iter_rows():
        per_month = np.floor(int(hours) * profile).astype(np.int64)
        rows += [(gpu, int(h), int(price), m) for h, m in zip(per_month.tolist(), names)]
    result.tables["capacity"] = pl.DataFrame(rows, schema=list(cap.columns) + ["month"], orient="row")
    apps = result.tables["applications"]
    n = apps.height
    longest = min(6, months)
    duration = np.minimum(rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.1, 0.25, 0.3, 0.2, 0.1, 0.05]), longest)
    last_fit = months - duration
    earliest = np.floor(rng.random(n) * (last_fit + 1)).astype(np.int64)
    latest = np.minimum(earliest + rng.integers(0, 3, n), last_fit)
    has_earliest = rng.random(n) < 0.5
    has_latest = rng.random(n) < 0.35
    month_names = pl.Series(names, dtype=pl.String)
    result.tables["applications"] = apps.with_columns(
        pl.Series("duration_months", duration.astype(str).tolist(), dtype=pl.String),
        pl.when(pl.Series(has_earliest)).then(month_names.gather(np.where(has_earliest, earliest, 0)))
        .alias("earliest_start"),
        pl.when(pl.Series(has_latest)).then(month_names.gather(np.where(has_latest, latest, 0)))
        .alias("latest_start"))


def _config_text(*, seed: int, budget: int, nc_min: float, ft_min: float, min_reviewers: int,
                 n: int, nc_share: float, ft_share: float, oversubscription: float) -> str:
    w = dict(zip(CRITERIA, CRITERION_WEIGHTS))
    return f"""\
# Round policy for a SYNTHETIC round (bench.synthetic, seed {seed}, {n} applications).
# Every setting is explained on the line above it. Amounts are in KRW; _ separates thousands.

[round]
# Identifier used in output file names and reports (letters, digits, - and _ only).
id = "{ROUND_ID}"
# Human-readable name shown on reports.
name = "2026 AI 컴퓨팅 바우처 1차 (synthetic, seed {seed})"
# Government money available for vouchers, in KRW (sized so demand is ~{oversubscription:g}x what it can fund).
budget_krw = {budget:_}
# Share of each award's cost the company pays itself (0.2 = 20% co-payment; the voucher covers the rest).
copay_share = {COPAY_SHARE}

[award]
# Fractions of the requested GPU-hours an application may be awarded (partial awards allowed).
levels = [0.5, 0.75, 1.0]
# Most voucher money one company (same business number) can receive in this round, in KRW.
max_krw_per_company = {MAX_KRW_PER_COMPANY:_}
# Applications scoring below this (after calibration and bonuses) cannot be funded.
min_score = {MIN_SCORE}
# How many unfunded applications are ranked on the waiting list.
waitlist_size = 30

[scoring]
# Weight of each review criterion in the final score (they are normalised to sum to 1).
weights = {{ technical = {w["technical"]}, feasibility = {w["feasibility"]}, impact = {w["impact"]} }}
# Points added to the score of applications in a group (first-time applicants, non-capital regions).
bonus = {{ first_time = 3.0, non_capital = 2.0 }}
# Fewer reviewers than this for an application makes it ineligible (incomplete panel).
min_reviewers = {min_reviewers}

[[quota]]
# Companies outside the capital area (Seoul, Gyeonggi, Incheon) ...
name = "non_capital"
regions_not_in = ["Seoul", "Gyeonggi", "Incheon"]
# ... must receive at least this share of the awarded money (they requested {nc_share:.0%} of it).
min_share = {nc_min:.2f}

[[quota]]
# Companies that never received a voucher before ...
name = "first_time"
prior_awards_max = 0
# ... must receive at least this share of the awarded money (they requested {ft_share:.0%} of it).
min_share = {ft_min:.2f}

[solver]
# Seconds the optimiser may search before returning its best allocation so far.
time_limit_s = 60
"""


# --- Defects ------------------------------------------------------------------------


def _add_bad_rows(result: SyntheticRound, rng: np.random.Generator, app_company: np.ndarray,
                  req_app: np.ndarray, width: int, k: int, min_reviewers: int) -> None:
    """Inject the documented defects. Positions are computed from integer indices (no string
    scans), so this stays cheap at a million applications."""
    apps, reqs, revs = (result.tables[t] for t in ("applications", "requests", "reviews"))
    n = apps.height
    per_app = k * len(CRITERIA)                              # review rows per application
    counts = np.bincount(app_company)
    single = np.flatnonzero(counts[app_company] == 1)      # companies with one application
    # the two broken request rows go to applications with two GPU types, so each keeps one
    # valid request and the expected reason is invalid_request (not no_request)
    two_types = np.bincount(req_app, minlength=n)[single] == 2
    req_kinds = ("gpu", "hours")
    if two_types.sum() < len(req_kinds):
        raise ValueError("too few applications for bad_rows with this seed; use more applications")
    picked = rng.choice(single[two_types], size=len(req_kinds), replace=False)
    others = np.setdiff1d(single, picked)
    kinds = ("checksum", "region", "date", "receipt", "duplicate", "score", "one_reviewer",
             "no_request")
    targets = dict(zip(req_kinds, (int(i) for i in picked)))
    targets.update(zip(kinds, (int(i) for i in rng.choice(others, size=len(kinds), replace=False))))
    ids = apps["application_id"]
    tid = {kind: ids[i] for kind, i in targets.items()}

    # applications: modify cells, then duplicate one row right below itself
    bno = apps["business_no"][targets["checksum"]]
    bad_bno = bno[:-1] + str((int(bno[-1]) + 1) % 10)
    short_code = apps["receipt_code"][targets["receipt"]][:5]
    apps = apps.with_columns(
        apps["business_no"].scatter(targets["checksum"], bad_bno),
        apps["region"].scatter(targets["region"], BAD_REGION),
        apps["founded_on"].scatter(targets["date"], BAD_DATE),
        apps["receipt_code"].scatter(targets["receipt"], short_code),
    )
    d = targets["duplicate"]
    apps = pl.concat([apps.slice(0, d + 1), apps.slice(d, 1), apps.slice(d + 1)])

    def app_row(kind: str) -> int:                   # officer's row in applications file
        i = targets[kind]
        return i + 2 + (i > d)

    # requests: wrong GPU type, negative hours, a row for an unknown application, none for one
    gpu_row = int(np.searchsorted(req_app, targets["gpu"]))
    hours_row = int(np.searchsorted(req_app, targets["hours"]))
    unknown_id = APPLICATION_PREFIX + str(n + 1).zfill(width)
    reqs = reqs.with_columns(
        reqs["gpu_type"].scatter(gpu_row, UNKNOWN_GPU),
        reqs["gpu_hours"].scatter(hours_row, BAD_HOURS),
    )
    keep = req_app != targets["no_request"]
    kept = np.flatnonzero(keep)
    reqs = pl.concat([
        reqs.filter(pl.Series(keep)),
        pl.DataFrame({"application_id": [unknown_id], "gpu_type": ["A100"],
                      "gpu_hours": [int(rng.integers(50, 200)) * 100]},
                     schema=reqs.schema),
    ])

    def req_row(pos: int) -> int:
        return int(np.searchsorted(kept, pos)) + 2

    # reviews: a score above 100; an application left with a single reviewer
    one = tid["one_reviewer"]
    score_row = targets["score"] * per_app
    revs = revs.with_columns(revs["score"].scatter(score_row, BAD_SCORE))
    first = targets["one_reviewer"] * per_app
    keep_reviewer = revs["reviewer_id"][first]
    drop = slice(first + len(CRITERIA), first + per_app)    # the other reviewers' rows
    revs = pl.concat([revs.slice(0, drop.start), revs.slice(drop.stop)])

    def rev_row(pos: int) -> int:
        return pos + 2 - (drop.stop - drop.start if pos >= drop.stop else 0)

    result.tables.update(applications=apps, requests=reqs, reviews=revs)
    one_rows = tuple(rev_row(first + j) for j in range(len(CRITERIA)))
    result.bad_rows = [
        BadRow("applications", (app_row("checksum"),), tid["checksum"], app_row("checksum"),
               "business_no", bad_bno,
               f"business number fails the NTS checksum (last digit should be {bno[-1]}: {bno})",
               "invalid_business_no"),
        BadRow("applications", (app_row("region"),), tid["region"], app_row("region"), "region",
               BAD_REGION, "region is not one of the 17 Korean regions", "invalid_field"),
        BadRow("applications", (app_row("date"),), tid["date"], app_row("date"), "founded_on",
               BAD_DATE, "founded_on is not a real date (month 13, day 45)", "invalid_field"),
        BadRow("applications", (app_row("receipt"),), tid["receipt"], app_row("receipt"),
               "receipt_code", short_code,
               "receipt_code has 5 characters (at least 8 required, normally 10)", "invalid_field"),
        BadRow("applications", (d + 2, d + 3), tid["duplicate"], app_row("duplicate"),
               "application_id", tid["duplicate"],
               "the same application_id on two rows (the row was pasted twice; the file has "
               "one row more than there are applications)", "duplicate_application_id"),
        BadRow("requests", (req_row(gpu_row),), tid["gpu"], app_row("gpu"),
               "gpu_type", UNKNOWN_GPU, f"unknown GPU type (capacity offers {', '.join(GPU_TYPES)})",
               "invalid_request"),
        BadRow("requests", (req_row(hours_row),), tid["hours"], app_row("hours"),
               "gpu_hours", str(BAD_HOURS), "gpu_hours is negative (must be at least 1)",
               "invalid_request"),
        BadRow("requests", (reqs.height + 1,), unknown_id, None,
               "application_id", unknown_id,
               "request for an application_id that is not in the applications file", None),
        BadRow("requests", (), tid["no_request"], app_row("no_request"), "application_id", "",
               "the application has no request rows at all", "no_request"),
        BadRow("reviews", (rev_row(score_row),), tid["score"], app_row("score"),
               "score", str(BAD_SCORE), "score above 100 (scores run 0-100)", "invalid_review"),
        BadRow("reviews", one_rows, one, app_row("one_reviewer"),
               "reviewer_id", keep_reviewer,
               f"only one reviewer ({keep_reviewer}) scored this application; the other "
               f"{k - 1} reviewer(s) are missing (min_reviewers = {min_reviewers})",
               "missing_reviews"),
    ]


# --- Writing ------------------------------------------------------------------------


def _table_encodings(encoding: str | dict[str, str], table_format: str) -> dict[str, str]:
    if isinstance(encoding, str):
        enc = {t.stem: encoding for t in schema.TABLES}
    else:
        unknown = set(encoding) - {t.stem for t in schema.TABLES}
        if unknown:
            raise ValueError(f"unknown table(s) in encoding: {sorted(unknown)}")
        enc = {t.stem: encoding.get(t.stem, "utf-8") for t in schema.TABLES}
    enc = {t: e.lower().replace("_", "-") for t, e in enc.items()}
    enc = {t: "utf-8" if e == "utf8" else e for t, e in enc.items()}
    for t, e in enc.items():
        if e not in ENCODINGS:
            raise ValueError(f"encoding {e!r} for {t}: use one of {ENCODINGS}")
        if e != "utf-8" and table_format != "csv":
            raise ValueError(f"encoding {e!r} applies to csv only (format is {table_format})")
    return enc


def _write_csv(df: pl.DataFrame, path: Path, encoding: str, chunk: int = 200_000) -> None:
    if encoding == "utf-8":
        df.write_csv(path)
        return
    with path.open("wb") as fh:                       # encode chunk by chunk: memory-lean
        for start in range(0, max(df.height, 1), chunk):
            text = df.slice(start, chunk).write_csv(include_header=start == 0)
            fh.write(text.encode(encoding))


def _write_xlsx(df: pl.DataFrame, path: Path, sheet: str) -> None:
    import xlsxwriter

    if df.height + 1 > EXCEL_MAX_ROWS:
        raise ValueError(f"{path.name}: {df.height} rows do not fit in an Excel sheet "
                         f"({EXCEL_MAX_ROWS - 1} at most); use csv or parquet")
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False,
                                         "strings_to_urls": False})
    wb.set_properties({"created": datetime(2026, 1, 1)})   # fixed: identical bytes per seed
    df.write_excel(wb, worksheet=sheet, autofit=df.height <= 5_000, table_style=None)
    wb.close()


def with_strong_codes(result: SyntheticRound) -> SyntheticRound:
    """The round with fresh 80-bit receipt codes, as ``voucher codes`` issues them (strength class
    60: 100 PBKDF2 iterations per application at intake). The generator's own 10-character codes
    (51.7 bits, class 50: ~62,500 iterations each) cost hours of intake at 1M applications."""
    apps = result.tables["applications"]
    result.tables["applications"] = apps.with_columns(
        receipt_code=pl.Series(receipt.new_codes(apps.height), dtype=pl.String))
    return result


def write_round(result: SyntheticRound, out_dir: Path | str, *, table_format: str = "csv",
                encoding: str | dict[str, str] = "utf-8", command: str | None = None) -> Path:
    """Write a built round into out_dir (created if needed); return the folder."""
    if table_format not in TABLE_FORMATS:
        raise ValueError(f"table_format {table_format!r}: use one of {TABLE_FORMATS}")
    encodings = _table_encodings(encoding, table_format)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for ext in schema.TABLE_EXTENSIONS:               # never leave a stale table in another format
        for t in schema.TABLES:
            stale = out / f"{t.stem}{ext}"
            if ext != f".{table_format}" and stale.exists():
                stale.unlink()
    (out / schema.CONFIG_FILE).write_text(result.config_text, encoding="utf-8")
    for stem, df in result.tables.items():
        path = out / f"{stem}.{table_format}"
        if table_format == "csv":
            _write_csv(df, path, encodings.get(stem, "utf-8"))
        elif table_format == "xlsx":
            _write_xlsx(df, path, stem)
        else:
            df.write_parquet(path)
    (out / "README.md").write_text(_readme(result, table_format, encodings, command), encoding="utf-8")
    return out


def _readme(result: SyntheticRound, table_format: str, encodings: dict[str, str],
            command: str | None) -> str:
    s = result.stats
    lines = [
        f"# Synthetic round {ROUND_ID}",
        "",
        "Generated by `bench.synthetic`: fictitious companies, realistic shapes. "
        "Do not edit by hand; regenerate instead.",
        "",
    ]
    if command:
        lines += ["Regenerate (from the repository root):", "", "```", command, "```", ""]
    lines += ["| file | data rows | encoding |", "|---|---|---|",
              f"| {schema.CONFIG_FILE} | - | utf-8 |"]
    for stem, df in result.tables.items():
        enc = encodings.get(stem, "utf-8") if table_format == "csv" else "-"
        lines.append(f"| {stem}.{table_format} | {df.height} | {enc} |")
    lines += [
        "",
        f"Requested cost ₩{s['total_cost_krw']:,.0f}; budget ₩{s['budget_krw']:,.0f} funds "
        f"₩{s['fundable_cost_krw']:,.0f} of cost at the {COPAY_SHARE:.0%} co-payment "
        f"(oversubscription {s['oversubscription']:.1f}x). {s['companies']:,} companies, "
        f"{s['reviewer_pool']:,} reviewers in the pool.",
        "",
    ]
    if result.bad_rows:
        lines += [
            "## Deliberately bad rows",
            "",
            "Rows are numbered as the officer sees them in Excel or a text editor: the header is "
            "row 1, the first data row is row 2. The expected result is the ineligibility reason "
            "intake should give the application (see `allocation/schema.py`).",
            "",
            "| # | file | row(s) | application | column | value | what is wrong | expected result |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for i, b in enumerate(result.bad_rows, 1):
            where = ", ".join(map(str, b.rows)) if b.rows else "(none)"
            app = b.application_id or ""
            if b.application_row is not None and b.table != "applications":
                app += f" (applications row {b.application_row})"
            value = f"`{b.value}`" if b.value else ""
            reason = f"`{b.expected_reason}`" if b.expected_reason else "row reported, no application affected"
            lines.append(f"| {i} | {b.file(table_format)} | {where} | {app} | {b.column or ''} "
                         f"| {value} | {b.problem} | {reason} |")
        lines.append("")
    return "\n".join(lines)


def generate_round(out_dir: Path | str, n_applications: int, *, seed: int = 0, bad_rows: bool = False,
                   table_format: str = "csv", encoding: str | dict[str, str] = "utf-8",
                   oversubscription: float = 4.0, reviewers_per_application: int = 3,
                   capacity_factors: tuple[float, ...] | None = None,
                   quota_shares: tuple[float, float] | None = None, panel: bool = False,
                   months: int = 0) -> Path:
    """Write a synthetic round folder and return its path.

    encoding: "utf-8" or "cp949" for every csv table, or a dict per table stem, e.g.
    {"applications": "cp949"} (the others stay UTF-8) as in Korean officers' Excel exports.
    """
    if table_format not in TABLE_FORMATS:
        raise ValueError(f"table_format {table_format!r}: use one of {TABLE_FORMATS}")
    _table_encodings(encoding, table_format)          # fail before the work
    result = build_round(n_applications, seed=seed, bad_rows=bad_rows,
                         oversubscription=oversubscription,
                         reviewers_per_application=reviewers_per_application,
                         capacity_factors=capacity_factors, quota_shares=quota_shares,
                         review_panel=panel, months=months)
    command = _command(out_dir, n_applications, seed, bad_rows, table_format, encoding,
                       oversubscription, reviewers_per_application, capacity_factors, quota_shares, panel,
                       months)
    return write_round(result, out_dir, table_format=table_format, encoding=encoding, command=command)


def _command(out_dir, n, seed, bad_rows, table_format, encoding, oversubscription, reviewers,
             capacity_factors=None, quota_shares=None, panel=False, months=0) -> str:
    parts = ["python -m bench.synthetic", str(out_dir), f"--applications {n}", f"--seed {seed}"]
    if bad_rows:
        parts.append("--bad-rows")
    if table_format != "csv":
        parts.append(f"--format {table_format}")
    if isinstance(encoding, str):
        if encoding != "utf-8":
            parts.append(f"--encoding {encoding}")
    else:
        parts += [f"--table-encoding {t}={e}" for t, e in encoding.items()]
    if oversubscription != 4.0:
        parts.append(f"--oversubscription {oversubscription:g}")
    if reviewers != 3:
        parts.append(f"--reviewers {reviewers}")
    if capacity_factors is not None:
        parts.append("--capacity-factors " + ",".join(f"{f:g}" for f in capacity_factors))
    if quota_shares is not None:
        parts.append("--quota-shares " + ",".join(f"{f:g}" for f in quota_shares))
    if panel:
        parts.append("--panel")
    if months:
        parts.append(f"--months {months}")
    return " ".join(parts)


# --- CLI ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.synthetic",
        description="Write a synthetic round folder (round.toml + applications, requests, "
                    "reviews, capacity) for demos, tests and benchmarks.")
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write (created if missing)")
    p.add_argument("--applications", "-n", type=int, required=True, metavar="N",
                   help="number of applications")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed = same files)")
    p.add_argument("--bad-rows", action="store_true",
                   help="add a few documented defective rows, listed in OUT_DIR/README.md "
                        f"(needs at least {MIN_APPLICATIONS_FOR_BAD_ROWS} applications)")
    p.add_argument("--format", dest="table_format", choices=TABLE_FORMATS, default="csv",
                   help="table file format (default csv)")
    p.add_argument("--encoding", choices=ENCODINGS, default="utf-8",
                   help="text encoding of every csv table (default utf-8)")
    p.add_argument("--table-encoding", action="append", default=[], metavar="TABLE=ENC",
                   help="encoding of one csv table, e.g. applications=cp949 (repeatable)")
    p.add_argument("--oversubscription", type=float, default=4.0,
                   help="requested cost / cost the budget can fund (default 4)")
    p.add_argument("--reviewers", type=int, default=3, dest="reviewers_per_application",
                   help="reviewers per application (default 3)")
    p.add_argument("--capacity-factors", metavar="F,F,F,F", default=None,
                   help=f"GPU-hours on offer per type ({','.join(GPU_TYPES)}) relative to what the "
                        f"budget would buy of it (default {','.join(f'{f:g}' for f in CAPACITY_FACTOR)}; "
                        "below 1 = that type runs out before the money)")
    p.add_argument("--quota-shares", metavar="NC,FT", default=None,
                   help="min_share of the non_capital and first_time quotas (default: non-capital "
                        "5 points above its group's share of the requested cost, first-time slack); "
                        "higher = tighter quotas")
    p.add_argument("--panel", action="store_true",
                   help="also a review panel: topic_tags, reviewers, conflicts, assignments "
                        "(bench/synthetic_panel.py)")
    p.add_argument("--months", type=int, default=0, metavar="M",
                   help="GPU capacity by month over M months (capacity gains a month column, "
                        "applications duration_months and start windows); default 0 = single period")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    encoding: str | dict[str, str] = args.encoding
    if args.table_encoding:
        per_table: dict[str, str] = {}
        for item in args.table_encoding:
            table, sep, enc = item.partition("=")
            if not sep:
                parser.error(f"--table-encoding {item!r}: expected TABLE=ENCODING")
            per_table[table.strip()] = enc.strip()
        encoding = {t.stem: per_table.get(t.stem, args.encoding) for t in schema.TABLES
                    if t.stem in per_table or args.encoding != "utf-8"}
        unknown = set(per_table) - {t.stem for t in schema.TABLES}
        if unknown:
            parser.error(f"--table-encoding: unknown table(s) {sorted(unknown)}")
    try:
        factors = (None if args.capacity_factors is None
                   else tuple(float(x) for x in args.capacity_factors.split(",")))
    except ValueError:
        parser.error(f"--capacity-factors {args.capacity_factors!r}: expected numbers separated by commas")
    try:
        shares = (None if args.quota_shares is None
                  else tuple(float(x) for x in args.quota_shares.split(",")))
        if shares is not None and (len(shares) != 2 or not all(0 <= x <= 1 for x in shares)):
            raise ValueError
    except ValueError:
        parser.error(f"--quota-shares {args.quota_shares!r}: expected two shares in [0, 1], e.g. 0.6,0.4")
    try:
        out = generate_round(args.out_dir, args.applications, seed=args.seed, bad_rows=args.bad_rows,
                             table_format=args.table_format, encoding=encoding,
                             oversubscription=args.oversubscription,
                             reviewers_per_application=args.reviewers_per_application,
                             capacity_factors=factors, quota_shares=shares, panel=args.panel,
                             months=args.months)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({args.applications} applications, seed {args.seed}, {args.table_format})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
