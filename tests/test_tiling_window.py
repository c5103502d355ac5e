"""Window arithmetic of spatial tiling, against hand-computed cases and brute force."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memfit.errors import MemfitError
from memfit.tiling.chain import TilingError
from memfit.tiling.window import (
    POINTWISE,
    AxisGeometry,
    AxisWindow,
    TileWindow,
    chain_windows,
    input_window,
    split,
)


def test_split_even_and_uneven_like_array_split():
    assert split(8, 2) == ((0, 4), (4, 8))
    assert split(10, 4) == ((0, 3), (3, 6), (6, 8), (8, 10))
    for size in range(1, 12):
        for parts in range(1, size + 1):
            lengths = [b - a for a, b in split(size, parts)]
            assert lengths == [len(p) for p in np.array_split(np.arange(size), parts)]


def test_split_refuses_empty_parts():
    with pytest.raises(TilingError, match="at most 3"):
        split(3, 4)
    with pytest.raises(TilingError):
        split(3, 0)
    assert issubclass(TilingError, MemfitError)


def test_stride_one_same_padding():
    k3 = AxisGeometry(kernel=3, pad_before=1)
    # interior rows read a one-row halo on each side and pad nothing
    assert input_window((4, 8), 16, k3) == AxisWindow(3, 9, 0, 0)
    # the first tile pads at the top only, the last at the bottom only
    assert input_window((0, 8), 16, k3) == AxisWindow(0, 9, 1, 0)
    assert input_window((8, 16), 16, k3) == AxisWindow(7, 16, 0, 1)
    # one tile over the whole map is the op as it was
    assert input_window((0, 16), 16, k3) == AxisWindow(0, 16, 1, 1)


def test_stride_two():
    # 3x3 stride 2, pads (0, 1) on 8 rows ("SAME"): 4 output rows read rows 2r..2r+2
    g = AxisGeometry(kernel=3, stride=2)
    assert input_window((0, 2), 8, g) == AxisWindow(0, 5, 0, 0)
    assert input_window((2, 4), 8, g) == AxisWindow(4, 8, 0, 1)
    # 2x2 pooling stride 2: no overlap between neighbouring tiles
    pool = AxisGeometry(kernel=2, stride=2)
    assert input_window((0, 3), 12, pool) == AxisWindow(0, 6, 0, 0)
    assert input_window((3, 6), 12, pool) == AxisWindow(6, 12, 0, 0)


def test_dilation():
    # 3 taps 2 apart span 5 rows
    g = AxisGeometry(kernel=3, dilation=2, pad_before=2)
    assert input_window((0, 1), 10, g) == AxisWindow(0, 3, 2, 0)
    assert input_window((5, 7), 10, g) == AxisWindow(3, 9, 0, 0)
    assert input_window((8, 10), 10, g) == AxisWindow(6, 10, 0, 2)


def test_unused_trailing_padding_is_not_added():
    # 3x3 stride 2 with pads (1, 1) on 8 rows gives 4 rows; the last reads rows 5..7 only
    g = AxisGeometry(kernel=3, stride=2, pad_before=1)
    assert input_window((2, 4), 8, g) == AxisWindow(3, 8, 0, 0)


def test_pointwise_and_pad_geometry():
    assert input_window((3, 5), 9, POINTWISE) == AxisWindow(3, 5, 0, 0)
    pad2 = AxisGeometry(pad_before=2)  # a pad op adding two rows on top
    assert input_window((0, 4), 6, pad2) == AxisWindow(0, 2, 2, 0)
    assert input_window((4, 10), 6, pad2) == AxisWindow(2, 6, 0, 2)


def test_window_of_padding_only_is_refused():
    with pytest.raises(TilingError, match="read only padding"):
        input_window((0, 2), 6, AxisGeometry(pad_before=2))
    with pytest.raises(TilingError, match="read only padding"):
        input_window((0, 1), 6, AxisGeometry(kernel=2, pad_before=3))


@settings(max_examples=300, deadline=None)
@given(
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 3),
    data=st.data(),
)
def test_window_is_exactly_the_taps_of_the_output_rows(kernel, stride, dilation, data):
    span = (kernel - 1) * dilation + 1
    pad_before = data.draw(st.integers(0, span + 1))
    pad_after = data.draw(st.integers(0, span + 1))
    size = data.draw(st.integers(max(1, span - pad_before - pad_after), 30))
    out_size = (size + pad_before + pad_after - span) // stride + 1
    r0 = data.draw(st.integers(0, out_size - 1))
    r1 = data.draw(st.integers(r0 + 1, out_size))
    taps = {r * stride - pad_before + i * dilation for r in range(r0, r1) for i in range(kernel)}
    first, last = min(taps), max(taps)  # the window is their hull (with dilation, gaps too)
    g = AxisGeometry(kernel, stride, dilation, pad_before)
    if last < 0 or first >= size:
        with pytest.raises(TilingError):
            input_window((r0, r1), size, g)
        return
    window = input_window((r0, r1), size, g)
    assert (window.start, window.stop - 1) == (max(first, 0), min(last, size - 1))
    assert window.pad_before == max(-first, 0)
    assert window.pad_after == max(last - (size - 1), 0)
    # padding the window as the tile does gives as many output rows as asked for
    padded = window.size + window.pad_before + window.pad_after
    assert (padded - span) // stride + 1 == r1 - r0


def test_chain_walks_back_from_the_output_tile():
    conv3 = (AxisGeometry(3, pad_before=1), AxisGeometry(3, pad_before=1))
    conv3s2 = (AxisGeometry(3, 2, pad_before=1), AxisGeometry(3, 2, pad_before=1))
    # 16x16 -> conv3 -> 16x16 -> conv3 s2 -> 8x8; tile rows [4, 8), cols [0, 4)
    windows = chain_windows([conv3, conv3s2], [(16, 16), (16, 16)], (4, 8), (0, 4))
    assert windows[1] == TileWindow(AxisWindow(7, 16, 0, 0), AxisWindow(0, 8, 1, 0))
    assert windows[0] == TileWindow(AxisWindow(6, 16, 0, 1), AxisWindow(0, 9, 1, 0))
    assert windows[0].pads == (0, 1, 1, 0)


def test_chain_refuses_a_tile_that_would_read_only_padding_upstream():
    pad2 = (AxisGeometry(pad_before=2), POINTWISE)
    with pytest.raises(TilingError):
        chain_windows([pad2, (POINTWISE, POINTWISE)], [(4, 4), (8, 4)], (0, 2), (0, 4))
