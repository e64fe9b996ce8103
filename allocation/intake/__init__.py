"""Intake: the round folder in, validated tables and per-row issues out.

tables          reading one table file and checking its cells (the building blocks)
round           the round's four tables and round.toml -> ValidatedRound; save/load in a run folder
officer_files   responses, appeals and replacement reviews after publication
"""

from allocation.intake.round import ValidatedRound, config_to_toml, load_validated, read_round, save_validated

__all__ = ["ValidatedRound", "config_to_toml", "load_validated", "read_round", "save_validated"]
