from transformers import PreTrainedTokenizerFast

from textopia.data.tokenizer import IDEA, IGNORE_INDEX, PROMPT, PromptTokenizer, train_bpe


def test_round_trip_and_special_tokens(tokenizer, prepared):
    text = "portrait of a beautiful woman, highly detailed, trending on artstation, 8k"
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert len({tokenizer.eos_id, tokenizer.pad_id, tokenizer.idea_id, tokenizer.prompt_id}) == 4
    # A plain transformers fast tokenizer loads the same file and agrees.
    hf = PreTrainedTokenizerFast.from_pretrained(str(prepared))
    assert hf.convert_tokens_to_ids(IDEA) == tokenizer.idea_id
    assert hf.encode(" " + text, add_special_tokens=False) == ids
    # Special tokens are single tokens and never produced from plain text.
    assert hf.encode(f"{IDEA} cat {PROMPT}", add_special_tokens=False)[0] == tokenizer.idea_id
    assert tokenizer.idea_id not in tokenizer.encode("<|idea|>".replace("|", " "))


def test_unicode_round_trip():
    tok = PromptTokenizer(train_bpe(["a cat", "un café à Paris", "猫の絵"] * 10, vocab_size=300))
    for text in ["un café à Paris", "猫の絵, 8k", "emoji 🐈 cat"]:
        assert tok.decode(tok.encode(text)) == text


def test_example_masks_everything_but_prompt_and_eos(tokenizer):
    prompt_ids = tokenizer.encode("a red fox in the snow")
    ids, labels = tokenizer.example(prompt_ids, "fox snow", max_length=64)
    start = ids.index(tokenizer.prompt_id)
    assert ids[0] == tokenizer.idea_id
    assert all(label == IGNORE_INDEX for label in labels[: start + 1])
    assert labels[start + 1 :] == prompt_ids + [tokenizer.eos_id]
    ids, labels = tokenizer.example(prompt_ids, None, max_length=64)
    assert ids[0] == tokenizer.prompt_id and labels[0] == IGNORE_INDEX
    ids, labels = tokenizer.example(prompt_ids, None, max_length=4)
    assert len(ids) == 4 and tokenizer.eos_id not in ids  # cut: no EOS
