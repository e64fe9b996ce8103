"""round.toml parsing: valid policy, clear errors, never code."""

import pytest

from allocation.config import parse_config
from allocation.errors import RoundError



def test_valid_policy_parses(valid_toml):
    config = parse_config(valid_toml)
    assert config.round.id == "2026-R1"
    assert config.award.levels == [0.5, 0.75, 1.0]
    assert [q.name for q in config.quotas] == ["non_capital"]
    assert config.quotas[0].min_share_fraction.numerator == 2
    assert config.group("first_time").prior_awards_max == 0


@pytest.mark.parametrize("change, expected", [
    (('id = "2026-R1"', 'id = "../etc"'), "round.id"),
    (("copay_share = 0.2", "copay_share = 1.5"), "round.copay_share"),
    (("levels = [0.5, 0.75, 1.0]", "levels = [1.0, 0.5]"), "strictly increasing"),
    (("levels = [0.5, 0.75, 1.0]", "levels = [0, 1.0]"), "(0, 1]"),
    (("budget_krw = 5_000_000_000", "budget_krw = \"5e9\""), "round.budget_krw"),
    (("min_score = 60", "min_score = 60\nmin_scroe = 3"), "unknown setting"),
    (('regions_not_in = ["Seoul", "Gyeonggi", "Incheon"]', 'regions_not_in = ["Tokyo"]'), "Tokyo"),
    (("first_time = 3.0", "veterans = 3.0"), "bonus 'veterans'"),
    (("[award]", "[awards]"), "award"),
])
def test_bad_policy_names_the_setting(change, expected, valid_toml):
    with pytest.raises(RoundError) as info:
        parse_config(valid_toml.replace(*change))
    assert expected in str(info.value)
    assert "round.toml" in str(info.value)


def test_bad_toml_is_one_clear_error():
    with pytest.raises(RoundError, match="not valid TOML"):
        parse_config("[round\nid=1")


def test_overrides_are_validated(valid_toml):
    config = parse_config(valid_toml).with_overrides(budget_krw=1_000, time_limit_s=5)
    assert config.round.budget_krw == 1_000 and config.solver.time_limit_s == 5
    assert config.quotas[0].name == "non_capital"


def test_publish_and_retention_sections_are_optional_checked_and_round_trip(valid_toml):
    from allocation.intake import config_to_toml

    plain = parse_config(valid_toml)
    assert not plain.show_staff_names and plain.retention_policy.lookup_files_days == 90
    assert "[retention]" not in config_to_toml(plain) and "[publish]" not in config_to_toml(plain)
    chosen = parse_config(valid_toml + "\n[publish]\nshow_staff_names = true\n"
                          "[retention]\nlookup_files_days = 30\nround_folder_days = 400\n")
    assert chosen.show_staff_names and chosen.retention_policy.round_folder_days == 400
    assert chosen.retention_policy.run_folders_days == 90
    assert parse_config(config_to_toml(chosen)) == chosen
    for bad, where in (("lookup_files_days = -1", "retention.lookup_files_days"),
                       ("keep_forever = true", "retention.keep_forever")):
        with pytest.raises(RoundError, match=where.replace(".", r"\.")):
            parse_config(valid_toml + f"\n[retention]\n{bad}\n")
