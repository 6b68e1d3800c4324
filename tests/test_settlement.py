"""The provisional period continued and settled (Art. 19 Abs. 3 BayFAG), and every profile's instalments.

Art. 19 Abs. 3 BayFAG (read in the BY profile): until the levy is fixed, the Kreis collects "vorläufige monatliche
Teilbeträge in Höhe der im abgelaufenen Haushaltsjahr zuletzt erhobenen monatlichen Teilbeträge"; once fixed,
"ist über diese vorläufigen Zahlungen zum nächsten Fälligkeitszeitpunkt (Abs. 1 Satz 2) abzurechnen"; Abs. 1
Satz 2: "mit einem Zwölftel ihres Jahresbetrags am 25. eines jeden Monats fällig".
"""
from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from openpyxl import Workbook

from allocation.cli import main
from allocation.core import states
from allocation.core.instalments import Schedule, plan, provisional_instalment, settlement_plan
from allocation.rulefiles.rulebook import state_law_schedule

BAVARIA = Schedule.monthly(25)


def test_a_notice_of_15_april_settles_january_to_march_at_the_25_april():
    # final 120,000.00 €, 1/12 = 10,000.00 €; last year 108,000.00 €, its last instalment 9,000.00 €
    provisional = provisional_instalment(108_000_00, BAVARIA, 2022)
    assert provisional == 9_000_00
    lines = settlement_plan(120_000_00, BAVARIA, 2023, dt.date(2023, 4, 15), provisional)
    by_month = {line.due.month: (line.amount, line.kind) for line in lines}
    assert [by_month[m] for m in (1, 2, 3)] == [(9_000_00, "vorläufig")] * 3  # paid 25.01., 25.02., 25.03.
    # 25.04.: its own 10,000 + 3 × (10,000 − 9,000) = 13,000.00 €
    assert by_month[4] == (13_000_00, "Abrechnung")
    assert all(by_month[m] == (10_000_00, "regulär") for m in range(5, 13))
    assert [line.due for line in lines] == [dt.date(2023, m, 25) for m in range(1, 13)]
    # 3 × 9,000 + 13,000 + 8 × 10,000 = 120,000
    assert sum(line.amount for line in lines) == 120_000_00


def test_last_years_last_instalment_is_the_provisional_one():
    # 100,000.01 € in twelfths: 8,333.34 once (the cent left over goes to the first) and 8,333.33 eleven times
    assert provisional_instalment(100_000_01, BAVARIA, 2022) == 8_333_33
    assert plan(100_000_01, BAVARIA, 2022)[0].amount == 8_333_34


def test_a_provisional_amount_above_the_final_one_is_credited_at_the_next_due_date():
    # final 60,000 € (5,000/month), provisional 6,000/month, notice 30.06.: Jan–Jun paid 36,000; 25.07.:
    # 5,000 + 6 × (5,000 − 6,000) = −1,000 (a credit); Aug–Dec 5 × 5,000 = 25,000; 36,000 − 1,000 + 25,000 = 60,000
    lines = settlement_plan(60_000_00, BAVARIA, 2023, dt.date(2023, 6, 30), 6_000_00)
    assert [line.amount for line in lines if line.kind == "Abrechnung"] == [-1_000_00]
    assert sum(line.amount for line in lines) == 60_000_00


def test_a_notice_after_the_last_due_date_settles_one_month_later():
    lines = settlement_plan(12_000_00, BAVARIA, 2023, dt.date(2023, 12, 28), 900_00)
    # 12 × 900 paid; 12,000 − 10,800 = 1,200 due 28.01.2024
    assert lines[-1].kind == "Abrechnung nach Jahresende" and lines[-1].due == dt.date(2024, 1, 28)
    assert lines[-1].amount == 1_200_00 and sum(line.amount for line in lines) == 12_000_00


def _schedules() -> list[tuple[str, Schedule]]:
    return [(p.state, state_law_schedule(p.applied("instalments"))) for p in states.profiles()
            if p.applied("instalments") is not None]


def test_some_profiles_fix_their_instalments():
    assert "BY" in dict(_schedules())


@pytest.mark.parametrize("state,schedule", _schedules())
@settings(max_examples=60, deadline=None)
@given(amount=st.integers(0, 10**12), previous=st.integers(0, 10**12), day=st.integers(0, 364),
       year=st.integers(2018, 2030))
def test_every_profiles_instalments_add_up_and_settle_to_the_final_amount(state, schedule, amount, previous, day,
                                                                           year):
    # the oracle: the year's instalments are the fixed amount (Saarland: rounded down to a multiple of 12 €)
    fixed = amount - amount % 1200 if schedule.split == "saarland" else amount
    regular = plan(amount, schedule, year)
    assert sum(i.amount for i in regular) == fixed
    assert len(regular) == len(schedule.days)
    provisional = provisional_instalment(previous, schedule, year - 1)
    notice = dt.date(year, 1, 1) + dt.timedelta(days=day)
    lines = settlement_plan(amount, schedule, year, notice, provisional)
    paid = [line for line in lines if line.kind == "vorläufig"]
    assert all(line.due <= notice and line.amount == provisional for line in paid)
    assert sum(line.amount for line in lines) == fixed  # provisional payments + settlement = the final amount
    assert all(line.due > notice for line in lines if line.kind != "vorläufig")


# ------------------------------------------------------------------------------ end to end, as a Kämmerei would


def _book(path: Path, year: int, base: int) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.title = "Parameter"
    for row in [["Parameter", "Wert"], ["Kreis", "Landkreis Test"], ["Haushaltsjahr", year]]:
        sheet.append(row)
    members = book.create_sheet("Gemeinden")
    members.append(["AGS", "Gemeinde", "Steuerkraftzahlen", "Schluesselzuweisungen"])
    members.append(["09171111", "Gemeinde A", base, 0])
    rates = book.create_sheet("Umlagesaetze")
    rates.append(["Umlage", "Bestandteil", "Satz"])
    rates.append(["kreisumlage", None, 50])
    book.save(path)
    return path


RULES = """\
district: Landkreis Test
state: BY
valid_from: 2022
valid_to: 2023
levies:
  - id: kreisumlage
    name: Kreisumlage
    legal_basis: "Art. 18 BayFAG"
    base: {Steuerkraftzahlen: 100, Schluesselzuweisungen: 80}
notices:
  issuer: Landratsamt Test
"""


@pytest.mark.skipif(shutil.which("typst") is None and not __import__("importlib").util.find_spec("typst"),
                    reason="notices need typst")
def test_a_bavarian_first_notice_in_april_settles_the_provisional_instalments(tmp_path, capsys):
    rules = tmp_path / "landkreis-test.yaml"
    rules.write_text(RULES, encoding="utf-8")  # no instalments: the profile's (25th, twelfths) apply
    # 2022: base 216,000 € × 50 % = 108,000 € -> 9,000 €/month; 2023: 240,000 € × 50 % = 120,000 € -> 10,000 €/month
    before, now = tmp_path / "ergebnis-2022.xlsx", tmp_path / "ergebnis-2023.xlsx"
    assert main(["run", str(_book(tmp_path / "e2022.xlsx", 2022, 216_000)), "--rules", str(rules),
                 "-o", str(before)]) == 0
    assert main(["run", str(_book(tmp_path / "e2023.xlsx", 2023, 240_000)), "--rules", str(rules),
                 "-o", str(now)]) == 0
    capsys.readouterr()
    # without the previous year's result, a notice after the 25 January is refused (Art. 19 Abs. 3 BayFAG)
    assert main(["notices", str(now), "-o", str(tmp_path / "x"), "--date", "2023-04-15", "--json"]) == 3
    assert "notices-provisional-missing" in capsys.readouterr().out
    assert not (tmp_path / "x").exists()
    assert main(["notices", str(now), "-o", str(tmp_path / "bescheide"), "--date", "2023-04-15",
                 "--provisional-from", str(before)]) == 0
    with open(tmp_path / "bescheide" / "Abschlaege.csv", encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream, delimiter=";"))
    header, lines = rows[0], rows[1:]
    due = [line[header.index("Faellig")] for line in lines]
    amounts = [line[header.index("Betrag")] for line in lines]
    assert due == [f"25.{m:02d}.2023" for m in range(1, 13)] or due == [f"2023-{m:02d}-25" for m in range(1, 13)]
    # 3 × 9.000,00 paid provisionally, 13.000,00 on 25.04., then 10.000,00
    assert amounts == ["9000,00"] * 3 + ["13000,00"] + ["10000,00"] * 8
    # the year adds up: 27,000 + 13,000 + 80,000 = 120,000 €
    from decimal import Decimal
    assert sum(Decimal(a.replace(",", ".")) for a in amounts) == Decimal("120000.00")


@pytest.mark.skipif(not __import__("importlib").util.find_spec("typst"), reason="notices need typst")
def test_a_change_notice_after_a_settling_first_notice_changes_what_that_notice_set(tmp_path, capsys):
    """Regression (adversarial pass): the change notice started from twelve equal twelfths, not from the
    instalments the first notice set, and so stated wrong earlier instalments and collected too little."""
    rules = tmp_path / "landkreis-test.yaml"
    rules.write_text(RULES, encoding="utf-8")
    runs = {}
    # 2022: 2,469.14 € × 50 % = 1,234.57 € (123,457 cents: 10,289 once, then 10,288; the last is 102.88 €)
    # 2023: 19,753.10 € × 50 % = 9,876.55 €; corrected: 20,000.00 € × 50 % = 10,000.00 €
    for name, year, base in (("2022", 2022, 2469.14), ("2023", 2023, 19753.10), ("2023b", 2023, 20000)):
        runs[name] = tmp_path / f"ergebnis-{name}.xlsx"
        assert main(["run", str(_book(tmp_path / f"e{name}.xlsx", year, base)), "--rules", str(rules),
                     "-o", str(runs[name])]) == 0
    assert main(["notices", str(runs["2023"]), "-o", str(tmp_path / "erst"), "--date", "2023-04-15",
                 "--provisional-from", str(runs["2022"])]) == 0
    capsys.readouterr()
    change = ["notices", str(runs["2023b"]), "-o", str(tmp_path / "aenderung"), "--date", "2023-04-20",
              "--previous", str(runs["2023"])]
    # without the date of the first notice the change notice cannot know what that notice set
    assert main(change + ["--json"]) == 3
    assert "notices-provisional-missing" in capsys.readouterr().out
    assert main(change + ["--settled-on", "2023-04-15", "--json"]) == 3  # it settled: the previous year is needed
    assert "--previous-year" in capsys.readouterr().out
    assert main(change + ["--settled-on", "2023-04-15", "--provisional-from", str(runs["2022"])]) == 0
    with open(tmp_path / "aenderung" / "Abschlaege.csv", encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream, delimiter=";"))
    header, lines = rows[0], rows[1:]
    old = [line[header.index("Bisher")] for line in lines]
    new = [line[header.index("Betrag")] for line in lines]
    # what the first notice set: 3 × 102.88 paid provisionally; 25.04.: 823.05 + 3 × (823.05 − 102.88) = 2,983.56;
    # then 823.05 (May–Jul: 987,655 cents = 7 × 82,305 + 5 × 82,304) and 823.04 (Aug–Dec)
    assert old == ["102,88"] * 3 + ["2983,56"] + ["823,05"] * 3 + ["823,04"] * 5
    # + 123.45 € spread over the 9 open instalments: 13.72 × 6 and 13.71 × 3 (12,345 cents = 9 × 1,371 + 6)
    assert new == ["102,88"] * 3 + ["2997,28"] + ["836,77"] * 3 + ["836,76"] * 2 + ["836,75"] * 3
    from decimal import Decimal
    assert sum(Decimal(a.replace(",", ".")) for a in new) == Decimal("10000.00")


@pytest.mark.skipif(not __import__("importlib").util.find_spec("typst"), reason="notices need typst")
def test_the_first_due_date_itself_needs_the_previous_year(tmp_path, capsys):
    """Art. 19 Abs. 3 BayFAG: last year's instalments run on until the levy is fixed, so a first notice dated on
    the first due date (25.01.) must settle them (without the previous year's result: refused); one dated the day
    before falls before any instalment and needs nothing."""
    rules = tmp_path / "landkreis-test.yaml"
    rules.write_text(RULES, encoding="utf-8")
    now = tmp_path / "ergebnis-2023.xlsx"
    assert main(["run", str(_book(tmp_path / "e2023.xlsx", 2023, 240_000)), "--rules", str(rules),
                 "-o", str(now)]) == 0
    capsys.readouterr()
    assert main(["notices", str(now), "-o", str(tmp_path / "am-25"), "--date", "2023-01-25", "--json"]) == 3
    assert "notices-provisional-missing" in capsys.readouterr().out
    assert not (tmp_path / "am-25").exists()
    assert main(["notices", str(now), "-o", str(tmp_path / "am-24"), "--date", "2023-01-24"]) == 0


@pytest.mark.skipif(not __import__("importlib").util.find_spec("typst"), reason="notices need typst")
def test_a_change_notice_may_be_dated_the_day_of_the_first_notice(tmp_path, capsys):
    """A correction sent out the same day as the first notice: --first-notice equal to --date is accepted (only a
    first notice after the change notice is refused)."""
    rules = tmp_path / "landkreis-test.yaml"
    rules.write_text(RULES, encoding="utf-8")
    runs = {}
    for name, year, base in (("2022", 2022, 216_000), ("2023", 2023, 240_000), ("2023b", 2023, 250_000)):
        runs[name] = tmp_path / f"ergebnis-{name}.xlsx"
        assert main(["run", str(_book(tmp_path / f"e{name}.xlsx", year, base)), "--rules", str(rules),
                     "-o", str(runs[name])]) == 0
    assert main(["notices", str(runs["2023"]), "-o", str(tmp_path / "erst"), "--date", "2023-04-15",
                 "--provisional-from", str(runs["2022"])]) == 0
    change = ["notices", str(runs["2023b"]), "-o", str(tmp_path / "aenderung"), "--previous", str(runs["2023"]),
              "--provisional-from", str(runs["2022"]), "--first-notice", "2023-04-15"]
    capsys.readouterr()
    assert main(change + ["--date", "2023-04-14", "--json"]) == 3  # the first notice would come after it
    assert "--first-notice" in capsys.readouterr().out
    assert main(change + ["--date", "2023-04-15"]) == 0
