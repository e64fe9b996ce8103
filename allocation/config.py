"""round.toml: the policy of a round, parsed and checked (config is data, never code)."""

from __future__ import annotations

import tomllib
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from allocation import schema
from allocation.errors import RoundError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoundSection(_Section):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=64)]
    name: str = ""
    budget_krw: Annotated[int, Field(ge=1, strict=True)]   # 0 would fund nobody
    copay_share: Annotated[float, Field(ge=0, lt=1)]


class AwardSection(_Section):
    levels: Annotated[list[float], Field(min_length=1)]
    max_krw_per_company: Annotated[int, Field(gt=0, strict=True)]
    min_score: float = 0.0
    waitlist_size: Annotated[int, Field(ge=0)] = 50

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: list[float]) -> list[float]:
        if any(not 0 < x <= 1 for x in levels):
            raise ValueError("every level must be a fraction in (0, 1]")
        if sorted(set(levels)) != levels:
            raise ValueError("levels must be strictly increasing, e.g. [0.5, 0.75, 1.0]")
        return levels


class ScoringSection(_Section):
    weights: Annotated[dict[str, Annotated[float, Field(gt=0)]], Field(min_length=1)]
    bonus: dict[str, Annotated[float, Field(ge=0)]] = {}
    min_reviewers: Annotated[int, Field(ge=1)] = 1


class GroupRule(_Section):
    """A set of applications, defined by filters that all must hold."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")]
    regions_in: list[str] | None = None
    regions_not_in: list[str] | None = None
    prior_awards_max: Annotated[int, Field(ge=0)] | None = None
    company_sizes: list[str] | None = None

    @model_validator(mode="after")
    def _known_values(self) -> "GroupRule":
        for regions in (self.regions_in, self.regions_not_in):
            unknown = sorted(set(regions or ()) - set(schema.REGIONS))
            if unknown:
                raise ValueError(f"unknown region(s) {unknown}; use {list(schema.REGIONS)}")
        unknown = sorted(set(self.company_sizes or ()) - set(schema.COMPANY_SIZES))
        if unknown:
            raise ValueError(f"unknown company size(s) {unknown}")
        return self

    def expression(self) -> pl.Expr:
        """Boolean polars expression over the applications table."""
        expr = pl.lit(True)
        if self.regions_in is not None:
            expr &= pl.col("region").is_in(self.regions_in)
        if self.regions_not_in is not None:
            expr &= ~pl.col("region").is_in(self.regions_not_in)
        if self.prior_awards_max is not None:
            expr &= pl.col("prior_awards") <= self.prior_awards_max
        if self.company_sizes is not None:
            expr &= pl.col("company_size").is_in(self.company_sizes)
        return expr.fill_null(False)


class Quota(GroupRule):
    min_share: Annotated[float, Field(ge=0, le=1)]

    @property
    def min_share_fraction(self) -> Fraction:
        return Fraction(str(self.min_share)).limit_denominator(10_000)


# Groups a bonus may name when no quota of that name defines them.
BUILTIN_GROUPS: dict[str, GroupRule] = {
    "first_time": GroupRule(name="first_time", prior_awards_max=0),
    "non_capital": GroupRule(name="non_capital", regions_not_in=list(schema.CAPITAL_REGIONS)),
}


class SolverSection(_Section):
    strategy: Literal["auto", "cpsat", "lp_guided"] = "auto"
    time_limit_s: Annotated[float, Field(gt=0)] = 60.0
    workers: Annotated[int, Field(ge=1, le=64)] = 1   # 1 = plain deterministic search (fastest on rounds up to ~10k)
    seed: int = 0


class LifecycleSection(_Section):
    """After publication: acceptance deadline and the reserve for refills and appeals."""

    # Awards of the first publication not accepted by this date lapse (None: they never lapse).
    accept_by: date | None = None
    # Awards first offered by a refill or an appeal must be accepted within this many days of
    # that version's as-of date (and never before accept_by).
    accept_within_days: Annotated[int, Field(ge=0, le=365)] = 14
    # Share of the budget and of each GPU type's hours the first allocation may not use;
    # only refills and upheld appeals can.
    reserve_share: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    # When applications opened (informational, shown in reports).
    opens: date | None = None


class PanelSection(_Section):
    """Review-panel assignment (`voucher assign`)."""

    reviewers_per_application: Annotated[int, Field(ge=1, le=50)] = 3


class PublishSection(_Section):
    """What the public files may say about the staff (default: roles only)."""

    # true: the public audit trail and report also name the accounts that triggered and approved
    # each version (officer, approver); never the run folder or another server path.
    show_staff_names: bool = False


class RetentionSection(_Section):
    """How long personal data is kept (allocation.rounds.retention; the daily purge applies it).
    Days count from the date named; data is removed the day after the period ends."""

    # lookup files (r/, lookup.json) of a version: days after that version was published (the
    # appeal window; 90 days is the administrative-appeal period)
    lookup_files_days: Annotated[int, Field(ge=0, le=3650)] = 90
    # run folders last written this many days ago (never the newest published version's, which a
    # refill or appeal builds on, until the round is closed)
    run_folders_days: Annotated[int, Field(ge=0, le=3650)] = 90
    # the round is closed this many days after its newest publication: the applicant-data files
    # of its round folder and the newest version's run folder go too. Unset: never by schedule.
    round_folder_days: Annotated[int, Field(ge=0, le=36500)] | None = None


DEFAULT_RETENTION = RetentionSection()


class RoundConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    round: RoundSection
    award: AwardSection
    scoring: ScoringSection
    quotas: list[Quota] = Field(default=[], alias="quota")
    solver: SolverSection = SolverSection()
    lifecycle: LifecycleSection = LifecycleSection()
    panel: PanelSection | None = None   # optional: a round without [panel] is written back without it
    publish: PublishSection | None = None       # optional, like [panel]: see show_staff_names
    retention: RetentionSection | None = None   # optional, like [panel]: defaults in DEFAULT_RETENTION

    @property
    def show_staff_names(self) -> bool:
        return bool(self.publish and self.publish.show_staff_names)

    @property
    def retention_policy(self) -> RetentionSection:
        return self.retention or DEFAULT_RETENTION

    @model_validator(mode="after")
    def _names(self) -> "RoundConfig":
        names = [q.name for q in self.quotas]
        if len(names) != len(set(names)):
            raise ValueError(f"quota names must be unique, got {names}")
        for bonus in self.scoring.bonus:
            if bonus not in names and bonus not in BUILTIN_GROUPS:
                raise ValueError(
                    f"bonus '{bonus}' names no group: define a [[quota]] of that name "
                    f"or use one of {sorted(BUILTIN_GROUPS)}")
        return self

    def group(self, name: str) -> GroupRule:
        for quota in self.quotas:
            if quota.name == name:
                return quota
        return BUILTIN_GROUPS[name]

    @property
    def level_fractions(self) -> list[Fraction]:
        return [Fraction(str(x)) for x in self.award.levels]

    @property
    def copay_fraction(self) -> Fraction:
        return Fraction(str(self.round.copay_share))

    def with_overrides(self, budget_krw: int | None = None,
                       time_limit_s: float | None = None) -> "RoundConfig":
        """The same policy with an officer's run-time overrides applied."""
        data = self.model_dump(by_alias=True)
        if budget_krw is not None and (isinstance(budget_krw, bool) or not isinstance(budget_krw, int)
                                       or budget_krw < 1):
            raise RoundError(f"budget override {budget_krw!r}: the budget must be a whole number of "
                             f"KRW of at least 1 (a budget of 0 would fund nobody)")
        if budget_krw is not None:
            data["round"]["budget_krw"] = budget_krw
        if time_limit_s is not None:
            data["solver"]["time_limit_s"] = time_limit_s
        return RoundConfig.model_validate(data)


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid round policy"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown setting (typo?)"
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


def parse_config(text: str, source: str = schema.CONFIG_FILE) -> RoundConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RoundError(f"{source}: not valid TOML ({exc})") from None
    try:
        return RoundConfig.model_validate(data)
    except ValidationError as exc:
        raise RoundError(_describe(exc, source)) from None


def load_config(round_dir: Path) -> RoundConfig:
    path = Path(round_dir) / schema.CONFIG_FILE
    if not Path(round_dir).is_dir():
        raise RoundError(f"{round_dir}: round folder not found (or not a folder); give the folder that "
                         f"holds {schema.CONFIG_FILE} and the applications, requests, reviews and capacity tables")
    if not path.is_file():
        raise RoundError(f"{path}: missing — every round folder needs its {schema.CONFIG_FILE}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RoundError(f"{path}: not UTF-8 text; save round.toml as UTF-8") from None
    return parse_config(text, str(path))
