"""Rule-file keys `instalments:` and `notices:`: parsed with located problems, checked by every rule-file read."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from allocation.core.instalments import Schedule
from allocation.core.problems import RuleFileError
from allocation.rulefiles.rulebook import load_notice_settings, parse_rulebook
from allocation.rulefiles.yamlloc import load

ROOT = Path(__file__).resolve().parent.parent
BASE = """district: Kreis Test
valid_from: 2022
valid_to: 2022
rules:
  - {id: alle, legal_basis: x, when: {}, route: district_levy}
"""


def settings(tail: str, tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text(BASE + tail, encoding="utf-8")
    return load_notice_settings(path)


def problems(tail: str) -> list:
    with pytest.raises(RuleFileError) as error:
        parse_rulebook(BASE + tail, "r.yaml")
    return [(p.code, p.location.line) for p in error.value.problems]


def test_kreis_wesel_settings():
    found = load_notice_settings(ROOT / "rules" / "kreis-wesel.yaml")
    assert found.schedule == Schedule.monthly(15)
    assert found.kassenzeichen == "KU-{jahr}-{ags}-{umlage}"
    assert found.change_policy == "spread" and found.issuer == "Der Landrat"
    assert found.text_for("kreisumlage").approval.startswith("Haushaltssatzung 2022/2023")


def test_quarterly_with_and_without_dates(tmp_path):
    found = settings('instalments: {schedule: quarterly, dates: ["02-20", "05-20", "08-20", "11-20"], split: saarland}\n',
                     tmp_path)
    assert found.schedule == Schedule("quarterly", ((2, 20), (5, 20), (8, 20), (11, 20)), "saarland")
    assert settings("instalments: {schedule: quarterly}\n", tmp_path).schedule.days == \
        ((2, 15), (5, 15), (8, 15), (11, 15))


def test_kassenzeichen_with_a_padded_number(tmp_path):
    assert settings('notices: {kassenzeichen: "{jahr}/{ags}/{umlage}/{nr:02d}"}\n', tmp_path).kassenzeichen == \
        "{jahr}/{ags}/{umlage}/{nr:02d}"


def test_without_the_keys_there_is_no_schedule_and_the_defaults(tmp_path):
    found = settings("", tmp_path)
    assert found.schedule is None and found.kassenzeichen == "{jahr}-{ags}-{umlage}" and found.change_policy == "spread"


@pytest.mark.parametrize("tail, code, line", [
    ("instalments: {schedule: weekly, day: 1}\n", "rule-bad-instalments", 6),
    ("instalments: {schedule: monthly, day: 32}\n", "rule-bad-instalments", 6),
    ("instalments: {schedule: monthly}\n", "rule-bad-instalments", 6),
    ("instalments:\n  schedule: quarterly\n  dates: [\"02-15\", \"02-30\", \"08-15\", \"11-15\"]\n",
     "rule-bad-instalments", 8),
    ("instalments:\n  schedule: quarterly\n  dates: [\"02-15\", \"05-15\", \"08-15\"]\n", "rule-bad-instalments", 8),
    ("instalments:\n  schedule: quarterly\n  dates: [\"05-15\", \"02-15\", \"08-15\", \"11-15\"]\n",
     "rule-bad-instalments", 8),
    ("instalments: {schedule: monthly, day: 15, split: bayern}\n", "rule-bad-instalments", 6),
    ("instalments: {schedule: monthly, day: 15, tag: 3}\n", "rule-unknown-key", 6),
    ("notices:\n  kassenzeichen: \"{jahr}-{gemeinde}\"\n", "rule-bad-notices", 7),
    ("notices:\n  kassenzeichen: \"{ags.__class__}\"\n", "rule-bad-notices", 7),
    ("notices:\n  kassenzeichen: \"{ags:>1000000000}\"\n", "rule-bad-notices", 7),
    ("notices:\n  kassenzeichen: \"{ags:02d}\"\n", "rule-bad-notices", 7),
    ("notices:\n  change_policy: later\n", "rule-bad-notices", 7),
    ("notices:\n  levies: [Kreisumlage]\n", "rule-bad-notices", 7),
])
def test_bad_settings_are_located(tail, code, line):
    assert (code, line) in problems(tail)


def test_schema_accepts_the_documented_forms_and_refuses_a_wrong_one():
    schema = json.loads((ROOT / "schema" / "rules.schema.json").read_text(encoding="utf-8"))
    good = BASE + ('instalments: {schedule: quarterly, dates: ["02-15", "05-15", "08-15", "11-15"]}\n'
                   'notices: {kassenzeichen: "{jahr}-{ags}", change_policy: at_once, levies: {Kreisumlage: {reasons: x}}}\n')
    jsonschema.validate(json.loads(json.dumps(load(good)[0], default=str)), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(json.dumps(load(BASE + "instalments: {schedule: monthly}\n")[0])), schema)
