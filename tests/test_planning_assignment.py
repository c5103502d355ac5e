from memfit.planning.assignment import FirstFit
from memfit.planning.lifetimes import Buffer


def test_conflicts_are_the_buffers_live_at_a_common_step():
    packer = FirstFit(
        [Buffer("a", 1, 0, 1), Buffer("b", 1, 1, 2), Buffer("c", 1, 3, 3), Buffer("d", 1, 0, 3)],
        16,
    )
    assert [sorted(c) for c in packer.conflicts] == [[1, 3], [0, 3], [3], [0, 1, 2]]
    assert packer.sizes == [16, 16, 16, 16]


def test_a_buffer_goes_into_the_lowest_gap_that_fits():
    buffers = [
        Buffer("low", 32, 0, 2),
        Buffer("high", 32, 0, 2),
        Buffer("gone", 32, 0, 0),  # dead before "small" starts: its bytes are free
        Buffer("small", 16, 1, 2),
        Buffer("big", 48, 1, 2),
    ]
    packer = FirstFit(buffers, 16)
    offsets, size = packer.place([0, 2, 1, 3, 4])
    # low [0,32), gone [32,64), high [64,96); small fits the 32-byte gap gone left at 32;
    # big (48 bytes) does not fit the remaining 16 bytes, so it goes on top
    assert offsets == [0, 64, 32, 32, 96]
    assert size == 144


def test_sizes_round_up_to_the_alignment():
    packer = FirstFit([Buffer("a", 1, 0, 0), Buffer("b", 17, 0, 0)], 16)
    assert packer.place([0, 1]) == ([0, 16], 48)
    assignment = packer.assignment([1, 0], "test")
    assert dict(assignment.offsets) == {"a": 32, "b": 0}
    assert (assignment.size, assignment.algorithm, assignment.optimal) == (48, "test", False)
