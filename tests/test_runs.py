"""The calls an object or an operation was seen in, as runs: what a report says of them, in bounded memory."""

import pytest
from ocitrace.analyzers.runs import KEPT, Runs
from ocitrace.analyzers.story import ranges


@pytest.mark.parametrize("indexes, said", [
    ([], ""),
    ([0], "1"),
    ([0, 5, 11, 12, 13], "1, 6, 12–14"),
    ([1, 2, 6, 9, 12, 15, 18, 161], "2–3, 7, 10, … 162 (8)"),
    ([0, 2, 4, 6, 8, 10], "1, 3, 5, 7, 9, 11"),
    ([0, 2, 4, 6, 8, 10, 12], "1, 3, 5, … 13 (7)"),
])
def test_call_numbers_are_said_as_runs(indexes, said):
    assert Runs(indexes).text() == said == ranges(indexes)


def test_a_bounded_runs_says_what_a_whole_one_says_of_a_fleets_day():
    indexes = [i for i in range(200_000) if i % 7 in (0, 1)]
    whole, bounded = Runs(indexes), Runs(indexes, limit=KEPT)
    for most in (2, 6):
        assert bounded.text(most) == whole.text(most)
    assert (bounded.first, bounded.last, len(bounded)) == (whole.first, whole.last, len(whole)) == (0, 199_998,
                                                                                                      len(indexes))
    assert len(bounded._bounds) == 2 * KEPT  # the memory it holds does not grow with the calls
    assert list(whole) == indexes and whole == indexes and bounded != indexes
    with pytest.raises(ValueError):
        list(bounded)  # every call is asked only of what keeps every call (JSON)


def test_a_call_given_twice_in_a_row_counts_once_and_an_earlier_one_is_refused():
    runs = Runs([3, 3, 4])
    assert len(runs) == 2 and runs.text() == "4–5"
    with pytest.raises(ValueError):
        runs.append(2)
