"""The keep head: its features, its fit, its file, and the reranker's use of it."""

from __future__ import annotations

import shutil

import pytest
import torch

import textopia
from textopia.errors import TextopiaError
from textopia.generation import rerank
from textopia.models.keep_head import (KEEP_DIR, KeepHead, KeepHeadConfig, features, fit_bradley_terry,
                                       fit_keep_head, is_keep_dir)


def _random_head(hidden: int, seed: int = 0) -> KeepHead:
    g = torch.Generator().manual_seed(seed)
    e = 2 * hidden
    return KeepHead(KeepHeadConfig(hidden_size=hidden, fluency_cap=-1.5), torch.randn(2 + e, generator=g),
                    torch.randn(e, generator=g), torch.rand(e, generator=g) + 0.5)


def test_features_are_the_writers_own_and_do_not_depend_on_the_batch(tiny_checkpoint):
    gen = textopia.load(str(tiny_checkpoint))
    ideas = ["old fisherman", None, "a lighthouse in a storm"]
    prompts = ["old fisherman, oil painting", "a castle on a hill at dawn, by greg rutkowski, highly detailed", "a lighthouse"]
    together = features(gen.model, gen.tokenizer, ideas, prompts)
    alone = torch.cat([features(gen.model, gen.tokenizer, [i], [p]) for i, p in zip(ideas, prompts)])
    e = gen.model.config.n_embd
    assert together.shape == (3, 2 + 2 * e) and together.dtype == torch.float32
    assert torch.allclose(together, alone, atol=1e-4)
    # Fluency: the mean log-probability per token of the prompt and its end, given the idea.
    context, body = gen.tokenizer.context_ids(ideas[0]), gen.tokenizer.encode(prompts[0]) + [gen.tokenizer.eos_id]
    with gen.model.exact():
        logits = gen.model(input_ids=torch.tensor([context + body])).logits[0, len(context) - 1:-1]
    expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(body)[:, None]).mean()
    assert float(together[0, 0]) == pytest.approx(float(expected), abs=1e-4)
    assert float(together[0, 1]) == pytest.approx(0.4)  # four words, / 10


def test_a_head_survives_a_save_and_load(tmp_path):
    head = _random_head(8)
    raw = torch.randn(5, 18)
    head.save(tmp_path / KEEP_DIR)
    loaded = KeepHead.load(tmp_path / KEEP_DIR)
    assert loaded.config == head.config
    assert torch.equal(loaded.utility(raw), head.utility(raw))
    assert head.utility(raw).shape == (5,)


def test_a_broken_head_is_a_clear_error(tmp_path):
    with pytest.raises(TextopiaError, match="not a keep head"):
        KeepHead.load(tmp_path)  # no files
    _random_head(8).save(tmp_path / "h")
    (tmp_path / "h" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(TextopiaError, match="not a keep head"):
        KeepHead.load(tmp_path / "h")
    with pytest.raises(TextopiaError, match="needs weight"):
        KeepHead(KeepHeadConfig(hidden_size=8), torch.zeros(10), torch.zeros(16), torch.ones(16))
    with pytest.raises(TextopiaError, match="hidden_size"):
        KeepHeadConfig(hidden_size=0)


def test_fluency_above_the_cap_earns_nothing():
    head = _random_head(2)
    raw = torch.zeros(2, 6)
    raw[0, 0], raw[1, 0] = -1.0, -0.2  # both above the cap of -1.5
    utilities = head.utility(raw)
    assert float(utilities[0]) == float(utilities[1])


def test_the_fit_learns_what_the_judges_prefer():
    """Judges who keep the prompt with the higher first pooled feature: the fitted head ranks
    pairs it never saw as they would, and leaves an unrelated feature near 0."""
    g = torch.Generator().manual_seed(0)
    hidden, pairs = 4, 400
    raw_a, raw_b = torch.randn(pairs, 2 + 2 * hidden, generator=g), torch.randn(pairs, 2 + 2 * hidden, generator=g)
    raw_a[:, 0], raw_b[:, 0] = -3.0, -3.0  # fluency equal: it decides nothing
    won = (raw_a[:, 2] > raw_b[:, 2]).float()
    head = fit_keep_head(raw_a[:300], raw_b[:300], won[:300], hidden, -1.5, l2=0.001)
    margin = head.utility(raw_a[300:]) - head.utility(raw_b[300:])
    assert float(((margin > 0).float() == won[300:]).float().mean()) > 0.9
    assert float(head.weight[2]) > 5 * float(head.weight[3:].abs().max())
    assert head.config.pairs == 300


def test_the_penalty_leaves_the_first_weights_free():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 3, generator=g)
    y = (x[:, 0] > 0).float()
    w = fit_bradley_terry(x, y, l2=10.0, free=1)
    assert float(w[0]) > 5.0 and float(w[1:].abs().max()) < 0.2


def test_an_openings_features_read_off_its_wholes_pass_are_its_own(tiny_checkpoint):
    """One pass over a whole prompt gives each of its openings the features a pass of their own
    gives: its tokens' states, and its end token's, attended over its own tokens only."""
    from textopia.text import clause_openings

    gen = textopia.load(str(tiny_checkpoint), weight_dtype="float32")
    ideas, prompts, wholes = [], [], []
    for idea, whole in [("old fisherman", "an old fisherman, his boat, oil painting, by ivan shishkin, 8k"),
                        ("castle", "a castle on a hill, greg rutkowski, artstation"), (None, "portrait, 4k, hd, sharp")]:
        for prompt in [whole, *clause_openings(whole)]:
            ideas.append(idea), prompts.append(prompt), wholes.append(whole)
    assert len(prompts) == 9
    alone = features(gen.model, gen.tokenizer, ideas, prompts)
    shared = features(gen.model, gen.tokenizer, ideas, prompts, wholes=wholes, batch_rows=2)
    assert torch.allclose(shared, alone, atol=1e-4)
    assert not torch.allclose(alone[1], alone[0], atol=1e-2)  # an opening is not its whole
    # Without their wholes among the prompts, the wholes are read only as far as their longest
    # opening, which then ends the pass with its own end token.
    cut = [i for i, (p, w) in enumerate(zip(prompts, wholes)) if p != w]
    tail_unread = features(gen.model, gen.tokenizer, [ideas[i] for i in cut], [prompts[i] for i in cut],
                           wholes=[wholes[i] for i in cut], batch_rows=3)
    assert torch.allclose(tail_unread, alone[cut], atol=1e-4)
    with pytest.raises(ValueError, match="wholes"):
        features(gen.model, gen.tokenizer, ideas, prompts, wholes=wholes[:-1])


def test_a_prompt_whose_tokens_do_not_begin_its_wholes_is_read_on_its_own(tiny_checkpoint):
    """An opening whose tokens are not the first of its whole's (byte-level BPE can merge "!!!" and
    "!!!," otherwise) is read in a pass of its own, beside openings of the same whole that are
    read off the whole's pass, longer or shorter than them (a longer one once failed the batch)."""
    gen = textopia.load(str(tiny_checkpoint), weight_dtype="float32")
    whole = "a castle on a hill, greg rutkowski, artstation"
    prompts = ["a castle on a hill, greg rutkowski",  # a true opening: read off the whole's pass
               "a castle at night, dramatic lighting, trending on artstation, 8k, sharp focus",  # longer, not one
               "a tower, 4k"]  # shorter, not one
    ideas = ["castle"] * 3
    assert gen.tokenizer.encode(whole)[: len(gen.tokenizer.encode(prompts[0]))] == gen.tokenizer.encode(prompts[0])
    shared = features(gen.model, gen.tokenizer, ideas, prompts, wholes=[whole] * 3)
    alone = features(gen.model, gen.tokenizer, ideas, prompts)
    assert torch.allclose(shared, alone, atol=1e-4)


def test_joint_is_the_heads_utility_where_there_is_one():
    plain = rerank.SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=-2.0, words=10)
    assert rerank.joint(plain) == pytest.approx(rerank.FLUENCY_WEIGHT * -2.0 - rerank.LENGTH_WEIGHT * 10)
    from dataclasses import replace

    assert rerank.joint(replace(plain, keep=2.0)) == pytest.approx(rerank.KEEP_WEIGHT * 2.0)


def test_contenders_are_the_best_tiers_until_they_hold_n():
    good = rerank.SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=-2.0)
    worse = rerank.SampleScore(recall=1.0, invented=0, stutter=True, mean_logprob=-2.0)
    worst = rerank.SampleScore(recall=0.5, invented=0, stutter=False, mean_logprob=-2.0)
    scores = [worse, good, worst, None, good, worse]
    assert rerank.contenders(scores, 1) == [1, 4]
    assert rerank.contenders(scores, 2) == [1, 4]
    assert rerank.contenders(scores, 3) == [0, 1, 4, 5]
    assert rerank.contenders(scores, 9) == [0, 1, 2, 4, 5]


class _WordyHead:
    """A stand-in head that prefers the wordiest prompt, by far: its choice is easy to see."""

    def __init__(self):
        self.rows = []

    def features(self, writer, tokenizer, ideas, prompts, wholes=None, weight_dtype="float32"):
        return features(writer, tokenizer, ideas, prompts, wholes=wholes, weight_dtype=weight_dtype)

    def utility(self, raw):
        self.rows.append(len(raw))
        return 1000.0 * raw[:, 1]


def test_the_generator_chooses_within_a_tier_by_its_keep_head(tiny_checkpoint, monkeypatch):
    from textopia.generation import decoder
    from textopia.generation.rerank import select
    from textopia.text import tokenize

    gen = textopia.load(str(tiny_checkpoint))
    assert gen.keep_head is None  # the tiny checkpoint has none
    gen.keep_head = _WordyHead()
    seen = []

    def recording_select(candidates, n, groups=None):
        seen.append(list(candidates))
        return select(candidates, n, groups)

    monkeypatch.setattr(decoder, "select", recording_select)
    chosen = gen.generate("old fisherman", n=1, seed=5, candidates=16, max_new_tokens=40)[0].prompt
    candidates = seen[-1]
    best = min(score.tier() for score, _, _ in candidates)
    tier = [(score, text) for score, text, _ in candidates if score.tier() == best]
    assert gen.keep_head.rows == [len(tier)]  # one batch, of the contenders alone
    assert all(score.keep is not None for score, _ in tier)
    assert all(score.keep is None for score, _, _ in candidates if score.tier() != best)
    assert len(tokenize(chosen)) == max(len(tokenize(text)) for _, text in tier)
    again = gen.generate("old fisherman", n=1, seed=5, candidates=16, max_new_tokens=40)[0].prompt
    assert again == chosen  # a seed gives the same prompt


class _ShortHead(_WordyHead):
    """A stand-in head that prefers the shortest prompt, by far."""

    def utility(self, raw):
        self.rows.append(len(raw))
        return -1000.0 * raw[:, 1]


def test_with_a_head_a_samples_clause_openings_are_candidates_and_one_form_of_it_is_kept(tiny_checkpoint,
                                                                                      monkeypatch):
    from textopia.generation import decoder, rerank
    from textopia.generation.rerank import select
    from textopia.text import clause_openings

    gen = textopia.load(str(tiny_checkpoint))
    seen = []

    def recording_select(candidates, n, groups=None):
        seen.append((list(candidates), list(groups)))
        return select(candidates, n, groups)

    monkeypatch.setattr(decoder, "select", recording_select)
    monkeypatch.setattr(rerank, "CUT_CLAUSES", True)
    settings = dict(n=4, seed=5, candidates=16, max_new_tokens=40)
    gen.generate("old fisherman", **settings)
    plain, _ = seen[-1]  # no head: the samples alone (the fluency without a head is the whole sample's)
    assert not any(b in clause_openings(a) for _, a, _ in plain for _, b, _ in plain)

    gen.keep_head = _ShortHead()
    got = [g.prompt for g in gen.generate("old fisherman", **settings)]
    candidates, groups = seen[-1]
    texts = [text for _, text, _ in candidates]
    cut = [i for i, t in enumerate(texts) if any(t in clause_openings(u) for u in texts)]
    assert cut and len(candidates) > len(plain)  # openings were added beside the samples
    for i in cut:  # each opening belongs to the sample it was cut from
        assert any(texts[i] in clause_openings(texts[j]) for j, g in enumerate(groups) if g == groups[i] and j != i)
    assert len({groups[texts.index(p)] for p in got}) == len(got)  # never a prompt and its own opening
    assert not any(a in clause_openings(b) for a in got for b in got)

    monkeypatch.setattr(rerank, "CUT_CLAUSES", False)
    gen.generate("old fisherman", **settings)
    assert [t for _, t, _ in seen[-1][0]] == [t for _, t, _ in plain]  # the same samples, no openings


def test_the_loader_reads_a_checkpoints_head_and_checks_its_size(tiny_checkpoint, tmp_path):
    folder = tmp_path / "with-head"
    shutil.copytree(tiny_checkpoint, folder)
    hidden = textopia.load(str(folder)).model.config.n_embd
    _random_head(hidden).save(folder / KEEP_DIR)
    gen = textopia.load(str(folder))
    assert isinstance(gen.keep_head, KeepHead)
    assert gen.generate("old fisherman", n=1, seed=3, candidates=8, max_new_tokens=30)
    _random_head(hidden + 1).save(folder / KEEP_DIR)
    with pytest.raises(TextopiaError, match="hidden size"):
        textopia.load(str(folder))


def test_the_default_ships_a_head_fitted_on_judged_pairs():
    gen = textopia.load("default")
    assert isinstance(gen.keep_head, KeepHead)
    assert gen.keep_head.config.pairs > 1000 and gen.keep_head.config.held_out_accuracy > 0.7
    assert float(gen.keep_head.weight[0]) > 0 > float(gen.keep_head.weight[1])  # fluent and concise, as judged


def _judged_folder(path, rows):
    """A judged folder as blind_judging writes it: ``rows`` of (idea, prompt, keep by judge 1, keep
    by judge 2)."""
    import json

    path.mkdir()
    key = [{"id": i, "idea": idea, "prompt": prompt, "source": "m"} for i, (idea, prompt, _, _) in enumerate(rows, 1)]
    (path / "key.json").write_text(json.dumps(key))
    for j in (0, 1):
        lines = ["id,relevance,coherence,keep"] + [f"{i},5,5,{row[2 + j]}" for i, row in enumerate(rows, 1)]
        (path / f"judge{j + 1}.csv").write_text("\n".join(lines) + "\n")
    return path


_ROWS = [("old fisherman", "old fisherman, oil painting", 8, 7), ("old fisherman", "old fisherman, 8k, 8k, 8k, 8k", 2, 3),
         ("old fisherman", "old fisherman by the sea, detailed", 6, 6),
         ("a castle", "a castle on a hill, by greg rutkowski", 9, 8), ("a castle", "a castle castle castle hill", 1, 2)]


def test_judged_pairs_are_a_judges_differing_keeps(tmp_path):
    from textopia.evaluation.judged import judged_pairs

    pairs = judged_pairs(_judged_folder(tmp_path / "j", _ROWS))
    assert len(pairs) == 8  # per judge: 3 pairs for the fisherman, 1 for the castle
    assert ("a castle", "a castle on a hill, by greg rutkowski", "a castle castle castle hill", 1.0) in pairs
    with pytest.raises(TextopiaError, match="not a judged folder"):
        judged_pairs(tmp_path)


def test_fit_keep_writes_a_head_the_loader_reads(tiny_checkpoint, tmp_path, capsys):
    from textopia.cli import main

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    a = _judged_folder(tmp_path / "round-a", _ROWS)
    b = _judged_folder(tmp_path / "round-b", [(i, p, 10 - k1, 10 - k2) for i, p, k1, k2 in _ROWS])
    assert main(["fit-keep", str(a), str(b), "--model", str(folder)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(folder / KEEP_DIR) and "16 judged pairs; held-out accuracy" in out.err
    head = KeepHead.load(folder / KEEP_DIR)
    assert head.config.pairs == 16 and head.config.command.startswith("textopia fit-keep")
    assert isinstance(textopia.load(str(folder)).keep_head, KeepHead)
    assert main(["export", str(folder), str(tmp_path / "shipped")]) == 0  # the head travels with its writer
    assert torch.equal(KeepHead.load(tmp_path / "shipped" / KEEP_DIR).weight, head.weight)
    assert main(["fit-keep", str(tmp_path / "nowhere"), "--model", str(folder)]) == 2
    assert "not a judged folder" in capsys.readouterr().err
    assert main(["fit-keep", str(a), "--model", "default"]) == 2  # the installed package is not written to
    assert main(["fit-keep", str(a), "--model", str(folder), "--l2", "-1"]) == 2
    capsys.readouterr()
    # A head is written as a whole folder: one holding the user's files is not replaced, before any work.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("draft")
    assert main(["fit-keep", str(a), "--model", str(folder), "--out", str(mine)]) == 2
    assert "mine holds files that are not a keep head: not replaced" in capsys.readouterr().err
    assert (mine / "thesis.txt").read_text() == "draft"
    assert main(["fit-keep", str(a), "--model", str(folder), "--out", str(a)]) == 2  # nor the judged folder itself
    assert main(["fit-keep", str(a), str(b), "--model", str(folder), "--out", str(folder / KEEP_DIR)]) == 0  # a head
    assert main(["fit-keep", str(a), "--model", str(folder), "--out", str(mine), "--overwrite"]) == 0
    assert is_keep_dir(mine) and not (mine / "thesis.txt").exists()
    # A judged prompt longer than the writer reads: one line naming its idea, no head written.
    capsys.readouterr()
    long = _judged_folder(tmp_path / "round-long", [*_ROWS, ("a castle", "a castle, " + "gold, " * 200, 3, 4)])
    assert main(["fit-keep", str(long), "--model", str(folder), "--out", str(tmp_path / "long-head")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a judged prompt for 'a castle' is" in err and "reads at most" in err
    assert not (tmp_path / "long-head").exists()


def test_features_are_exact_and_leave_the_shared_engines_weights_alone(tiny_checkpoint, monkeypatch):
    """Scored in float32 whatever the engine decodes with, and without switching the engine's
    weights, which a service's other batcher threads may be decoding with."""
    gen = textopia.load(str(tiny_checkpoint))
    args = (["old fisherman"], ["old fisherman, oil painting, by greg rutkowski"])
    gen.model.set_weight_dtype("float32")
    exact = features(gen.model, gen.tokenizer, *args)
    gen.model.set_weight_dtype("mixed")

    def no_switch(dtype):
        raise AssertionError("the engine's weights were switched")

    monkeypatch.setattr(gen.model, "set_weight_dtype", no_switch)
    assert torch.equal(features(gen.model, gen.tokenizer, *args), exact)
    assert gen.model.weight_dtype == "mixed"


@pytest.mark.parametrize("fast_bf16, weight_dtype, expected", [
    (True, "mixed", "bfloat16"), (True, "float16", "bfloat16"), (True, "float32", "float32"),
    (False, "mixed", "float32"), (False, "float32", "float32")])
def test_candidates_are_judged_in_bfloat16_only_where_the_cpu_has_it_and_exact_numbers_are_not_asked(
        tiny_checkpoint, monkeypatch, fast_bf16, weight_dtype, expected):
    """The reranker's scoring pass runs in the engine's ``scoring_dtype``: bfloat16 on a CPU with
    native bf16 (about twice float32's speed at its shapes), float32 where bf16 is emulated or the
    engine decodes in float32; the features stay close to the exact ones."""
    from textopia.models import gpt_engine, keep_head

    monkeypatch.setattr(gpt_engine, "cpu_has_fast_bf16", lambda: fast_bf16)
    gen = textopia.load(str(tiny_checkpoint))
    gen.model.set_weight_dtype(weight_dtype)
    assert gen.model.scoring_dtype == expected
    args = (gen.model, gen.tokenizer, ["old fisherman"], ["old fisherman, oil painting, by greg rutkowski"])
    if expected == "bfloat16":
        close = features(*args, weight_dtype="bfloat16")
        exact = features(*args)
        assert not torch.equal(close, exact)  # another pass ...
        assert torch.allclose(close, exact, atol=0.05, rtol=0.05)  # ... of about the same numbers
    used = []

    def spy(*a, weight_dtype="float32", **k):
        used.append(weight_dtype)
        return features(*a, weight_dtype=weight_dtype, **k)

    monkeypatch.setattr(keep_head, "features", spy)
    gen.keep_head = _random_head(gen.model.config.n_embd)
    gen.generate("old fisherman", n=1, seed=5, candidates=8, max_new_tokens=12)
    assert used and set(used) == {expected}


_MANY_ROWS = [(idea, f"{idea}, {tail}", keep, keep) for idea in ("old fisherman", "a castle", "a red fox", "a lighthouse")
              for tail, keep in (("oil painting by greg rutkowski", 8), ("8k, 8k, 8k", 2), ("detailed matte painting", 7),
                                 ("castle castle hill hill", 1), ("cinematic lighting, artstation", 6),
                                 ("unreal engine unreal engine", 3))]


def _accuracy(head, gen, judged) -> float:
    raw = head.features(gen.model, gen.tokenizer, [i for i, _ in judged.items], [p for _, p in judged.items])
    u = head.utility(raw)
    return float((((u[judged.a] - u[judged.b]) > 0).float() == judged.won).float().mean())


def test_a_fine_tuned_encoder_learns_the_pairs_and_is_read_as_it_was_trained(tiny_checkpoint, tmp_path):
    """The encoder, trained on transformers' GPT-2, is read by the engine as trained: its pairs,
    which a linear head on the writer's states ranks imperfectly, it ranks as the judges did; it
    keeps the writer's fluency and length; it survives a save and load (float16) with its ranking."""
    from textopia.evaluation.judged import fine_tuned_on_judged, fit_on_judged, judged_features

    gen = textopia.load(str(tiny_checkpoint))
    judged = judged_features(gen, [_judged_folder(tmp_path / "j", _MANY_ROWS)])
    linear = fit_on_judged(gen, judged, 30.0, -1.5)  # heavily penalised: it cannot rank every pair
    tuned = fine_tuned_on_judged(gen, judged, linear, 12, 1e-3)
    assert _accuracy(linear, gen, judged) < 0.95
    assert _accuracy(tuned, gen, judged) == 1.0
    assert tuned.config.encoder_epochs == 12 and tuned.config.encoder_lr == 1e-3
    assert tuned.encoder_engine(gen.model) is not gen.model and linear.encoder_engine(gen.model) is gen.model
    raw = tuned.features(gen.model, gen.tokenizer, ["old fisherman"], ["old fisherman, oil painting"])
    own = features(gen.model, gen.tokenizer, ["old fisherman"], ["old fisherman, oil painting"])
    assert torch.equal(raw[:, :2], own[:, :2]) and not torch.allclose(raw[:, 2:], own[:, 2:])
    # The encoder's pass reads hidden states alone: no output layer, its fluency column NaN.
    states = features(tuned.encoder_engine(gen.model), gen.tokenizer, ["old fisherman"],
                      ["old fisherman, oil painting"], fluency=False)
    assert torch.isnan(states[0, 0]) and torch.equal(states[:, 1:], raw[:, 1:])
    tuned.save(tmp_path / KEEP_DIR)
    assert is_keep_dir(tmp_path / KEEP_DIR) and (tmp_path / KEEP_DIR / "encoder.safetensors").is_file()
    loaded = KeepHead.load(tmp_path / KEEP_DIR)
    assert loaded.config == tuned.config and _accuracy(loaded, gen, judged) == 1.0
    (tmp_path / KEEP_DIR / "encoder.safetensors").unlink()
    with pytest.raises(TextopiaError, match="not a keep head"):
        KeepHead.load(tmp_path / KEEP_DIR)
    with pytest.raises(TextopiaError, match="encoder epochs"):
        fine_tuned_on_judged(gen, judged, linear, 0, 1e-3)


def test_fit_keep_fine_tunes_an_encoder_that_the_reranker_reads(tiny_checkpoint, tmp_path, capsys):
    from textopia.cli import main

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    a = _judged_folder(tmp_path / "round-a", _MANY_ROWS[:12])
    b = _judged_folder(tmp_path / "round-b", _MANY_ROWS[12:])
    assert main(["fit-keep", str(a), str(b), "--model", str(folder), "--encoder-epochs", "2", "--encoder-lr", "1e-4"]) == 0
    err = capsys.readouterr().err
    assert "held-out accuracy" in err and "the linear head alone" in err
    head = KeepHead.load(folder / KEEP_DIR)
    assert head.encoder is not None and "--encoder-epochs 2" in head.config.command
    assert head.config.notes["held_out"] == "2 groups of folders left out in turn"
    gen = textopia.load(str(folder))
    assert gen.keep_head.encoder is not None
    assert len(gen.generate("old fisherman", n=1, seed=0)) == 1  # the reranker's pass through the encoder
    for bad in (["--encoder-epochs", "-1"], ["--encoder-epochs", "21"], ["--encoder-lr", "0"]):
        assert main(["fit-keep", str(a), "--model", str(folder), *bad]) == 2
        assert "--encoder-" in capsys.readouterr().err
