"""The word-level vocabulary (PTB-style data)."""

from textopia.data.tokenizer import SPECIAL_TOKENS, UNK, PromptTokenizer, train_word_level

TEXTS = ["mr. <unk> is chairman of <unk> n.v.", "the hydro-quebec deal N years old", "the the of"]


def test_words_split_on_whitespace_only_and_ids_are_dense():
    hf = train_word_level(TEXTS)
    vocab = hf.get_vocab()
    assert sorted(vocab.values()) == list(range(len(hf)))  # no holes, even with "<unk>" in the text
    assert [vocab[t] for t in [*SPECIAL_TOKENS, UNK]] == [0, 1, 2, 3, 4]
    assert vocab["the"] == 5 and vocab["of"] == 6  # most frequent first
    tok = PromptTokenizer(hf)
    ids = tok.encode("mr. <unk> is hydro-quebec zebra")
    assert hf.convert_ids_to_tokens(ids) == ["mr.", "<unk>", "is", "hydro-quebec", "<unk>"]
    assert tok.decode(tok.encode("the deal is old")) == "the deal is old"


def test_vocab_size_keeps_the_most_frequent_words(tmp_path):
    hf = train_word_level(TEXTS, vocab_size=7)
    assert len(hf) == 7 and set(hf.get_vocab()) == {*SPECIAL_TOKENS, UNK, "the", "of"}
    tok = PromptTokenizer(hf)
    tok.save(tmp_path)
    again = PromptTokenizer.from_dir(tmp_path)
    assert again.encode("the cat of") == tok.encode("the cat of") == [5, 4, 6]
    assert (again.eos_id, again.pad_id, again.idea_id, again.prompt_id) == (0, 1, 2, 3)
