"""The registry fold: deterministic for any order of the same events, and its merge rules."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp.store.registry import RegistryState, fold_model

UIDS = ["u1", "u2", "u3", "u4"]
STAGES = ["None", "Staging", "Production", "Archived", "staging", "PRODUCTION"]


def _name(second: int, micro: int, tag: str) -> str:
    return f"20240501T1200{second:02d}.{micro:06d}Z-{tag}.yaml"


def _snapshot(state) -> dict:
    return {
        "name": state.name, "exists": state.exists, "deleted": state.deleted,
        "description": state.description, "tags": dict(state.tags), "aliases": dict(state.aliases),
        "created": state.creation_time, "updated": state.last_updated, "claim": state.name_claim,
        "versions": {u: (v.number, v.stage, v.deleted, v.description, dict(v.tags), v.source,
                         v.renumbered_from, v.last_updated) for u, v in state.versions.items()},
        "version_order": list(state.versions),
        "notices": list(state.notices),
        "history": [tuple(sorted((k, str(v)) for k, v in r.items())) for r in state.history],
    }


op_strategy = st.one_of(
    st.builds(lambda: {"op": "create_model", "name": "m"}),
    st.builds(lambda d: {"op": "create_model", "name": "m", "description": d, "tags": {"t": d}},
              st.sampled_from(["a", "b"])),
    st.builds(lambda n: {"op": "rename", "name": n}, st.sampled_from(["m", "m2", "m3"])),
    st.builds(lambda d: {"op": "update_description", "description": d}, st.sampled_from(["x", "y", None])),
    st.builds(lambda k, v: {"op": "set_tag", "key": k, "value": v}, st.sampled_from("kl"), st.sampled_from("12")),
    st.builds(lambda k: {"op": "delete_tag", "key": k}, st.sampled_from("kl")),
    st.builds(lambda: {"op": "delete_model"}),
    st.builds(lambda u, n: {"op": "create_version", "uid": u, "version": n, "source": f"runs:/{u}/model"},
              st.sampled_from(UIDS), st.integers(1, 4)),
    st.builds(lambda u, d: {"op": "update_version", "uid": u, "description": d},
              st.sampled_from(UIDS), st.sampled_from(["p", "q"])),
    st.builds(lambda u, s, a: {"op": "transition_stage", "uid": u, "stage": s, "archive_existing_versions": a},
              st.sampled_from(UIDS), st.sampled_from(STAGES), st.booleans()),
    st.builds(lambda u, a: {"op": "set_alias", "uid": u, "alias": a}, st.sampled_from(UIDS),
              st.sampled_from(["champion", "challenger"])),
    st.builds(lambda a: {"op": "delete_alias", "alias": a}, st.sampled_from(["champion", "challenger"])),
    st.builds(lambda u: {"op": "delete_version", "uid": u}, st.sampled_from(UIDS)),
    st.builds(lambda u, k: {"op": "set_version_tag", "uid": u, "key": k, "value": "v"},
              st.sampled_from(UIDS), st.sampled_from("ab")),
    st.builds(lambda u, k: {"op": "delete_version_tag", "uid": u, "key": k},
              st.sampled_from(UIDS), st.sampled_from("ab")),
    st.builds(lambda: {"op": "from_the_future", "x": 1}),
)

event_strategy = st.tuples(
    st.integers(0, 59), st.integers(0, 3),          # time: few distinct values, so ties are common
    st.text("0123456789abcdef", min_size=4, max_size=4),
    st.sampled_from(["ana", "bo"]),
    st.lists(op_strategy, min_size=1, max_size=3),
)


def _events(raw: list) -> list[tuple[str, dict]]:
    events, seen = [], set()
    for second, micro, tag, user, ops in raw:
        name = _name(second, micro, tag)
        if name in seen:  # file names in one directory are unique
            continue
        seen.add(name)
        events.append((name, {"time": 1714564800000 + second * 1000 + micro, "user": user, "ops": ops}))
    return events


@settings(max_examples=300, deadline=None)
@given(st.lists(event_strategy, min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_same_events_in_any_order_fold_to_the_same_model(raw, rnd):
    events = _events(raw)
    expected = _snapshot(fold_model("m", events))
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert _snapshot(fold_model("m", shuffled)) == expected
    # Version numbers of one incarnation are 1..n, each once.
    state = fold_model("m", shuffled)
    numbers = sorted(v.number for v in state.versions.values())
    assert numbers == list(range(1, len(numbers) + 1))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.lists(event_strategy, min_size=1, max_size=6)),
                min_size=1, max_size=5, unique_by=lambda t: t[0]),
       st.randoms(use_true_random=False))
def test_registry_names_resolve_the_same_for_any_directory_order(dirs, rnd):
    folded = {d: fold_model(d, _events(raw)) for d, raw in dirs}
    expected = RegistryState(folded)
    items = list(folded.items())
    rnd.shuffle(items)
    again = RegistryState(dict(items))
    assert again.by_name == expected.by_name
    assert again.notices == expected.notices
    assert len(set(expected.by_name.values())) == len(expected.by_name)  # one name per live model


def test_an_earlier_registration_arriving_by_merge_renumbers_later_ones():
    clone_a = [(_name(0, 0, "aaaa"), {"time": 1, "user": "ana", "ops": [{"op": "create_model", "name": "m"}]}),
               (_name(10, 0, "aaab"), {"time": 10, "user": "ana", "ops": [
                   {"op": "create_version", "uid": "ua", "version": 1, "source": "runs:/a/model"}]}),
               (_name(12, 0, "aaac"), {"time": 12, "user": "ana", "ops": [
                   {"op": "transition_stage", "uid": "ua", "version": 1, "stage": "Production",
                    "archive_existing_versions": True}]})]
    clone_b = [(_name(5, 0, "bbbb"), {"time": 5, "user": "bo", "ops": [
                   {"op": "create_version", "uid": "ub", "version": 1, "source": "runs:/b/model"}]}),
               (_name(11, 0, "bbbc"), {"time": 11, "user": "bo", "ops": [
                   {"op": "set_alias", "uid": "ub", "version": 1, "alias": "champion"}]})]
    merged = fold_model("m", clone_a + clone_b)
    a, b = merged.versions["ua"], merged.versions["ub"]
    assert (b.number, b.renumbered_from) == (1, None)        # bo registered first: keeps 1
    assert (a.number, a.renumbered_from) == (2, 1)           # ana's moved up, visibly
    assert merged.aliases == {"champion": "ub"}              # aliases and stages follow the version
    assert a.stage == "Production"
    assert len(merged.notices) == 1 and "was version 1 where it was registered" in merged.notices[0]
    assert [h["version"] for h in merged.history if h["action"] == "create_version"] == [1, 2]


def test_archive_existing_applies_at_its_place_in_the_fold():
    ops = [
        {"op": "create_model", "name": "m"},
        {"op": "create_version", "uid": "u1"}, {"op": "create_version", "uid": "u2"},
        {"op": "create_version", "uid": "u3"},
        {"op": "transition_stage", "uid": "u1", "stage": "Production"},
        {"op": "transition_stage", "uid": "u2", "stage": "Production", "archive_existing_versions": True},
        {"op": "transition_stage", "uid": "u3", "stage": "Production"},   # later, without archiving
    ]
    state = fold_model("m", [(_name(i, 0, "0000"), {"time": i, "ops": [op]}) for i, op in enumerate(ops)])
    assert {v.number: v.stage for v in state.versions.values()} == {1: "Archived", 2: "Production", 3: "Production"}
    assert state.history[5]["detail"] == "None -> Production; archived version(s) 1"


def test_changes_made_moot_by_a_merge_are_skipped_and_listed():
    events = [
        (_name(0, 0, "0001"), {"time": 0, "user": "ana", "ops": [{"op": "create_model", "name": "m"},
                                                                  {"op": "create_version", "uid": "u1"}]}),
        (_name(1, 0, "0002"), {"time": 1, "user": "ana", "ops": [{"op": "delete_version", "uid": "u1"}]}),
        (_name(2, 0, "0003"), {"time": 2, "user": "bo", "ops": [
            {"op": "transition_stage", "uid": "u1", "stage": "Production", "version": 1}]}),
        (_name(3, 0, "0004"), {"time": 3, "user": "bo", "ops": [{"op": "delete_model"}]}),
        (_name(4, 0, "0005"), {"time": 4, "user": "ana", "ops": [{"op": "set_tag", "key": "k", "value": "v"}]}),
    ]
    state = fold_model("m", events)
    ignored = [(h["action"], h["ignored"]) for h in state.history if h["ignored"]]
    assert ignored == [("transition_stage", "its version was deleted earlier"),
                       ("set_tag", "the model was deleted earlier")]
    assert state.deleted and not state.live


def test_two_clones_creating_one_model_merge_into_one():
    events = [
        (_name(0, 1, "aaaa"), {"time": 0, "user": "ana", "ops": [{"op": "create_model", "name": "m",
                                                                   "tags": {"team": "a"}}]}),
        (_name(0, 2, "bbbb"), {"time": 0, "user": "bo", "ops": [{"op": "create_model", "name": "m",
                                                                  "description": "from bo", "tags": {"x": "1"}}]}),
    ]
    state = fold_model("m", events)
    assert state.live and state.name == "m"
    assert state.tags == {"team": "a", "x": "1"} and state.description == "from bo"
    assert "bo also created this model" in state.notices[0]


def test_a_name_claimed_twice_goes_to_the_earlier_claim():
    first = fold_model("a", [(_name(0, 0, "0001"), {"time": 0, "ops": [{"op": "create_model", "name": "x"}]}),
                             (_name(5, 0, "0002"), {"time": 5, "ops": [{"op": "rename", "name": "shared"}]})])
    second = fold_model("shared", [(_name(3, 0, "0003"), {"time": 3, "ops": [
        {"op": "create_model", "name": "shared"}]})])
    state = RegistryState({"a": first, "shared": second})
    assert state.by_name == {"shared": "shared", "shared~2": "a"}
    assert "listed as 'shared~2'" in state.notices["a"][0]
    assert state.new_directory("shared") == "shared~2"  # a live model holds the plain directory


def test_fold_ignores_malformed_documents():
    events = [(_name(0, 0, "0001"), {"time": 0, "ops": [{"op": "create_model", "name": "m"}, "junk", None]}),
              (_name(1, 0, "0002"), None), (_name(2, 0, "0003"), {"ops": "nope"}),
              (_name(3, 0, "0004"), {"time": 3, "ops": [{"op": "set_tag", "value": "no key"},
                                                         {"op": "create_version", "uid": "u1"},
                                                         {"op": "transition_stage", "uid": "u1", "stage": "Prod"},
                                                         {"op": "rename"}]})]
    state = fold_model("m", events)
    assert state.live and state.name == "m" and state.tags == {}
    assert [v.stage for v in state.versions.values()] == ["None"]
    assert [h["action"] for h in state.history if h["ignored"] and "malformed" in h["ignored"]] == [
        "set_tag", "transition_stage", "rename"]


def test_shuffling_real_event_files_changes_nothing(client):
    """Events written through the API, read back from git and folded in random orders."""
    client.create_registered_model("m")
    for i in range(5):
        client.create_model_version("m", f"/models/{i}")
    client.transition_model_version_stage("m", 2, "Production")
    client.transition_model_version_stage("m", 4, "Production", archive_existing_versions=True)
    client.set_registered_model_alias("m", "champion", 4)
    client.delete_model_version("m", 3)
    client.rename_registered_model("m", "m2")
    registry = client._registry
    branch = registry.branch
    root = branch.tree_of(branch.tip())
    events_tree = branch.odb.lookup(root, ".tracking/registry/m/events").sha
    events = list(branch.read_events(events_tree))
    expected = _snapshot(fold_model("m", events))
    rnd = random.Random(7)
    for _ in range(20):
        rnd.shuffle(events)
        assert _snapshot(fold_model("m", events)) == expected
    assert expected["name"] == "m2" and expected["aliases"] == {"champion": registry.state().model("m2").by_number[4]}
