import random

from textopia.data.ideas import content_words, derive_idea


def test_ideas_come_from_the_subject_not_the_style_tail():
    prompt = ("portrait of a beautiful woman with long hair on a bicycle, van gogh style, "
              "highly detailed, trending on artstation, by greg rutkowski, 8k")
    rng = random.Random(0)
    allowed = {"portrait", "woman", "long", "hair", "bicycle", "van", "gogh"}
    sizes = set()
    for _ in range(200):
        idea = derive_idea(prompt, rng)
        words = set(idea.replace(",", " ").lower().split())
        assert words <= allowed, idea
        sizes.add(len(idea.replace(", ", ",").replace(",", " ").split()))
    assert min(sizes) == 1 and max(sizes) >= 4


def test_idea_order_varies_and_none_without_content():
    rng = random.Random(1)
    firsts = {derive_idea("a red fox jumping over a frozen river at night", rng).split()[0] for _ in range(50)}
    assert len(firsts) > 2
    assert derive_idea("trending on artstation, 8k, highly detailed", rng) is None


def test_content_words():
    assert content_words("A photo of the cat, 4k, by Greg") == ["photo", "cat", "greg"]
