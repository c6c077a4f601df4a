from __future__ import annotations

from hookline.ids import id_floor, new_id


def test_ids_made_in_one_millisecond_keep_their_order():
    ids = [new_id("dlv", now_ms=1_700_000_000_000) for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000


def test_ids_sort_by_time_and_the_floor_bounds_them():
    early = new_id("dlv", now_ms=1_700_000_000_000)
    late = new_id("dlv", now_ms=1_700_000_000_001)
    assert early < id_floor("dlv", 1_700_000_000_001) <= late
    assert id_floor("dlv", 1_700_000_000_000) <= early
    assert len(early) == len("dlv_") + 26
