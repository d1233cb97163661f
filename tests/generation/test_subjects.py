"""Subject clauses people wrote around an idea: what counts as one, how the corpus's are kept and
found, and how the writer opens candidates with them and the reranker prefers them."""

from collections import Counter

import pytest

import textopia
from textopia.generation.rerank import SampleScore
from textopia.text import (KNOWN_SUBJECTS_FILE, KNOWN_WORDS_FILE, KnownWords, count_subjects, idea_heads, inflects,
                           misspelled, subject_clause)


def test_a_subject_clause_is_a_prompts_first_clause_of_three_to_ten_words_without_number_or_credit():
    assert subject_clause("An Ice Dragon  breathing blue flames, 4k, artstation") == "an ice dragon breathing blue flames"
    assert subject_clause("ice dragon, 4k") is None  # two words: no detail to reuse
    assert subject_clause("26 year old man on a sailboat, photo") is None  # a number
    assert subject_clause("a castle painted by greg rutkowski, 8k") is None  # a credit
    assert subject_clause("a castle in the style of monet, 8k") is None
    assert subject_clause("one two three four five six seven eight nine ten eleven, x") is None
    texts = ["a witch casting a spell, 4k", "A witch casting a spell. artstation", "witch, 8k"]
    assert count_subjects(texts) == Counter({"a witch casting a spell": 2})


@pytest.mark.parametrize("idea, clause", [
    ("ice dragon", "an ice dragon breathing blue flames"),
    ("a witch", "a beautiful young witch with a crystal ball"),
    ("a tiger", "portrait of a tiger in the jungle"),
    ("a monk", "ancient japanese monk"),
    ("woman portrait", "beautiful woman portrait"),
])
def test_the_idea_as_the_subject_with_a_detail(idea, clause):
    assert idea_heads(idea, clause)


@pytest.mark.parametrize("idea, clause, why", [
    ("an owl", "a golden coin with owl symbol on it", "a small word before it: an object"),
    ("a cowboy", "phone wearing a cowboy hat", "a verb before it, a noun after it: a part"),
    ("a parrot", "jack sparrow with a parrot", "the object of 'with'"),
    ("a lynx", "lynx", "no detail"),
    ("a witch", "a witch and her witch cat", "an idea word twice"),
    ("cat on a windowsill", "cat sleeping in the windowsill", "the idea reworded"),
    ("a dragon", "a dragon skull portrait", "the idea a modifier of another noun"),
    ("a garden", "princess of the ice flower garden", "'of' after a subject of its own"),
    ("a mechanic", "modular steampunk bikini mechanism", "another word of one stem"),
    ("robot gardener", "fantasy illustration of a robot in a garden", "another word of one stem"),
])
def test_not_the_idea_as_the_subject(idea, clause, why):
    assert not idea_heads(idea, clause), why


def test_an_idea_word_is_written_as_the_user_wrote_it_or_in_its_other_number():
    assert all(inflects(a, b) for a, b in [("cat", "cat"), ("cats", "cat"), ("fox", "foxes"), ("fly", "flies"),
                                           ("wolf", "wolves"), ("knife", "knives")])
    assert not any(inflects(a, b) for a, b in [("mechanic", "mechanism"), ("garden", "gardener"), ("paint", "painting")])
    assert idea_heads("a bumblebee", "bumblebees on flowers")


def test_a_subject_with_a_misspelled_word_is_not_kept():
    """"psychdelic city dreamworld in the clouds" (34 uses of the word against 6,142 of
    "psychedelic" in the train split) was written for "city in the clouds"."""
    counts = Counter({"psychedelic": 6142, "psychdelic": 34, "concept": 60000, "concert": 1053, "dragon": 900,
                      "dragons": 10, "city": 5000, "clouds": 4000, "dreamworld": 9})
    assert misspelled("psychdelic", counts)
    assert not misspelled("psychedelic", counts)
    assert not misspelled("concert", counts)  # a common word of its own, though one edit from a commoner one
    assert not misspelled("dragons", counts)  # a plural
    known = KnownWords.from_counts(counts, subject_counts=Counter({"psychdelic city dreamworld in the clouds": 4,
                                                                   "psychedelic city dreamworld in the clouds": 3}))
    assert list(known.subjects) == ["psychedelic city dreamworld in the clouds"]


def test_subjects_travel_with_the_known_words_and_are_found_most_written_first(tmp_path):
    known = KnownWords.from_counts(Counter({"witch": 9}), subject_counts=Counter({
        "a witch casting a spell": 10, "beautiful ancient frost witch": 11, "a witch with a black cat": 3,
        "a rare witch in the rain": 2, "phone wearing a witch hat": 7}))
    assert "a rare witch in the rain" not in known.subjects  # held by fewer than MIN_CLAUSE_COUNT prompts
    known.save(tmp_path / KNOWN_WORDS_FILE)
    back = KnownWords.load(tmp_path / KNOWN_WORDS_FILE)
    assert back.subjects == known.subjects
    assert back.subjects_for("a witch") == [("beautiful ancient frost witch", 11), ("a witch casting a spell", 10),
                                            ("a witch with a black cat", 3)]
    assert back.subjects_for("a witch", limit=1) == [("beautiful ancient frost witch", 11)]
    assert back.subjects_for("a wizard") == [] and back.subjects_for("the") == []
    assert KnownWords(["witch"]).subjects_for("a witch") == []  # a list without subjects
    # A name that ends with the idea's word is not the idea as a subject: "megan" is followed by
    # "fox" in every clause that holds it; "black" by many words.
    names = KnownWords([], subjects={"portrait of megan fox as a queen": 9, "megan fox in a red dress": 5,
                                     "a black fox in the snow": 4, "a black cat on a roof": 6,
                                     "a black dog at night": 3})
    assert names.subjects_for("a fox") == [("a black fox in the snow", 4)]
    # Nor one that disparages the subject where the idea does not.
    plain = KnownWords([], subjects={"an ugly old witch in a swamp": 6, "a witch casting a spell": 4})
    assert plain.subjects_for("a witch") == [("a witch casting a spell", 4)]
    assert plain.subjects_for("an ugly witch") == [("an ugly old witch in a swamp", 6)]
    (tmp_path / KNOWN_SUBJECTS_FILE).write_text("a witch casting a spell\tmany\n")
    with pytest.raises(ValueError, match="line 1 is not 'clause<TAB>count'"):
        KnownWords.load(tmp_path / KNOWN_WORDS_FILE)


def test_a_subject_people_wrote_ranks_first_within_a_tier_but_is_not_a_fault_nor_above_one():
    plain = SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=-1.0)
    human = SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=-1.0, human_subject=True)
    broken_human = SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=-1.0, human_subject=True, broken=True)
    assert plain.faultless and human.faultless and plain.tier() == human.tier()
    assert human.rank() < plain.rank() < broken_human.rank()


def test_select_takes_a_subject_people_wrote_over_a_plain_opening_the_keep_head_likes_more():
    from textopia.generation.rerank import select

    plain = SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=-1.0, keep=3.0)
    human = SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=-1.0, keep=-1.0, human_subject=True)
    late = SampleScore(recall=1.0, invented=0, stutter=False, mean_logprob=-1.0, keep=9.0, human_subject=True,
                       idea_late=True)
    candidates = [(plain, "an owl, 4k", "plain"), (late, "x, owl", "late"), (human, "an owl in the snow, 4k", "human")]
    assert select(candidates, 1) == ["human"]
    assert select(candidates, 2) == ["human", "plain"]


def _with_subjects(tiny_checkpoint, subjects: dict[str, int]):
    gen = textopia.load(str(tiny_checkpoint))
    known = gen.known_words or KnownWords([])
    gen.known_words = KnownWords(known.words, known.names, known.clauses, subjects)
    return gen


def test_candidates_open_with_subjects_people_wrote_and_one_is_chosen(tiny_checkpoint, monkeypatch):
    from textopia.generation import decoder
    from textopia.generation.rerank import select

    subjects = {"an old fisherman mending his nets": 40, "old fisherman on a wooden boat": 30,
                "portrait of an old fisherman smoking a pipe": 20, "an old fisherman with a grey beard": 10,
                "an old sexy fisherman at the beach": 50, "old fisherman holding a huge fish": 5}
    gen = _with_subjects(tiny_checkpoint, subjects)
    seen = []

    def recording_select(candidates, n, groups=None):
        seen.append(list(candidates))
        return select(candidates, n, groups)

    monkeypatch.setattr(decoder, "select", recording_select)
    settings = dict(n=1, seed=5, candidates=16, max_new_tokens=30)
    chosen = gen.generate("old fisherman", **settings)[0].prompt
    opened = {text.split(",")[0] for score, text, _ in seen[-1] if score.human_subject}
    assert len(opened) == gen.subject_openings  # four clauses, one row each
    assert opened <= set(subjects) and "an old sexy fisherman at the beach" not in opened  # never NSFW
    assert gen.generate("old fisherman", **settings)[0].prompt == chosen  # a seed gives the same prompt
    # A word the user bans is never in a subject drawn for them.
    gen.generate("old fisherman", banned_words=("pipe", "nets"), **settings)
    opened = {text.split(",")[0] for score, text, _ in seen[-1] if score.human_subject}
    assert opened and not any("pipe" in c or "nets" in c for c in opened)


def test_a_subject_is_written_with_its_compounds_closed(tiny_checkpoint, monkeypatch):
    """The corpus's clauses are spaced as the model reads them ("red - haired"); a reader sees
    "red-haired"."""
    from textopia.generation import decoder
    from textopia.generation.rerank import select

    seen = []

    def recording_select(candidates, n, groups=None):
        seen.append(list(candidates))
        return select(candidates, n, groups)

    monkeypatch.setattr(decoder, "select", recording_select)
    gen = _with_subjects(tiny_checkpoint, {"a red - haired old fisherman on a boat": 40})
    gen.generate("old fisherman", n=1, seed=5, candidates=16, max_new_tokens=30)
    opened = {text.split(",")[0] for score, text, _ in seen[-1] if score.human_subject}
    assert opened == {"a red-haired old fisherman on a boat"}


def test_without_subjects_or_reranking_no_candidate_opens_with_one(tiny_checkpoint, monkeypatch):
    from textopia.generation import decoder
    from textopia.generation.rerank import select

    seen = []

    def recording_select(candidates, n, groups=None):
        seen.append(list(candidates))
        return select(candidates, n, groups)

    monkeypatch.setattr(decoder, "select", recording_select)
    gen = _with_subjects(tiny_checkpoint, {})
    gen.generate("old fisherman", n=1, seed=5, candidates=16, max_new_tokens=30)
    assert not any(score.human_subject for score, _, _ in seen[-1])
    gen = _with_subjects(tiny_checkpoint, {"an old fisherman mending his nets": 40})
    out = gen.generate("old fisherman", n=2, seed=5, candidates=8, max_new_tokens=30, rerank=False)
    assert not any(g.prompt.startswith("an old fisherman mending") for g in out)


@pytest.mark.parametrize("name", ["default", "lstm", "latent"])
def test_the_shipped_writers_carry_the_corpus_subjects(name):
    gen = textopia.load(name)
    assert len(gen.known_words.subjects) > 10_000
    found = gen.known_words.subjects_for("ice dragon")
    assert found and all(idea_heads("ice dragon", clause) for clause, _ in found)
