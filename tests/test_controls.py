"""The controls a run makes after allocating can fail: each one is shown failing on a tampered allocation.

Expected values are hand counts of the tampering done here (which line moved by how many cents)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from allocation.calc.controls import run_controls
from allocation.core.problems import InvariantViolation
from allocation.runs.pipeline import compute


def _with_moved_amounts(allocation, moves: dict[str, int]):
    """The allocation with the first paying line of the first item moved by `moves[first AGS]` cents and the
    second paying line moved back by the same, so the item still adds up."""
    item = allocation.items[0]
    paying = [line for line in item.lines if line.key > 0]
    first, second = paying[0], paying[1]
    delta = moves[first.ags]
    lines = tuple(replace(line, amount=line.amount + delta) if line is first else
                  replace(line, amount=line.amount - delta) if line is second else line for line in item.lines)
    return replace(allocation, items=(replace(item, lines=lines), *allocation.items[1:])), item.item.id


def _share_control(controls_or_problems, item_id):
    return [c for c in controls_or_problems if c.name.startswith("Anteile innerhalb") and c.item_id == item_id]


def test_a_line_a_whole_unit_off_its_exact_share_fails_the_control(fixture_workbook, rules_file):
    allocation, controls, _ = compute(fixture_workbook, rules_file)
    assert all(c.ok for c in controls)
    first_ags = next(line.ags for line in allocation.items[0].lines if line.key > 0)
    unit = allocation.book.parameters.unit
    # moved by 3 units: both moved lines end at least 2 units from their exact shares
    tampered, item_id = _with_moved_amounts(allocation, {first_ags: 3 * unit})
    with pytest.raises(InvariantViolation) as raised:
        run_controls(tampered)
    messages = [p.message for p in raised.value.problems]
    assert any("Anteile innerhalb einer Rundungseinheit" in m and item_id in m for m in messages), messages
    assert any(p.found == "2" for p in raised.value.problems if "Anteile innerhalb" in p.message)


def test_lines_within_a_unit_of_their_exact_shares_pass(fixture_workbook, rules_file):
    allocation, _controls, _ = compute(fixture_workbook, rules_file)
    for control in _share_control(run_controls(allocation), allocation.items[0].item.id):
        assert control.ok and control.actual == 0
