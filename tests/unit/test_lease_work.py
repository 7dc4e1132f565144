"""The lease work of one transaction: what a failed unit leaves, what counts as lost, and
the part of it on runs a statement does not write."""

from __future__ import annotations

from signoff.leases import LeaseWork


def test_a_failed_unit_leaves_no_lease_work_behind():
    work = LeaseWork("engine-a", 30.0)
    work.fences["run-1"] = 3
    work.claims.append("run-2")
    mark = work.mark()

    # A unit adds a fence, a claim, a release and an announcement, then fails
    work.fences["run-3"] = 1
    work.claims.append("run-4")
    work.releases["run-1"] = 3
    work.announce = True
    work.undo(mark)

    assert work.fences == {"run-1": 3}
    assert work.claims == ["run-2"]
    assert work.releases == {}
    assert work.announce is False


def test_a_fence_is_lost_unless_the_store_shows_this_engine_with_that_token():
    work = LeaseWork("engine-a", 30.0, fences={"kept": 2, "taken": 2, "released": 2})

    lost = work.lost({"kept": ("engine-a", 2), "taken": ("engine-b", 3), "released": (None, 2)})

    assert lost == ["released", "taken"]
    assert work.lost({}) == ["kept", "released", "taken"]


def test_the_rest_of_the_work_shares_what_is_granted():
    work = LeaseWork("engine-a", 30.0, fences={"a": 1, "b": 2}, claims=["b", "c"])
    work.releases["a"] = 1

    rest = work.split({"a", "b"})
    rest.granted["c"] = 7

    assert rest.fences == {}
    assert rest.claims == ["c"]
    assert rest.releases == {}
    assert work.granted == {"c": 7}
    assert work.locked_ids() == ["a", "b", "c"]
    assert bool(LeaseWork("engine-a", 30.0)) is False
