"""Instalments (Abschläge): hand-computed schedules and change plans, and properties of every plan.

The properties' oracle for what a plan adds up to is `fixed_oracle`, written here from § 25 Abs. 1 KFAG Saarland;
`instalments.fixed_amount`, the code under test, is never the expected value.
"""
from __future__ import annotations

import datetime as dt
import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation.core.instalments import Schedule, change_plan, due_date, fixed_amount, one_month_after, plan
from allocation.core.money import round_down_to_multiple, split_evenly

D = dt.date


# ------------------------------------------------------------------------------------- hand-computed


def test_monthly_15th_puts_the_remaining_cents_on_the_first_instalments():
    # 95.594,02 € = 9.559.402 Cent; 9.559.402 / 12 = 796.616 Rest 10 → Januar–Oktober 796.617, Nov/Dez 796.616
    instalments = plan(9_559_402, Schedule.monthly(15), 2022)
    assert [i.due for i in instalments] == [D(2022, m, 15) for m in range(1, 13)]
    assert [i.amount for i in instalments] == [796_617] * 10 + [796_616] * 2
    assert [i.number for i in instalments] == list(range(1, 13))
    assert sum(i.amount for i in instalments) == 9_559_402


@pytest.mark.parametrize("day", [20, 25])
def test_monthly_sachsen_anhalt_and_bavaria_days(day):
    assert [i.due for i in plan(1200, Schedule.monthly(day), 2023)] == [D(2023, m, day) for m in range(1, 13)]
    assert [i.amount for i in plan(1200, Schedule.monthly(day), 2023)] == [100] * 12


def test_monthly_day_31_is_clamped_to_the_end_of_short_months():
    dates = Schedule.monthly(31).due_dates(2023)
    assert dates[1] == D(2023, 2, 28) and dates[3] == D(2023, 4, 30) and dates[0] == D(2023, 1, 31)
    assert Schedule.monthly(31).due_dates(2024)[1] == D(2024, 2, 29)  # leap year
    assert Schedule.monthly(30).due_dates(2023)[1] == D(2023, 2, 28)


def test_quarterly_dates():
    # 1.000,01 € = 100.001 Cent / 4 = 25.000 Rest 1 → 25.001 / 25.000 / 25.000 / 25.000
    schedule = Schedule.quarterly(((2, 15), (5, 15), (8, 15), (11, 15)))
    instalments = plan(100_001, schedule, 2022)
    assert [(i.due, i.amount) for i in instalments] == [
        (D(2022, 2, 15), 25_001), (D(2022, 5, 15), 25_000), (D(2022, 8, 15), 25_000), (D(2022, 11, 15), 25_000)]


def test_quarterly_29_february_outside_a_leap_year():
    schedule = Schedule.quarterly(((2, 29), (5, 15), (8, 15), (11, 15)))
    assert schedule.due_dates(2023)[0] == D(2023, 2, 28)
    assert schedule.due_dates(2024)[0] == D(2024, 2, 29)


def test_saarland_rounds_down_to_full_euros_divisible_by_12():
    # 95.594,02 € → 95.594 € // 12 = 7.966 Rest 2 → 7.966 × 12 = 95.592,00 €; monatlich 7.966,00 €
    schedule = Schedule.monthly(20, split="saarland")
    assert fixed_amount(9_559_402, schedule) == 9_559_200
    assert [i.amount for i in plan(9_559_402, schedule, 2022)] == [796_600] * 12
    # vierteljährlich: 95.592 € / 4 = 23.898,00 €
    quarterly = Schedule.quarterly(((2, 20), (5, 20), (8, 20), (11, 20)), split="saarland")
    assert [i.amount for i in plan(9_559_402, quarterly, 2022)] == [2_389_800] * 4


def test_saarland_refuses_a_number_of_instalments_that_does_not_divide_12():
    with pytest.raises(ValueError):
        plan(120_000, Schedule("quarterly", ((1, 1), (3, 1), (6, 1), (9, 1), (12, 1)), "saarland"), 2022)


def test_negative_amount_is_split_like_its_magnitude():
    assert [i.amount for i in plan(-100_001, Schedule.quarterly(), 2022)] == [-25_001, -25_000, -25_000, -25_000]


def test_change_spread_over_the_remaining_instalments():
    # alt 1.200,00 € = 12 × 100,00 €, neu 1.500,00 €, Bescheid vom 20.06.2022: Januar–Juni (600,00 €) fällig;
    # die Differenz 300,00 € verteilt sich auf Juli–Dezember: je 50,00 € → je 150,00 €
    change = change_plan(120_000, 150_000, Schedule.monthly(15), 2022, D(2022, 6, 20), "spread")
    assert change.difference == 30_000 and change.due_before == 60_000
    assert [(line.old, line.new, line.already_due) for line in change.lines] == \
        [(10_000, 10_000, True)] * 6 + [(10_000, 15_000, False)] * 6
    assert sum(line.new for line in change.lines) == 150_000


def test_change_on_a_due_date_counts_that_instalment_as_due():
    change = change_plan(120_000, 150_000, Schedule.monthly(15), 2022, D(2022, 6, 15), "spread")
    assert sum(line.already_due for line in change.lines) == 6


def test_change_spread_puts_the_remaining_cents_first():
    # Differenz 1,00 € auf 6 offene Raten: 100 / 6 = 16 Rest 4 → 17, 17, 17, 17, 16, 16 Cent
    change = change_plan(120_000, 120_100, Schedule.monthly(15), 2022, D(2022, 6, 30), "spread")
    assert [line.difference for line in change.lines if not line.already_due] == [17, 17, 17, 17, 16, 16]


def test_change_at_once_on_the_next_instalment():
    # Erstattung 300,00 € auf einmal mit der nächsten Rate (15.07.): 100,00 − 300,00 = −200,00 €
    change = change_plan(120_000, 90_000, Schedule.monthly(15), 2022, D(2022, 7, 1), "at_once")
    open_lines = [line for line in change.lines if not line.already_due]
    assert (open_lines[0].due, open_lines[0].new) == (D(2022, 7, 15), -20_000)
    assert all(line.new == 10_000 for line in open_lines[1:])
    assert sum(line.new for line in change.lines) == 90_000


def test_change_after_the_last_instalment_is_due_one_month_after_the_notice():
    change = change_plan(120_000, 150_000, Schedule.monthly(15), 2022, D(2022, 12, 20), "spread")
    extra = change.lines[-1]
    assert (extra.number, extra.due, extra.old, extra.new) == (13, D(2023, 1, 20), 0, 30_000)
    assert sum(line.new for line in change.lines) == 150_000


def test_one_month_after_clamps():
    assert one_month_after(D(2022, 1, 31)) == D(2022, 2, 28)
    assert one_month_after(D(2022, 12, 31)) == D(2023, 1, 31)


def test_money_helpers_by_hand():
    assert split_evenly(10, 3) == [4, 3, 3]
    assert split_evenly(-10, 3) == [-4, -3, -3]
    assert split_evenly(500, 3, unit=100) == [200, 200, 100]
    assert round_down_to_multiple(9_559_402, 1200) == 9_559_200
    assert round_down_to_multiple(-1_201, 1200) == -1_200
    with pytest.raises(ValueError):
        split_evenly(150, 2, unit=100)


def test_due_date_refuses_impossible_days():
    with pytest.raises(ValueError):
        due_date(2022, 13, 1)
    with pytest.raises(ValueError):
        due_date(2022, 1, 32)


# ------------------------------------------------------------------------------------------ properties

amounts = st.integers(min_value=-10**12, max_value=10**12)
years = st.integers(min_value=1990, max_value=2100)
month_days = st.tuples(st.integers(1, 12), st.integers(1, 31))


@st.composite
def schedules(draw):
    split = draw(st.sampled_from(["equal", "saarland"]))
    if draw(st.booleans()):
        return Schedule.monthly(draw(st.integers(1, 31)), split)
    days = draw(st.lists(month_days, min_size=4, max_size=4, unique_by=lambda md: md[0]))
    return Schedule.quarterly(tuple(sorted(days)), split)


def fixed_oracle(amount: int, schedule: Schedule) -> int:
    """What the instalments of `amount` cents add up to: the amount itself; under `saarland` the amount "auf einen
    vollen und durch 12 teilbaren Betrag in Euro abzurunden", i.e. the largest multiple of 12 € (1,200 cents) not
    above its magnitude, with its sign (a refund is split like its magnitude)."""
    if schedule.split != "saarland":
        return amount
    whole_twelves = math.floor(Fraction(abs(amount), 1200))
    return (-1 if amount < 0 else 1) * whole_twelves * 1200


def test_fixed_oracle_by_hand():
    saarland = Schedule.monthly(20, "saarland")
    # 95.594,02 € → 95.592,00 € (7.966 × 12 €); 11,99 € → 0; −12,01 € → −12,00 €; 12,00 € stays
    assert [fixed_oracle(a, saarland) for a in (9_559_402, 1_199, -1_201, 1_200)] == [9_559_200, 0, -1_200, 1_200]
    assert fixed_oracle(9_559_402, Schedule.monthly(15)) == 9_559_402


@given(amounts, schedules(), years)
def test_instalments_add_up_to_the_fixed_amount(amount, schedule, year):
    instalments = plan(amount, schedule, year)
    assert sum(i.amount for i in instalments) == fixed_oracle(amount, schedule)
    parts = [i.amount for i in instalments]
    unit = 100 if schedule.split == "saarland" else 1
    assert all(part % unit == 0 for part in parts)  # Saarland: whole euros
    assert max(parts) - min(parts) <= unit  # equal up to one unit
    assert parts == sorted(parts, key=abs, reverse=True)  # the remaining units sit on the first instalments


@given(amounts, schedules(), years)
def test_due_dates_are_real_dates_in_the_budget_year_and_increase(amount, schedule, year):
    dates = [i.due for i in plan(amount, schedule, year)]
    assert all(d.year == year for d in dates)
    assert all(a < b for a, b in zip(dates, dates[1:]))


@given(st.integers(min_value=0, max_value=10**12))
def test_saarland_amount_is_a_full_euro_amount_divisible_by_12_and_at_most_12_euros_lower(amount):
    fixed = fixed_amount(amount, Schedule.monthly(20, "saarland"))
    assert fixed % 1200 == 0 and 0 <= amount - fixed < 1200
    assert all(i.amount % 100 == 0 and i.amount == fixed // 12
               for i in plan(amount, Schedule.monthly(20, "saarland"), 2022))


@given(amounts, amounts, schedules(), years, st.integers(0, 400), st.sampled_from(["spread", "at_once"]))
def test_change_plan_keeps_what_is_due_and_adds_up_to_the_new_amount(old, new, schedule, year, offset, policy):
    notice = dt.date(year, 1, 1) + dt.timedelta(days=offset)
    change = change_plan(old, new, schedule, year, notice, policy)
    assert sum(line.new for line in change.lines) == fixed_oracle(new, schedule)
    assert sum(line.old for line in change.lines) == fixed_oracle(old, schedule)
    assert (change.old_amount, change.new_amount) == (fixed_oracle(old, schedule), fixed_oracle(new, schedule))
    assert all(line.new == line.old for line in change.lines if line.already_due)
    assert all((line.due <= notice) == line.already_due for line in change.lines)
