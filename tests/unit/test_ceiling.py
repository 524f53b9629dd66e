from bench.ceiling import report


def test_ceiling_report_counts_top1_groups_and_open_set_false_accepts():
    labels = {"a1": "a", "a2": "a", "b1": "b", "b2": "b", "d": "distractor"}
    inliers = {
        "a1": {"a2": 20, "b1": 3, "b2": 2, "d": 1},
        "a2": {"a1": 20, "b1": 8, "b2": 2, "d": 1},  # left out, b1 would pass at 8
        "b1": {"a1": 3, "a2": 8, "b2": 6, "d": 0},  # right pair too weak at 7
        "b2": {"a1": 1, "a2": 1, "b1": 6, "d": 0},
        "d": {"a1": 9, "a2": 0, "b1": 0, "b2": 0},  # a distractor accepted at 7 and 9
    }
    groups = {"a": "easy", "b": "hard"}
    low, high = report(inliers, labels, groups, "distractor", [7, 10])
    assert (low["top1"], low["easy_medium"], low["hard"]) == (0.5, 1.0, 0.0)
    # distractor (9), a2 and b1 with their landmark left out (8 each)
    assert low["false_accepts"] == 3 and low["negatives"] == 5
    assert (high["top1"], high["false_accepts"]) == (0.5, 0)
    assert low["map_by_inliers"] == high["map_by_inliers"]
