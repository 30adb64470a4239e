"""The state store's datetime codec: aware datetimes keep wall time, offset, zone and fold through SQLite text."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given

from voicecoder.adapters.sqlite.state_store import decode_datetime, encode_datetime
from voicecoder.testing.contracts.state_store import aware_datetimes

BERLIN = ZoneInfo("Europe/Berlin")


class TestDatetimeCodec:
    @given(moment=aware_datetimes())
    def test_round_trip_keeps_wall_time_offset_and_zone(self, moment: datetime) -> None:
        """Decoding an encoded aware datetime gives the same wall time, offset, zone name and instant."""
        got = decode_datetime(encode_datetime(moment))

        assert (got, got.replace(tzinfo=None), got.utcoffset(), got.tzname()) == (
            moment,
            moment.replace(tzinfo=None),
            moment.utcoffset(),
            moment.tzname(),
        )

    def test_fold_is_kept(self) -> None:
        """The second 02:30 of the night DST ends stays the second one."""
        second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN)

        text = encode_datetime(second)

        assert text == "2026-10-25T02:30:00+01:00[Europe/Berlin]"
        assert decode_datetime(text).fold == 1
        assert decode_datetime(text).tzinfo is BERLIN

    @pytest.mark.parametrize("fold", [0, 1])
    def test_wall_times_in_a_dst_gap_are_kept(self, fold: int) -> None:
        """02:30 on the night clocks spring forward does not exist; it still comes back as 02:30 with its offset."""
        missing = datetime(2026, 3, 29, 2, 30, fold=fold, tzinfo=BERLIN)

        got = decode_datetime(encode_datetime(missing))

        assert (got.hour, got.minute, got.fold, got.utcoffset()) == (2, 30, fold, missing.utcoffset())

    def test_fixed_offsets_need_no_zone(self) -> None:
        """A fixed offset is plain ISO 8601, with sub-second offsets kept."""
        moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-3, microseconds=7)))

        assert decode_datetime(encode_datetime(moment)).utcoffset() == timedelta(hours=-3, microseconds=7)
