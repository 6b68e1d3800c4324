"""Rule files (YAML) -> `Rulebook`, with a schema check that names file:line:column for every problem.

The rule file format is a contract with auditors (see README, "Regeldateien"). This module is the rule files'
public face: what the other stages import, gathered from the modules that do the work.

    loading.py          a file or its text -> located YAML -> `Rulebook` and its warnings (`load_rulebook`,
                        `parse_rulebook`); the places of `domains:` values; the notice settings alone
    validation.py       the schema: each section read into frozen `Rule`, `Example`, `Levy` records that remember
                        their line, every problem collected; durable_rules' limits; departures from the state's law
    notice_settings.py  the keys `instalments:` and `notices:`
    binding.py          `bind` meets a rulebook with an input workbook: every column a rule names is resolved to
                        the workbook's header (`check_columns`), and the cells the rules compare are checked for
                        type and declared domain (`check_data`)

Checks across rules (overlap, shadowing, gaps) live in `calc/analysis.py`.

Limits (README, "Rule files", Limits): a file of at most MAX_FILE_BYTES, no YAML anchors or aliases and at
most 100 nesting levels (yamlloc.py), conditions within durable_rules' measured limits (`_check_size`).
A file that passes is finally compiled into the same durable_rules rulesets a run uses (`_compile`), so
`check` and `run` never disagree about it.
"""
from __future__ import annotations

from .binding import bind, check_columns, check_data, check_levy_columns, rename_columns
from .loading import (MAX_FILE_BYTES, domain_sources, installation_letterhead_path, load_installation_letterhead,
                      load_notice_settings, load_rulebook, load_rulebooks, parse_rulebook, rule_notice_settings)
from .notice_settings import KASSENZEICHEN_FIELDS, Letterhead, LevyNoticeText, NoticeSettings
from .validation import EXAMPLE_KEYS, HIT_POLICIES, LEVY_KEYS, RATE_LIMITS, RULE_KEYS, TOP_KEYS, state_law_schedule

__all__ = ["load_rulebook", "load_rulebooks", "parse_rulebook", "check_columns", "check_levy_columns", "check_data",
           "bind", "rename_columns", "domain_sources", "TOP_KEYS", "RULE_KEYS", "LEVY_KEYS", "RATE_LIMITS",
           "HIT_POLICIES", "NoticeSettings", "LevyNoticeText", "load_notice_settings", "load_installation_letterhead",
           "rule_notice_settings", "installation_letterhead_path", "KASSENZEICHEN_FIELDS", "Letterhead", "EXAMPLE_KEYS",
           "MAX_FILE_BYTES", "state_law_schedule"]
