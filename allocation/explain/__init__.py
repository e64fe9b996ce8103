"""Why each application got what it got.

reasons    the limits the next award level would break, score_needed, each limit's use
outcomes   one outcome row per input application (status, money, reason in words); award lines
"""
