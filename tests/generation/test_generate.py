import re
import pytest

import textopia
from textopia.generation.base import TextopiaError
from textopia.generation.decoding import clean_prompt, dedup_key


def test_same_seed_same_prompts(tiny_checkpoint):
    gen = textopia.load(str(tiny_checkpoint))
    a = [g.prompt for g in gen.generate("castle on a hill", n=4, seed=7)]
    b = [g.prompt for g in gen.generate("castle on a hill", n=4, seed=7)]
    c = [g.prompt for g in gen.generate("castle on a hill", n=4, seed=8)]
    assert a == b
    assert a != c
    assert len({dedup_key(p) for p in a}) == len(a) == 4


def test_outputs_are_clean(tiny_checkpoint):
    gen = textopia.load(str(tiny_checkpoint))
    outs = gen.generate(None, n=6, seed=1, max_new_tokens=20)
    for g in outs:
        assert "<|" not in g.prompt and g.prompt == g.prompt.strip()
        assert g.num_tokens <= 20 + 1 and g.model == str(tiny_checkpoint)
        assert g.settings["seed"] == 1
    cont = gen.generate("a portrait of", n=2, mode="continue", seed=0)
    assert all(g.prompt.startswith("a portrait of") for g in cont)


def test_banned_words_never_appear(tiny_checkpoint):
    gen = textopia.load(str(tiny_checkpoint))
    free = " ".join(g.prompt for g in gen.generate("portrait", n=8, seed=3, rerank=False)).lower().split()
    common = max(set(free), key=free.count)  # the word the model likes most
    outs = gen.generate("portrait", n=8, seed=3, banned_words=[common], rerank=False)
    assert outs and all(common not in g.prompt.lower().split() for g in outs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n must be an integer from 1 to 64"),
        (dict(temperature=0), "temperature must be a number in [0.05, 2]"),
        (dict(top_p=1.5), "top_p must be a number in (0, 1]"),
        (dict(max_new_tokens=0), "max_new_tokens must be an integer from 1 to 128"),
        (dict(mode="sideways"), "mode must be"),
    ],
)
def test_bad_settings_are_named(tiny_checkpoint, kwargs, message):
    gen = textopia.load(str(tiny_checkpoint))
    with pytest.raises(TextopiaError, match=re.escape(message)):
        gen.generate("a cat", **kwargs)


def test_an_empty_idea_is_no_idea_in_either_mode(tiny_checkpoint):
    """As the HTTP API does: an empty idea, or one of spaces, writes from nothing, and continuing
    nothing is writing from nothing."""
    gen = textopia.load(str(tiny_checkpoint))
    free = [g.prompt for g in gen.generate(None, n=2, seed=0, max_new_tokens=20)]
    assert len(free) == 2
    for idea, mode in (("", "expand"), ("   ", "expand"), ("", "continue")):
        got = gen.generate(idea, n=2, seed=0, max_new_tokens=20, mode=mode)
        assert [g.prompt for g in got] == free and all(g.idea is None for g in got)


def test_unknown_model_is_named():
    with pytest.raises(TextopiaError, match="unknown model 'no-such-model'"):
        textopia.load("no-such-model")


def test_clean_prompt_ends_where_a_phrase_ends_at_the_cut():
    assert clean_prompt("a castle ,  highly detailed, trending on artst", finished=False) == "a castle, highly detailed"
    assert clean_prompt("a castle on a hill at sunset with a rive", finished=False) == "a castle on a hill at sunset"
    assert clean_prompt("a castle, 8k,", finished=True) == "a castle, 8k"
    assert clean_prompt("fox in an snowy forest, a old oak", finished=True) == "fox in a snowy forest, an old oak"


def test_clean_prompt_drops_broken_utf8():
    assert clean_prompt("a caf\ufffd on the \ufffd street", finished=True) == "a caf on the street"


def _seeded_jobs(gen, ideas, rows):
    """Fresh sampling jobs, ``rows`` samples of each idea's context, job i seeded with i."""
    import torch

    from textopia.generation import decoding

    return [decoding.SampleJob(gen.tokenizer.context_ids(idea), rows, torch.Generator().manual_seed(i), idea)
            for i, idea in enumerate(ideas)]


def test_dropping_finished_rows_changes_no_sample(tiny_checkpoint, monkeypatch):
    """sample_many drops finished rows from the engine's cache as it goes; the samples (tokens,
    ends, log-probabilities) are those of a batch that keeps every row, padded jobs included."""
    from textopia.generation import decoding
    from textopia.generation.config import GenerationConfig

    gen = textopia.load(str(tiny_checkpoint), weight_dtype="float32")
    jobs = lambda: _seeded_jobs(gen, ["castle", "a castle on a hill at night", None], 6)  # noqa: E731
    settings = GenerationConfig(max_new_tokens=60, temperature=1.5)
    monkeypatch.setattr(decoding, "COMPACT_AT", 0.99)  # drop rows as soon as one finishes
    calls = []
    from textopia.models.gpt_engine import StaticCache

    real = StaticCache.keep_rows
    monkeypatch.setattr(StaticCache, "keep_rows", lambda self, rows: (calls.append(len(rows)), real(self, rows)))
    dropped = decoding.sample_many(gen.model, gen.tokenizer, jobs(), settings, gen.max_positions)
    assert any(rows < 18 for rows in calls), "no row finished early enough to be dropped: the test checks nothing"
    monkeypatch.setattr(decoding, "COMPACT_AT", 0.0)
    kept = decoding.sample_many(gen.model, gen.tokenizer, jobs(), settings, gen.max_positions)
    for a, b in zip(dropped, kept):
        assert [(s.ids, s.finished) for s in a] == [(s.ids, s.finished) for s in b]
        assert [s.logprob for s in a] == pytest.approx([s.logprob for s in b], abs=1e-4)


def test_rows_of_one_context_share_its_prefill_and_sample_the_same(tiny_checkpoint, monkeypatch):
    """The engine reads each distinct context once (left-padded contexts of three lengths, one of
    them in two jobs); the samples are those of a prefill of every row."""
    from textopia.generation import decoding
    from textopia.generation.config import GenerationConfig

    gen = textopia.load(str(tiny_checkpoint), weight_dtype="float32")
    jobs = lambda: _seeded_jobs(gen, ["castle", "a castle on a hill at night", None, "castle"], 5)  # noqa: E731
    settings = GenerationConfig(max_new_tokens=40, temperature=1.5)
    widths = []
    real = type(gen.model).forward
    monkeypatch.setattr(type(gen.model), "forward", lambda self, **kw: (widths.append(kw["input_ids"].shape), real(self, **kw))[1])
    shared = decoding.sample_many(gen.model, gen.tokenizer, jobs(), settings, gen.max_positions)
    assert widths[0][0] == 3 and widths[1][0] == 20  # the prefill: 3 contexts; the first step: every row
    monkeypatch.setattr(type(gen.model), "shares_prefill", False)
    widths.clear()
    alone = decoding.sample_many(gen.model, gen.tokenizer, jobs(), settings, gen.max_positions)
    assert widths[0][0] == 20
    for a, b in zip(shared, alone):
        assert [(s.ids, s.finished) for s in a] == [(s.ids, s.finished) for s in b]
        assert [s.logprob for s in a] == pytest.approx([s.logprob for s in b], abs=1e-4)


def test_generate_cuts_prompts_to_clips_77_tokens(monkeypatch):
    """Every prompt ``generate`` returns fits Stable Diffusion's text encoder (75 CLIP tokens plus
    start and end), cut at a tag's end. The shipped model is made to write long prompts by a
    decoder that appends forty tags to what it sampled; no shared corpus needed."""
    from textopia.clip_count import CLIP_MAX_PROMPT_TOKENS, count_clip_tokens

    gen = textopia.load()
    decode = gen.tokenizer.decode
    tail = ", ".join(f"{w} detailed tag" for w in ["golden", "misty", "ornate", "vivid"] * 10)
    written: list[str] = []

    def long_decode(ids, *args, **kwargs):
        text = f"{decode(ids, *args, **kwargs)}, {tail}"
        written.append(text)
        return text

    monkeypatch.setattr(gen.tokenizer, "decode", long_decode)
    from textopia.generation import rerank

    monkeypatch.setattr(rerank, "CUT_CLAUSES", False)  # the whole samples, not the shorter openings beside them
    outs = gen.generate("castle on a hill", n=4, seed=0, max_new_tokens=20)
    assert len(outs) == 4 and written
    assert max(count_clip_tokens(written)) > CLIP_MAX_PROMPT_TOKENS  # the model's text did overrun
    counts = count_clip_tokens([g.prompt for g in outs])
    assert max(counts) <= CLIP_MAX_PROMPT_TOKENS
    assert min(counts) > CLIP_MAX_PROMPT_TOKENS - 10  # cut at the last tag that fits, not far before
    assert all(g.prompt.endswith(" detailed tag") for g in outs)


def test_the_models_spaced_hyphens_are_closed_up_and_the_users_kept(tiny_checkpoint, monkeypatch):
    """The corpus spells compounds "highly - detailed"; the prompt a user gets reads "highly-detailed",
    while the beginning a user gives in continue mode is kept as typed."""
    gen = textopia.load(str(tiny_checkpoint))
    monkeypatch.setattr(gen.tokenizer, "decode", lambda ids, **_: ", highly - detailed, sci - fi")
    got = gen.generate("a castle - on a hill", n=1, mode="continue", seed=0, rerank=False)
    assert got[0].prompt == "a castle - on a hill, highly-detailed, sci-fi"


def test_a_generator_draws_each_round_through_the_sampler_it_is_given(tiny_checkpoint):
    """The token sampler is a component: a round's jobs go to it, and its samples are the candidates."""
    from textopia.generation.decoder import BatchedLMSampler, DecoderGenerator

    loaded = textopia.load(str(tiny_checkpoint), weight_dtype="float32")
    rounds = []

    class Recording:
        inner: BatchedLMSampler

        def draw(self, jobs, settings):
            rounds.append([(job.rows, job.idea, job.opening) for job in jobs])
            return self.inner.draw(jobs, settings)

    recording = Recording()
    gen = DecoderGenerator(loaded.model, loaded.tokenizer, loaded.meta, loaded.name, sampler=recording)
    gen.known_words, recording.inner = loaded.known_words, BatchedLMSampler(gen)
    kw = dict(seed=3, max_new_tokens=12, min_new_tokens=0)
    assert [g.prompt for g in gen.generate("castle", 2, **kw)] == [g.prompt for g in loaded.generate("castle", 2, **kw)]
    opening = gen.idea_prefix("castle")
    # 2 prompts x 8 candidates, at least MIN_POOL (32): half free, half opening with the idea as a clause of its own
    assert rounds[0] == [(16, "castle", None), (16, "castle", f"{opening},")]


def test_a_hard_idea_draws_more_rounds_until_a_sample_is_faultless(tiny_checkpoint):
    """A call stops drawing when it holds n samples without a fault the reranker ranks down (a
    clash or a new clause as much as a missing idea word), or after CLEAN_ROUNDS rounds."""
    from dataclasses import replace

    from textopia.generation.decoder import CLEAN_ROUNDS
    from textopia.generation.rerank import SampleScore

    gen = textopia.load(str(tiny_checkpoint), weight_dtype="float32")
    request = gen._request("castle", 1, gen.decoding(seed=0))
    request.rounds = 1
    clash = SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=-1.0, clash=True)
    request.candidates = [(clash, f"prompt {i}", None) for i in range(request.per_round)]
    request.groups = list(range(request.per_round))
    assert clash.clean and not clash.faultless and not request.enough()
    request.candidates[3] = (replace(clash, clash=False, new_clauses=1), "new clause", None)
    assert not request.enough()
    request.candidates[3] = (replace(clash, clash=False), "faultless", None)
    assert request.candidates[3][0].faultless and request.enough()
    request.candidates[3] = (clash, "prompt 3", None)
    request.rounds = CLEAN_ROUNDS
    assert request.enough()
    # Two faultless forms of one sample (a prompt and its opening) are one sample, not two.
    request = gen._request("castle", 2, gen.decoding(seed=0))
    request.rounds = 1
    faultless = replace(clash, clash=False)
    request.candidates = [(clash, f"prompt {i}", None) for i in range(request.per_round)] + [(faultless, "a", None)] * 2
    request.groups = list(range(request.per_round)) + [0, 0]
    assert not request.enough()
    request.groups[-1] = 1
    assert request.enough()


def test_a_batch_of_candidates_stops_its_longest_rows(tiny_checkpoint):
    """With ``tail_share``, sampling stops once at most that share of the rows are still running:
    the rows that ended before are those of a batch run to the end, and the stopped rows are
    unfinished beginnings of theirs."""
    from textopia.generation import decoding
    from textopia.generation.config import GenerationConfig

    gen = textopia.load(str(tiny_checkpoint), weight_dtype="float32")
    jobs = lambda: _seeded_jobs(gen, ["castle", "a castle on a hill at night"], 8)  # noqa: E731
    settings = GenerationConfig(max_new_tokens=60, min_new_tokens=2, temperature=0.7)
    whole = [s for job in decoding.sample_many(gen.model, gen.tokenizer, jobs(), settings, gen.max_positions)
             for s in job]
    stopped = [s for job in decoding.sample_many(gen.model, gen.tokenizer, jobs(), settings, gen.max_positions,
                                                 tail_share=0.9) for s in job]  # a tiny model's rows seldom end
    cut = [i for i, (a, b) in enumerate(zip(stopped, whole)) if len(a.ids) < len(b.ids)]
    assert 0 < len(cut) <= 0.9 * 16, "no row was stopped: the test checks nothing"
    for a, b in zip(stopped, whole):
        if a.finished:
            assert (a.ids, a.finished) == (b.ids, b.finished)
        else:
            assert b.ids[: len(a.ids)] == a.ids and len(a.ids) >= settings.min_new_tokens


@pytest.mark.parametrize("rerank, share", [(True, "TAIL_SHARE"), (False, 0.0)])
def test_only_a_reranked_pool_stops_its_longest_rows(tiny_checkpoint, monkeypatch, rerank, share):
    """Without reranking every sample is a prompt the user gets, and runs to its end."""
    from textopia.generation import decoder, decoding

    gen = textopia.load(str(tiny_checkpoint))
    shares = []
    original = decoder.sample_many

    def spy(*args, tail_share=0.0, **kwargs):
        shares.append(tail_share)
        return original(*args, tail_share=tail_share, **kwargs)

    monkeypatch.setattr(decoder, "sample_many", spy)
    gen.generate("old fisherman", n=2, seed=3, rerank=rerank, max_new_tokens=20)
    expected = decoding.TAIL_SHARE if share == "TAIL_SHARE" else share
    assert shares and set(shares) == {expected} and decoding.TAIL_SHARE > 0
