"""Text data: the built-in names list and its split, the token spec, input checks, .txt files."""

from __future__ import annotations

import numpy as np
import pytest

import genzoo as gz
from genzoo.datasets.text import END, TextSpec, check_words, is_text


def test_names_dataset_and_its_documented_split():
    ds = gz.datasets.get("names")
    assert ds.kind == "text" and len(ds) == 32033
    assert all(isinstance(w, str) and w.isalpha() and w.islower() for w in ds.words)
    tr, va, te = ds.split("train"), ds.split("val"), ds.split("test")
    assert (len(tr), len(va), len(te)) == (30033, 1000, 1000)
    # the documented permutation: test = first 1,000 of default_rng(0).permutation(n), val = next 1,000
    perm = np.random.default_rng(0).permutation(len(ds.words))
    assert te == [ds.words[i] for i in perm[:1000]] and va == [ds.words[i] for i in perm[1000:2000]]
    assert sorted(tr + va + te) == sorted(ds.words)
    with pytest.raises(ValueError, match="unknown split"):
        ds.split("dev")
    S = ds.sample(50, random_state=0)
    assert S == ds.sample(50, random_state=0) and set(S) <= set(ds.words)


def test_text_data_stays_out_of_the_2d_list():
    assert "names" not in gz.datasets.names()  # compare / CLI iterate these as 2-D distributions
    assert gz.datasets.names("text") == ["names"]
    wider = set(gz.datasets.names("wide")) | set(gz.datasets.names("table")) | set(gz.datasets.names("image"))
    assert set(gz.datasets.names("all")) == set(gz.datasets.names()) | wider | {"names"}
    with pytest.raises(ValueError, match="unknown dataset kind"):
        gz.datasets.names("images")
    with pytest.raises(ValueError, match="names"):  # the error lists the text data too
        gz.datasets.get("nmaes")


def test_spec_encodes_decodes_and_names_bad_characters():
    spec = TextSpec.from_words(["abba", "cab", ""])
    assert spec.chars == "abc" and spec.max_len == 4
    assert spec.encode("cab") == [3, 1, 2] and spec.decode([3, 1, 2, END, 1]) == "cab"
    assert spec.mask_id == 4 and spec.start_id() == 5 and spec.start_id(0) == 6 and spec.n_tokens(2) == 8
    with pytest.raises(ValueError, match="character 'z' in 'zab'"):
        spec.encode("zab")
    with pytest.raises(ValueError, match="character 'd'"):
        spec.check(["ab", "add"])
    with pytest.raises(ValueError, match="5 characters.*at most 4"):
        spec.check(["aaaaa"])
    spec.check(["a_b"], mask="_")  # the mask character is allowed where asked for
    assert TextSpec.from_meta(spec.to_meta()) == spec
    with pytest.raises(ValueError, match="every string is empty"):
        TextSpec.from_words(["", ""])


@pytest.mark.parametrize("bad, match", [
    ([], "empty"), ("anna", "single string"), (["ann", 3], r"X\[1\] is int"), (None, "None"),
    (np.array([["a", "b"]]), "1-D"),
])
def test_check_words_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        check_words(bad)


def test_is_text():
    assert is_text(["a", "b"]) and is_text(("a",)) and is_text(np.array(["ab", "c"])) and is_text("a")
    assert not is_text(np.zeros((3, 2))) and not is_text([[1.0, 2.0]]) and not is_text([])


def test_load_file_reads_a_txt_file_one_string_per_line(tmp_path):
    p = tmp_path / "words.txt"
    p.write_text("emma\n\n olivia \nava\n")
    assert gz.datasets.load_file(p) == ["emma", "olivia", "ava"]
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="empty"):
        gz.datasets.load_file(tmp_path / "empty.txt")
