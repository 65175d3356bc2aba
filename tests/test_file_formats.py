"""The small files every run has (flat maps, latest_metrics.yaml) read back exactly as YAML reads them.

Cold index builds read these files for every run, so they have fast paths (one regex scan of
the whole file); these tests hold the fast paths to libyaml's reading of the same bytes.
"""

from __future__ import annotations

import math
import string

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp.store import histories, layout

# Keys and values of the shapes gitexp writes: plain words, YAML's bool/null words, numbers
# in strings, spaces, quotes, escapes, non-ASCII and characters YAML will not take raw.
_words = st.sampled_from(sorted(layout.YAML_WORDS) + ["v3", "a.b/c-d_e", "-3", "0", "010", "1.5", "1e5",
                                                      ".inf", "~", "", " ", "a: b", "x\ty", 'q"q', "back\\slash",
                                                      "ü", "\u2028", "\x85", "2024-01-01", "0x1f", "<<", "="])
_text = st.one_of(_words, st.text(min_size=0, max_size=12))
_value = st.one_of(_text, st.integers(-10**12, 10**12), st.none())


def test_yaml_words_are_the_plain_scalars_yaml_does_not_read_as_strings():
    resolver = yaml.resolver.Resolver()
    str_tag = "tag:yaml.org,2002:str"
    # Every implicit type YAML 1.1 has for a scalar starting with a letter or '_' ...
    firsts = string.ascii_letters + "_"
    tags = {tag for ch in firsts for tag, _ in yaml.resolver.Resolver.yaml_implicit_resolvers.get(ch, [])}
    assert tags == {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"}
    # ... matches exactly YAML_WORDS among those plain scalars.
    for word in layout.YAML_WORDS:
        assert resolver.resolve(yaml.ScalarNode, word, (True, False)) != str_tag
    for word in ["yes1", "Nope", "nul", "TRUEx", "y", "n", "ON_", "v3", "_"]:
        assert resolver.resolve(yaml.ScalarNode, word, (True, False)) == str_tag


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, _value, max_size=8))
def test_flat_maps_read_back_as_yaml_reads_them(doc):
    data = layout.dump_flat(doc)
    assert layout.load_flat(data) == doc
    assert yaml.safe_load(data) == (doc or None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["k", "p1", '"a b"', "yes", '"yes"', "null", "_x"]),
                          st.sampled_from(["v", "3", "-0", "010", "null", "Null", "true", '"t"', "1.5",
                                           '"x\\"y"', "a b", "~", "-", "on"])), max_size=6))
def test_hand_written_flat_maps_read_as_yaml_reads_them(lines):
    # Files not written by dump_flat (hand edits): what load_flat reads is what YAML reads,
    # except that gitexp keeps ints written with leading zeros as decimal.
    data = "".join(f"{k}: {v}\n" for k, v in lines).encode()
    try:
        expected = yaml.safe_load(data)
    except yaml.YAMLError:
        return
    if not isinstance(expected, dict) or any(not isinstance(k, str) for k in expected):
        return
    if any(v.lstrip("-").startswith("0") and v.lstrip("-") != "0" for _, v in lines):
        return
    assert layout.load_flat(data) == expected


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, st.tuples(st.integers(-2**40, 2**40), st.integers(0, 2**45),
                                        st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf]))),
                       max_size=6))
def test_latest_metrics_read_back_exactly(latest):
    data = histories.dump_latest(latest)
    back = histories.load_latest(data)
    assert back.keys() == latest.keys()
    for key, (step, ts, value) in latest.items():
        got = back[key]
        assert got[:2] == (step, ts)
        assert (math.isnan(got[2]) and math.isnan(value)) or got[2] == value
    # and YAML reads the same file the same way
    loaded = yaml.safe_load(data) or {}
    assert set(loaded) == set(latest)
