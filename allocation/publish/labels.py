"""Words for the public pages: every status and reason code in plain Korean and English."""

from __future__ import annotations

STATUS = {
    "awarded": ("선정", "awarded"),
    "waitlisted": ("예비 선정", "waitlisted"),
    "not_selected": ("미선정", "not selected"),
    "ineligible": ("심사 제외", "not eligible"),
}
REASON = {
    "funded": ("신청액 전액 지원", "funded in full"),
    "funded_partially": ("신청액 일부 지원", "funded in part"),
    "below_min_score": ("최저 점수 미달", "score below the round's minimum"),
    "budget_exhausted": ("사업 예산 소진", "the programme budget ran out"),
    "company_cap": ("기업당 지원 한도 도달", "the per-company limit was reached"),
    "quota": ("의무 배정 비율 유지", "a minimum share for a group had to be kept"),
    "not_optimal": ("최적화 미완료", "the optimisation stopped early"),
    "request_too_small": ("신청 시간이 너무 적음", "no award level grants a whole GPU-hour"),
    "declined": ("선정 후 포기", "award declined by the applicant"),
    "lapsed": ("수락 기한 경과", "award not accepted in time"),
    "missing_application_id": ("접수번호 누락", "application id missing"),
    "duplicate_application_id": ("접수번호 중복", "application id used twice"),
    "invalid_field": ("신청서 항목 오류", "an entry of the application form is invalid"),
    "invalid_business_no": ("사업자등록번호 오류", "invalid business registration number"),
    "no_request": ("GPU 신청 없음", "no GPU hours requested"),
    "invalid_request": ("GPU 신청 항목 오류", "an entry of the GPU request is invalid"),
    "missing_reviews": ("평가 미완료", "review incomplete"),
    "invalid_review": ("평가 항목 오류", "a review entry is invalid"),
}


def status_label(code: str | None) -> str:
    ko, en = STATUS.get(code or "", (code or "-", code or "-"))
    return f"{ko} / {en}"


def reason_label(code: str | None) -> str:
    """capacity_<GPU>_exhausted names its GPU type; unknown codes are shown as they are."""
    code = code or ""
    if code.startswith("capacity_") and code.endswith("_exhausted"):
        gpu = code.removeprefix("capacity_").removesuffix("_exhausted")
        if "@" in gpu:   # GPU capacity by month: capacity_H100@2026-05_exhausted
            gpu, month = gpu.split("@", 1)
            return f"{gpu} GPU {month} 사용 시간 소진 / {gpu} in {month} is full"
        return f"{gpu} GPU 사용 시간 소진 / {gpu} GPU-hours ran out"
    ko, en = REASON.get(code, (code or "-", code or "-"))
    return f"{ko} / {en}"
