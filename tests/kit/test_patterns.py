import re

from winback.kit.patterns import trie_pattern


def test_trie_pattern_matches_every_word_longest_first_and_escapes():
    words = ["price", "price increase", "pricey", "a+b", "値上げ", "値段"]
    rx = re.compile(trie_pattern(words))
    for word in words:
        assert rx.fullmatch(word), word
    assert rx.match("price increase was bad").group() == "price increase"
    assert not rx.fullmatch("aab")  # "+" is literal
    assert not rx.fullmatch("pri")


def test_trie_pattern_char_mapping():
    rx = re.compile(trie_pattern(["sso#"], lambda ch: r"\b" if ch == "#" else re.escape(ch)))
    assert rx.search("we need sso now") and not rx.search("ssox")
