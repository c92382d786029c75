from app.core.job_graph import resolve

IDS = ["id-a", "id-b", "id-c", "id-d"]


def test_sibling_keys_become_ids_and_other_entries_stay_external():
    graph = resolve(["a", "b", None, "d"], [[], ["a", "x-1"], ["b", "a", "b"], ["x-1", "x-2"]], IDS)
    assert graph.depends_on == [(), ("id-a", "x-1"), ("id-b", "id-a"), ("x-1", "x-2")]
    assert graph.sibling_deps == [(), (0,), (1, 0), ()]
    assert graph.external == ["x-1", "x-2"] and graph.problems == {}


def test_a_cycle_refuses_the_items_in_it_and_behind_it_only():
    # a -> b -> c -> a is a cycle; d waits for c (behind it); nothing else is touched.
    keys = ["a", "b", "c", "d", "e"]
    graph = resolve(keys, [["c"], ["a"], ["b"], ["c"], []], [*IDS, "id-e"])
    assert sorted(graph.problems) == [0, 1, 2, 3]


def test_an_item_that_names_its_own_key_is_a_cycle():
    assert resolve(["a"], [["a"]], ["id-a"]).problems == {0: "waits for itself through a dependency cycle"}


def test_a_chain_has_no_problem():
    graph = resolve(["a", "b", "c"], [[], ["a"], ["b"]], IDS[:3])
    assert graph.problems == {} and graph.depends_on == [(), ("id-a",), ("id-b",)]
