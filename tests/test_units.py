"""Byte sizes as users write them."""

import pytest

from memfit.errors import UsageError
from memfit.units import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("65536", 65536),
        ("96KiB", 96 * 1024),
        ("96kib", 96 * 1024),
        ("96K", 96 * 1024),
        ("96 KB", 96_000),
        ("1.5MB", 1_500_000),
        ("1.5MiB", 1_572_864),
        ("2M", 2 * 1024 * 1024),
        ("1GB", 10**9),
        ("512B", 512),
        (".5KiB", 512),
        ("100.9", 100),
    ],
)
def test_accepted_forms(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-5", "not a size"),
        ("-96KiB", "not a size"),
        ("0", "not positive"),
        ("0.1", "not positive"),
        ("96 parsecs", "unknown unit 'parsecs'"),
        ("96XB", "unknown unit"),
        ("", "not a size"),
        ("KiB", "not a size"),
        ("1e6", "not a size"),
    ],
)
def test_refused_forms_name_the_accepted_ones(text, reason):
    with pytest.raises(UsageError, match=reason) as info:
        parse_size(text, "--budget")
    assert "96KiB" in str(info.value) and "--budget" in str(info.value)


def test_format_size():
    assert format_size(1000) == "1,000 bytes"
    assert format_size(1_404_928) == "1,404,928 bytes (1.34 MiB)"
