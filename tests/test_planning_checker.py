import pytest

from memfit.errors import InternalError
from memfit.planning.assignment import Assignment
from memfit.planning.checker import check_assignment
from memfit.planning.lifetimes import Buffer

BUFFERS = [Buffer("a", 100, 0, 2), Buffer("b", 40, 2, 3), Buffer("c", 64, 3, 4)]


def _plan(size=160, **offsets):
    return Assignment({"a": 0, "b": 112, "c": 0, **offsets}, size, "hand-made")


def test_valid_plan_passes():
    check_assignment(BUFFERS, _plan(), 16)
    # a and c share bytes but are never live together; b ends exactly at the arena's end
    check_assignment(BUFFERS, _plan(size=152), 16)


def test_buffers_that_touch_do_not_overlap():
    check_assignment(BUFFERS, _plan(b=100), 4)


def test_overlap_names_both_buffers_steps_and_bytes():
    with pytest.raises(InternalError) as info:
        check_assignment(BUFFERS, _plan(b=96), 16)
    message = str(info.value)
    assert "a bug in memfit" in message
    assert "'a' (steps 0..2, bytes [0, 100))" in message
    assert "'b' (steps 2..3, bytes [96, 136))" in message
    assert "live at step 2" in message
    assert "hand-made" in message


def test_overlap_is_found_whatever_the_buffer_order():
    with pytest.raises(InternalError, match=r"'b'.*'c'"):
        check_assignment(list(reversed(BUFFERS)), _plan(size=192, c=128), 16)


def test_misaligned_offset():
    with pytest.raises(
        InternalError, match=r"'b' \(steps 2..3, bytes \[104, 144\)\) is not aligned"
    ):
        check_assignment(BUFFERS, _plan(b=104), 16)


def test_outside_the_arena():
    with pytest.raises(InternalError, match="outside the 150-byte arena"):
        check_assignment(BUFFERS, _plan(size=150), 16)
    with pytest.raises(InternalError, match="outside"):
        check_assignment(BUFFERS, _plan(a=-16), 16)


def test_missing_and_unknown_offsets():
    with pytest.raises(InternalError, match=r"missing for \['c'\]"):
        check_assignment(BUFFERS, Assignment({"a": 0, "b": 112}, 160, "x"), 16)
    with pytest.raises(InternalError, match=r"unknown \['z'\]"):
        check_assignment(BUFFERS, _plan(z=0), 16)


def test_empty_buffer_overlaps_nothing():
    buffers = [*BUFFERS, Buffer("empty", 0, 0, 4)]
    check_assignment(buffers, _plan(empty=16), 16)
