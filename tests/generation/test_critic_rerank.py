"""The coherence critic and the reranker's subject rule and candidate budget."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest
import torch

import textopia
from textopia.generation.base import TextopiaError
from textopia.generation.config import GenerationConfig, rows_per_round
from textopia.generation.rerank import score_opening, score_sample, select
from textopia.text import (KNOWN_CLAUSES_FILE, MIN_CLAUSE_COUNT, KnownWords, broken_phrase, clashes, clause_parts,
                           count_clauses, credited_names, fix_articles, idea_in_subject, idea_kept_together, idea_reworded,
                           clause_openings, close_spaced_compounds, plural_phrase, repeats_idea_word, repeats_in_clause, repeats_phrase,
                           repeats_variant, restates_tag)
from textopia.text import drops_idea_article, overrides_maker, restates_quality


@pytest.mark.parametrize("idea, prompt, expected", [
    ("lighthouse storm", "a storm from a storm with the lighthouse", True),
    ("tundra icy", "tundra icy with icy tundra", True),
    ("castle", "a castle on a hill, castles in the sky", True),  # by stem
    ("lighthouse storm", "a lighthouse in a storm, digital art, artstation", False),
    ("woman portrait", "portrait of a woman with long hair", False),
])
def test_repeats_idea_word(idea, prompt, expected):
    assert repeats_idea_word(idea, prompt) is expected


@pytest.mark.parametrize("idea, prompt, expected", [
    ("swans", "a giant red cat in the sun, highly detailed, digital art, trending on artstation, "
              "concept art, illustration, swans", False),
    ("swans", "two white swans on a lake at dawn, oil painting, by monet", True),
    ("lighthouse storm", "a lighthouse on a rocky coast at night during a heavy storm with waves", True),  # one clause
    ("lighthouse storm", "a lighthouse, storm, dramatic sky", True),  # within the opening words
    ("red fox", "a painting, detailed, by greg rutkowski, 8k, trending on artstation, sharp focus, red fox", False),
])
def test_idea_in_subject(idea, prompt, expected):
    assert idea_in_subject(idea, prompt) is expected


def test_subject_rule_is_a_tier_after_clean_words_before_fluency():
    good = score_sample("lighthouse storm", "a lighthouse in a storm, digital art", -20, 10, None)
    repeated = score_sample("lighthouse storm", "a storm from a storm with the lighthouse", -20, 10, None)
    late = score_sample("swans", "a giant red cat in the sun, highly detailed, digital art, trending on "
                                 "artstation, concept art, illustration, swans", -20, 10, None)
    stutter = score_sample("lighthouse storm", "a lighthouse lighthouse in a storm", -20, 10, None)
    assert good.clean and not repeated.clean and not late.clean
    assert repeated.repeats_idea and late.idea_late
    assert good.tier() < repeated.tier() < stutter.tier()
    assert late.tier() == repeated.tier()



@pytest.mark.parametrize("idea, prompt, expected", [
    ("lighthouse storm", "a lighthouse in a storm, oil painting", True),
    ("hummingbird drinking from a flower", "a hummingbird drinking from a red flower", True),
    ("old fisherman", "old photo of an old fisherman", True),  # any place of the first word
    ("hummingbird drinking from a flower", "hummingbird drinking beer and wine bottle of flower", False),
    ("a bowl of ramen", "ramen stranger things on a bowl", False),  # out of order
    ("astronaut riding a horse", "a horse riding an astronaut", False),
    ("castle", "a castle", True),
])
def test_idea_kept_together(idea, prompt, expected):
    assert idea_kept_together(idea, prompt) is expected


@pytest.mark.parametrize("idea, prompt, expected", [
    ("cat sleeping on a windowsill", "cat sleeping in the windowsill, 4k", True),
    ("city in the clouds", "city of clouds on night", True),
    ("bowl of ramen", "bowl with ramen, food photography", True),
    ("child flying a kite", "child flying over kite, digital painting", True),  # only an article between
    ("lighthouse in a storm", "a lighthouse, storm, oil painting", True),  # a comma is no phrase
    ("cat sleeping on a windowsill", "a cat sleeping on the windowsill", False),  # articles aside
    ("cat sleeping on a windowsill", "cat sleeping peacefully on a windowsill", False),  # a word added
    ("woman in a sunflower field", "woman wearing a sunflower field, portrait", True),  # a verb for "in"
    ("woman in a sunflower field", "woman standing in a sunflower field", False),  # the idea's "in" kept
    ("robot playing violin", "robot playing a violin", False),  # no small word asked for
    ("lighthouse storm", "a lighthouse in a storm", False),  # keywords: any small words will do
    ("woman portrait", "portrait of a woman", False),
    ("bowl of ramen", "a bowl of ramen, a bowl with chopsticks", False),  # written once as asked
    ("a boy and his robot", "a boy that looks like a robot, digital art", True),  # three words and an article
    ("a boy and his robot", "a boy and his giant robot", False),
    ("a boy and his robot", "a boy in a field near a tall robot", False),  # further than three words: apart
])
def test_idea_reworded(idea, prompt, expected):
    assert idea_reworded(idea, prompt) is expected


def test_a_reworded_idea_ranks_with_a_scattered_one():
    kept = score_sample("cat sleeping on a windowsill", "cat sleeping on a windowsill, 4k", -20, 10, None)
    reworded = score_sample("cat sleeping on a windowsill", "cat sleeping in the windowsill, 4k", -20, 10, None)
    swapped = score_sample("astronaut riding a horse", "a horse riding an astronaut, oil painting", -20, 10, None)
    assert kept.clean and reworded.idea_reworded and not reworded.clean
    assert kept.tier() < reworded.tier() == swapped.tier()


@pytest.mark.parametrize("idea, prompt, expected", [
    ("a little mouse in a teacup", "little mouse in a teacup, highly detailed", True),  # at the start
    ("a caravan in the desert", "caravan in desert, digital art", True),  # both articles dropped
    ("a caravan in the desert", "a caravan in desert, digital art", True),  # the second one
    ("portrait of a jazz singer", "portrait of jazz singer, highly detailed", True),  # after a small word
    ("the eiffel tower", "eiffel tower at night", True),
    ("a caravan in the desert", "a caravan in the desert, digital art", False),
    ("a caravan in the desert", "the caravan in a desert, digital art", False),  # another article will do
    ("portrait of a cowboy", "portrait of an old cowboy, oil painting", False),  # an adjective before it
    ("a magician", "young magician casting a spell", False),
    ("a tiger", "two tigers in the grass", False),  # a number
    ("lighthouse storm", "lighthouse in storm, 4k", False),  # no article asked for
    ("a tiger", "a jungle, 4k", False),  # the word not written
])
def test_drops_idea_article(idea, prompt, expected):
    assert drops_idea_article(idea, prompt) is expected


def test_a_dropped_article_ranks_with_a_reworded_idea():
    kept = score_sample("a caravan in the desert", "a caravan in the desert, 4k", -20, 10, None)
    bare = score_sample("a caravan in the desert", "caravan in desert, 4k", -20, 10, None)
    reworded = score_sample("a caravan in the desert", "a caravan of the desert, 4k", -20, 10, None)
    assert kept.clean and bare.drops_article and not bare.clean
    assert kept.tier() < bare.tier() == reworded.tier()
    whole = score_sample("a caravan in the desert", "caravan in desert, 4k, oil painting", -20, 10, None)
    assert score_opening("a caravan in the desert", "caravan in desert, 4k", whole, None).drops_article


@pytest.mark.parametrize("prompt, expected", [
    ("a fox, highly detailed, 8k, intricate details", True),
    ("a fox, hyper detailed, concept art, high detail", True),
    ("a fox, 8k resolution, full hd", True),
    ("a fox, 4k, hd, trending on artstation", True),
    ("a fox, highly detailed, 8k", False),  # one of each
    ("a fox, detailed face, highly detailed", False),  # "detailed face" says what is detailed
    ("a fox, 8k photorealistic, hd", False),
    ("a fox, 8k uhd, very, high", False),  # one tag, and intensifiers alone
])
def test_restates_quality(prompt, expected):
    assert restates_quality(prompt) is expected


def test_a_quality_tag_said_twice_ranks_with_a_repeated_phrase():
    once = score_sample("a fox", "a fox, 8k resolution, oil painting", -20, 10, None)
    twice = score_sample("a fox", "a fox, 8k resolution, full hd, oil painting", -20, 10, None)
    assert twice.repeats_phrase and not once.repeats_phrase and once.tier() < twice.tier()
    assert not score_opening("a fox", "a fox, 8k resolution", twice, None).repeats_phrase


@pytest.mark.parametrize("prompt, expected", [
    ("girl with a red umbrella, anime style, anime, concept art", True),
    ("a fox, detailed, highly detailed", True),
    ("a fox, fantasy, fantasy art, 4k", True),
    ("a fox, 4k, 4k", True),
    ("a fox, highly detailed, detailed fur", False),  # "detailed fur" says more
    ("a fox in a forest, forest background, by greg rutkowski", False),  # the subject is no tag
    ("a fox, digital art, trending on artstation", False),
])
def test_restates_tag(prompt, expected):
    assert restates_tag(prompt) is expected


@pytest.mark.parametrize("prompt, expected", [
    ("a treehouse in a giant oak, a beautiful river is under the river, digital painting", True),
    ("a city in the clouds, stars and stars, 4k", True),
    ("a knight, d & d, fantasy art", False),  # one-letter words
    ("a wizard in a tower, with a long beard and a pointed hat, holding a staff of light, by the window "
     "of the wizard tower", False),  # a long clause may name a thing again
    ("a fox in the snow, snowy forest, 4k", False),  # another clause
])
def test_repeats_in_clause(prompt, expected):
    assert repeats_in_clause(prompt) is expected


def test_an_idea_word_twice_is_the_subject_rules_matter_not_the_clauses():
    assert repeats_in_clause("a storm from a storm with the lighthouse")
    assert not repeats_in_clause("a storm from a storm with the lighthouse", "lighthouse storm")


def test_a_restated_tag_ranks_below_a_clean_prompt():
    clean = score_sample("fox", "a fox, anime style, concept art", -20, 10, None)
    padded = score_sample("fox", "a fox, anime style, anime, concept art", -20, 10, None)
    assert padded.repeats_phrase and not clean.repeats_phrase
    assert clean.tier() < padded.tier()


@pytest.mark.parametrize("text, expected", [
    ("a fox, highly - detailed, sci - fi, award - winning", "a fox, highly-detailed, sci-fi, award-winning"),
    ("a fox - 4k", "a fox-4k"),
    ("a fox, -, 4k", "a fox, -, 4k"),  # no word either side
    ("a fox, self-portrait", "a fox, self-portrait"),
    ("a fox, 3 d render, 2 D art", "a fox, 3d render, 2D art"),
    ("a fox, 3 days old, 1.3 d", "a fox, 3 days old, 1.3 d"),
    ("a fox, canon eos, f / 1. 8, 3 / 4 view", "a fox, canon eos, f/1.8, 3/4 view"),
    ("a fox in 1920. 2 cats", "a fox in 1920. 2 cats"),  # a sentence's end, not decimals
])
def test_close_spaced_compounds(text, expected):
    assert close_spaced_compounds(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("a fox in the snow, oil painting, by ivan shishkin, 8k",
     ["a fox in the snow, oil painting", "a fox in the snow, oil painting, by ivan shishkin"]),
    ("a fox. art by j. c. leyendecker; 4k, hd.",  # initials are not clause ends
     ["a fox. art by j. c. leyendecker", "a fox. art by j. c. leyendecker; 4k"]),
    ("a fox, 8k", []),  # one clause after the subject: nothing shorter of two clauses
    ("a fox,, 8k, hd", ["a fox,, 8k"]),
])
def test_clause_openings_end_where_a_clause_ends(text, expected):
    assert clause_openings(text) == expected
    assert clause_openings(text, min_clauses=1)[1:] == expected  # and the subject's clause alone first


def test_a_scattered_idea_ranks_with_a_late_one():
    kept = score_sample("astronaut riding a horse", "an astronaut riding a horse, oil painting", -20, 10, None)
    swapped = score_sample("astronaut riding a horse", "a horse riding an astronaut, oil painting", -20, 10, None)
    assert kept.clean and swapped.idea_scattered and not swapped.clean
    assert kept.tier() < swapped.tier()


@pytest.mark.parametrize("prompt, expected", [
    ("a fox, art by greg rutkowski and greg rutkowski", True),
    ("a fox, highly detailed, sharp focus, highly detailed", True),
    ("a fox, highly detailed, sharp focus, detailed fur", False),  # one word again is not a phrase
    ("a fox and a fox cub", False),  # stop words between: not side by side
    ("a fox, trending on artstation, sharp focus, trending on deviantart", True),  # a tag's opening twice
    ("a fox, art by greg rutkowski, art by alphonse mucha", True),
    ("a fox in the snow, by a river in the woods", False),  # "in the" twice: no content word
])
def test_repeats_phrase(prompt, expected):
    assert repeats_phrase(prompt) is expected


@pytest.mark.parametrize("prompt, expected", [
    ("a castle in winter, art by albert bierstadt, victo ngai, thomas kincade, thomas kinkade", True),
    ("a balloon festival, by artgem, by artgerm, by wlop", True),
    ("robot learning to paint, in the style of h. r. giger, and hr giger", True),  # initials apart
    ("a ship, hyperrealism, hyper realism", True),
    ("a ship, digital painting, by greg rutkowski, digtial painting", True),
    ("a ship by greg rutkowski and alphonse mucha, 4k, 8k", False),
    ("a knight by j. c. leyendecker, sharp focus", False),  # initials are not cut apart
    ("anger, angel, metal, medal", False),  # under six letters: too short to tell from a typo
    ("a castle, by thomas cole and thomas moran", False),  # two painters
])
def test_repeats_variant(prompt, expected):
    assert repeats_variant(prompt) is expected


def test_a_name_in_two_spellings_is_a_repeat_for_the_reranker():
    clean = score_sample("a castle", "a castle in winter, by thomas kinkade, 4k", -20, 10, None)
    twice = score_sample("a castle", "a castle in winter, by thomas kinkade, thomas kincade", -20, 10, None)
    assert not clean.repeats_phrase and twice.repeats_phrase and clean.tier() < twice.tier()


@pytest.mark.parametrize("prompt, idea, expected", [
    ("a harbor at sunrise, sunset colors", None, True),
    ("a quiet harbor at dawn, midnight, 4k", None, True),
    ("photo of a harbor, oil painting", None, True),
    ("a watercolor of a harbor, octane render", None, True),
    ("a harbor at sunset, oil painting, by monet", None, False),
    ("a couple walking on the beach, oil painting, digital art", None, True),
    ("a train crossing a desert, photorealistic, by makoto shinkai", None, True),
    ("a train crossing a desert, anime, by makoto shinkai", None, False),
    ("a harbor, digital painting, octane render", None, False),
    ("a harbor, painting by rembrandt, octane render", None, True), ("a harbor, matte painting, octane render", None, False),
    ("a seal on an ice floe, sunny, night", None, True), ("a harbor at night, moonlight", None, False),
    ("a photo of a sunrise, seen at sunset", "sunrise at sunset", False),  # the user's own words
    ("a quiet harbor at dawn, midnight, 4k", "a quiet harbor at dawn", True),  # the model's word clashes with the user's
    ("a photo of a harbor, oil painting", "photo of a harbor", True),
    ("a harbor at dawn, sunrise light", "a harbor at dawn", False),  # the same alternative again
    ("a quiet harbor at dawn, summer evening", "a quiet harbor at dawn", True),  # evening is dusk's hour
    ("a harbor on a misty morning, sunrise light", None, False),  # morning is dawn's
    ("an owl on a branch, digital painting, 4k, intricate, 8k resolution", None, True),  # two resolutions
    ("an owl on a branch, digital painting, 8k resolution", None, False),
    ("an owl on a branch, photorealistic, anime screenshot", None, True),
    ("an owl on a branch, hyper realistic, cartoon style", None, True),
    ("an anime owl on a branch, cel shading, trending on pixiv", None, False),
    ("an owl on a branch, black and white photo, vibrant colors", None, True),
    ("an owl on a branch, black and white photo, high contrast", None, False),
    ("a lighthouse on a cliff, photo, unreal engine 5, 8k", None, True),  # a photograph is not rendered
    ("a lighthouse on a cliff, concept art, illustration", None, False),
    ("a lighthouse on a cliff, photo, 35mm lens", None, False),
    ("a farmer with a tractor, photorealistic, pixar and dreamworks", None, True),  # a realistic animated film
    ("a farmer with a tractor, pixar style, 3d render", None, False),
    ("a haunted forest at midnight, blue sky, digital art", "a haunted forest at midnight", True),
    ("a haunted forest at midnight, full moon, digital art", "a haunted forest at midnight", False),
    ("a ballerina on a stage, soft focus portrait, sharp focus", None, True),
    ("a ballerina on a stage, soft focus portrait", None, False),
    ("a sailboat on a calm lake, realistic photo, golden hour, trending on artstation", None, True),
    ("a sailboat on a calm lake, oil painting, trending on artstation", None, False),
    # A medium the user names is what the picture is: the model adds no medium that contradicts it.
    ("a linocut of a rooster, concept art, trending on artstation", "a linocut of a rooster", True),
    ("a linocut of a rooster, bold lines, trending on artstation", "a linocut of a rooster", False),
    ("a linocut of a rooster, photorealistic", "a linocut of a rooster", True),  # a print is not photorealistic
    ("a linocut of a rooster, ultra detailed, 8k render", "a linocut of a rooster", True),
    # Nor has a paint, a print or an old painter's picture the look of a digital one.
    ("a pencil drawing of a lion, trending on artstation, 8k, sharp focus", "a pencil drawing of a lion", True),
    ("a pencil drawing of a lion, highly detailed, trending on artstation", "a pencil drawing of a lion", False),
    ("a pen and ink drawing of a crow, concept art", "a pen and ink drawing of a crow", True),
    ("a knitted fox, digital painting", "a knitted fox", True),
    ("a charcoal portrait of a soldier, 8k, octane render", "a charcoal portrait of a soldier", True),
    ("a charcoal portrait of a soldier, photorealistic", "a charcoal portrait of a soldier", True),
    ("a photorealistic pencil drawing of an eye, detailed", "a photorealistic pencil drawing of an eye",
     False),  # a genre the user asked for
    ("a pencil sketch of an old man, dslr photo", "a pencil sketch of an old man", True),
    ("a stained glass window of a saint, digital painting", "a stained glass window of a saint", True),
    ("a stained glass window of a saint, octane render", "a stained glass window of a saint", False),
    ("a comic panel of a detective, ultra realistic", "a comic panel of a detective", True),
    ("a comic panel of a detective, ink, bold colors", "a comic panel of a detective", False),
    ("a drone shot of a coral reef, digital art, cinematic", "a drone shot of a coral reef", True),
    ("a drone shot of a coral reef, octane render", "a drone shot of a coral reef", True),
    ("a drone shot of a coral reef, award winning photography", "a drone shot of a coral reef", False),
    ("a selfie of a dog at the beach, oil painting", "a selfie of a dog at the beach", True),
    ("a renaissance portrait of a merchant, concept art", "a renaissance portrait of a merchant", True),
    ("an art deco poster of a train, unreal engine, hyperrealistic", "an art deco poster of a train", True),
    ("an art deco poster of a train, bold geometric shapes", "an art deco poster of a train", False),
    ("a minimalist poster of a mountain, detailed background", "a minimalist poster of a mountain", True),
    ("a minimal line drawing of a cat, intricate", "a minimal line drawing of a cat", True),
    ("a minimal line drawing of a cat, white background", "a minimal line drawing of a cat", False),
    ("an abstract painting of emotions, highly detailed, hyper realistic", "an abstract painting of emotions", True),
    ("an abstract sculpture of a wave, studio photo", "an abstract sculpture of a wave", False),
    ("a logo of a fox, a detailed painting by picasso", "a logo of a fox", True),  # a design is drawn flat
    ("an emoji of a crying cat, studio lighting, professional photography", "an emoji of a crying cat", True),
    ("a sticker of a sleepy sloth, digital painting, trending on artstation", "a sticker of a sleepy sloth", False),
    ("a snowy mountain in the style of hokusai, art by greg rutkowski", "a snowy mountain in the style of hokusai",
     True),  # a maker the user names (overrides_maker)
    # A design the user asked for credits no painter the user did not name.
    ("logo for a gym, by greg rutkowski and craig mullins", "logo for a gym", True),
    ("a flat icon of a house, a detailed painting by daniel gerhartz", "a flat icon of a house", True),
    ("henna pattern, in the style of james gurney", "henna pattern", True),
    ("henna pattern, intricate, black ink on white", "henna pattern", False),
    ("a logo in the style of paul rand, minimal", "a logo in the style of paul rand", False),
    ("an astronaut planting a flag, by anton fadeev", "an astronaut planting a flag", False),
    ("label for a honey jar, a digital painting by greg rutkowski", "label for a honey jar", True),
    # Nor on a print or a craft.
    ("a linocut of crows on a wire, art by james jean and greg rutkowski", "a linocut of crows on a wire", True),
    ("an embroidered cottage, by makoto shinkai", "an embroidered cottage", True),
    ("a claymation farmyard, by greg rutkowski", "a claymation farmyard", True),
    ("a claymation farmyard, digital art", "a claymation farmyard", True),
    ("a woodcut of a wave in the style of hokusai", "a woodcut of a wave in the style of hokusai", False),
    ("a mosaic of a peacock, studio photo, 8k", "a mosaic of a peacock", False),
    # A pattern is not photographed or lit, though it may be painted; lines and cells are not rendered.
    ("seamless pattern of strawberries, 8k photography", "seamless pattern of strawberries", True),
    ("seamless pattern of lemons, watercolor", "seamless pattern of lemons", False),
    ("pixel art fishing village, landscape, watercolor painting", "pixel art fishing village", True),
    ("coloring page of a fairy house, professional lighting", "coloring page of a fairy house", True),
    ("blueprint of a space station, octane render, 3d", "blueprint of a space station", True),
    ("a 3d logo of a fox, octane render", "a 3d logo of a fox", False),
    # Only the user's medium is held to: the model's own mix of them is the corpus's.
    ("a rooster, linocut, concept art", "a rooster", False),
    ("a linocut of a rooster, concept art", None, False),
    # Two seasons, one of them the model's; the user's own pair stands.
    ("montreal winter street, summer morning", "montreal winter street", True),
    ("a winter street, snow, cold morning", "a winter street", False),
    ("from summer to winter", "from summer to winter", False),
    # A date against the idea's, or two bare dates that disagree; a date within the idea's stands.
    ("1910s suffragette march, 1903, highly detailed", "1910s suffragette march", True),
    ("a 1970s living room, 1960 s", "a 1970s living room", True),
    ("a 1970s living room, 1975, polaroid", "a 1970s living room", False),
    ("the moon landing 1969, realistic photo", "moon landing 1969", False),
    ("a spanish galleon, 1920s, 1890s", "a spanish galleon", True),
    ("a spanish galleon, 1890s, oil painting", "a spanish galleon", False),
    # A year alone the idea did not ask for; a decade names a look, a year in a clause its reason.
    ("portrait of a jazz singer, 1880, photography", "portrait of a jazz singer", True),
    ("a potter trimming a bowl, an 1849", "a potter trimming a bowl", True),
    ("a still life of pears, ( 1992 )", "a still life of pears", True),
    ("black and white street photo, 1980's", "black and white street photo", False),
    ("a space battle, wallpaper-1024", "a space battle", False),
    ("a red 1965 mustang, studio photo", "a red car", False),
    ("a movie made in 2019, set in 1860, a family", "a family", False),  # a film and its setting
    ("a street in the 1900s, 1923", "a street in the 1900s", False),  # a century takes its years
])
def test_clashes(prompt, idea, expected):
    assert clashes(prompt, idea) is expected


@pytest.mark.parametrize("prompt, expected", [
    ("a woman having a the camera", True),
    ("a painting by a, 4k", True),  # a clause ending on its article
    ("a quiet harbor at dawn, the, art, hdr", True),  # a clause of an article alone
    ("a cat in the hat, a portrait of the queen", False),
    ("a witch brewing a potion, by artgerm, a. | featured on pixiv", True),  # a lone letter as a clause
    ("a witch brewing a potion, by j. c. leyendecker", False),  # initials within a clause
    ("a palace made of ice, 3d art, in the style of and unreal engine", True),  # a preposition before "and"
    ("a painting of daenerys, by by stanley artgerm lau", True),
    ("a hockey player, portrait design by, mark brooks", True),  # a clause ending on "by"
    ("a mountain lake at dawn, award-winning photo, trending", True),  # "trending" on what?
    ("a cute astronaut penguin, helmet on, floating in space", False),  # "on" can end one
    ("a cup of coffee on a table, on, film photograph", True),  # but not be one alone
    ("a medieval market square in, painting by greg rutkowski", True),  # "in" cannot end one
    ("a mermaid under a sea, under, dramatic lighting", True),
    ("a village, seen from above, oil painting", False),  # "above" can
    ("a meerkat in the style, fantasy art by greg rutkowski", True),  # the style of what?
    ("a meerkat, anime style, fantasy art", False),
    ("a frog wearing a top hat, 4k, photography, professional, trending on", True),  # "trending on" cannot
    ("a castle made of ice, by greg rutkowski and, 4k", True),  # nor "and"
    ("a castle made of ice, 8k, highly", True),  # nor an intensifier without its word
    ("a castle made of ice, highly detailed, sharp", False),  # "sharp" is a tag people write
    ("a castle made of ice, by greg rutkowski and alphonse mucha", False),
    ("a rainy night in a neon city, an 8k, unreal engine 5", True),  # an article before a resolution alone
    ("a rainy night in a neon city, a 4k photo, unreal engine 5", False),
])
def test_broken_phrase(prompt, expected):
    assert broken_phrase(prompt) is expected


@pytest.mark.parametrize("idea, prompt, expected", [
    ("floating islands above the clouds", "a floating islands above the clouds, matte painting", True),
    ("floating islands above the clouds", "floating islands above the clouds, matte painting", False),
    ("floating islands above the clouds", "the floating islands above the clouds, matte painting", False),
    ("children flying kites", "a children flying kites, cartoon", True),
    ("octopus playing the piano", "an octopus playing the piano, oil painting", False),
    ("castle on a cliff", "a castle on a cliff", False),
])
def test_an_article_before_a_plural_idea_is_broken(idea, prompt, expected):
    assert broken_phrase(prompt, idea) is expected


@pytest.mark.parametrize("idea, prompt, expected", [
    ("a gargoyle", "a gargoyle the north star, highly detailed", True),
    ("a girl reading under a tree", "a girl reading under a tree an anime world with her life", True),
    ("a gargoyle", "a gargoyle on the north tower, highly detailed", False),
    ("a gargoyle", "a gargoyle, the north star, highly detailed", False),  # another clause
    ("lighthouse in a storm", "a lighthouse in a storm at night, a painting", False),
])
def test_an_article_right_after_the_idea_in_its_clause_is_broken(idea, prompt, expected):
    assert broken_phrase(prompt, idea) is expected


@pytest.mark.parametrize("phrase, expected", [
    ("floating islands above the clouds", True), ("children flying kites", True), ("wolves", True),
    ("glowing mushrooms in a cave", True), ("octopus playing the piano", False), ("cyborg geisha", False),
    ("a dress of glass", False), ("blank canvas", False), ("old fisherman", False), ("", False),
])
def test_plural_phrase(phrase, expected):
    assert plural_phrase(phrase) is expected


@pytest.mark.parametrize("text, expected", [
    ("fox in an snowy forest", "fox in a snowy forest"),
    ("A old man, an apple", "An old man, an apple"),
    ("an hour, a unicorn, an umbrella, a one-eyed cat, a 8k photo", "an hour, a unicorn, an umbrella, a one-eyed cat, a 8k photo"),
    ("a hour before dawn, a honest man, a horse, an hotel", "an hour before dawn, an honest man, a horse, a hotel"),
    ("an haunted lighthouse", "a haunted lighthouse"),
    ("a underwater temple, a ugly duck, a ultra detailed, a umbrella, a upside-down house, a urban street",
     "an underwater temple, an ugly duck, an ultra detailed, an umbrella, an upside-down house, an urban street"),
    ("an unicorn, a universe, a user, a utopia, an unknown", "an unicorn, a universe, a user, a utopia, an unknown"),
])
def test_articles_agree_with_the_next_word(text, expected):
    assert fix_articles(text) == expected


def test_repeated_phrases_and_clashes_are_a_tier_after_the_subject_rule():
    good = score_sample("harbor", "a harbor at dawn, oil painting, by monet", -20, 10, None)
    twice = score_sample("harbor", "a harbor at dawn, by claude monet and claude monet", -20, 10, None)
    clash = score_sample("harbor", "a harbor at sunrise, sunset, oil painting", -20, 10, None)
    late = score_sample("harbor", "a boat at dawn, oil painting, by monet, highly detailed, trending on artstation, concept art, harbor", -20, 10, None)
    broken = score_sample("harbor", "a harbor at dawn with a the boat, oil painting", -20, 10, None)
    assert twice.repeats_phrase and clash.clash and broken.broken
    assert not (good.repeats_phrase or good.clash or good.broken)
    assert good.tier() < twice.tier() == clash.tier() == broken.tier() < late.tier()
    # Fluency decides within a tier only: a likelier sample with a clash stays behind.
    assert select([(replace(clash, mean_logprob=-0.5), "c", "c"), (good, "g", "g")], 1) == ["g"]

@pytest.mark.parametrize("prompt, expected", [
    ("a ship by Greg Rutkowski and Alphonse Mucha, in the style of the old masters", ["greg rutkowski", "alphonse mucha"]),
    ("a robot playing violin, by Tatsuya Stubbs & Nagel", ["tatsuya stubbs"]),  # one word: nobody to check
    ("a house by the sea, in the style of a dream, by wlop", []),
    ("art by ilya kuvshinov with john collier / james jean; 8k", ["ilya kuvshinov", "john collier", "james jean"]),
    ("a cat (by louis wain), photo", ["louis wain"]),
])
def test_credited_names(prompt, expected):
    assert credited_names(prompt) == expected


def test_an_unknown_name_is_a_fault_where_the_list_has_names():
    known = KnownWords.from_counts(Counter({"robot": 9}), name_counts=Counter({"greg rutkowski": 40, "ann ellis": 1}))
    assert known.names == {"greg rutkowski"}  # a name credited once may be a typo
    assert known.unknown_names("a robot, by tatsuya stubbs and greg rutkowski") == ["tatsuya stubbs"]
    assert known.unknown_names("a robot by ann ellis") == ["ann ellis"]
    assert known.unknown_names("a robot by tatsuya stubbs", idea="tatsuya robot") == []  # the user typed it
    assert KnownWords(["robot"]).unknown_names("a robot by tatsuya stubbs") == []  # a list without names
    good = score_sample(None, "a robot, by greg rutkowski", -20, 10, known)
    made_up = score_sample(None, "a robot, by tatsuya stubbs", -20, 10, known)
    assert made_up.unknown_name and not good.unknown_name
    assert good.tier() < made_up.tier()
    assert select([(replace(made_up, mean_logprob=-0.5), "m", "m"), (good, "g", "g")], 1) == ["g"]


def test_known_names_survive_a_save_and_load(tmp_path):
    known = KnownWords(["robot", "greg"], ["greg rutkowski"])
    known.save(tmp_path / "known_words.txt")
    again = KnownWords.load(tmp_path / "known_words.txt")
    assert again.words == known.words and again.names == known.names


@pytest.mark.parametrize("text, expected", [
    ("A ship, painting by Greg Rutkowski and Alphonse Mucha. 8k", ["ship", "painting", "by greg rutkowski", "alphonse mucha", "8k"]),
    ("a fox (standby); black & white | the art", ["fox", "standby", "black", "white", "art"]),  # "by" only as a word
    ("an owl, owl, the owl, a", ["owl", "owl", "owl"]),  # one clause with or without its article
    (" , ,. ", []),
])
def test_clause_parts(text, expected):
    assert clause_parts(text) == expected


def _clause_list(*prompts, times=MIN_CLAUSE_COUNT):
    return KnownWords(["robot"], clauses=(k for k, c in count_clauses(list(prompts) * times).items() if c >= times))


def test_a_clause_the_corpus_does_not_hold_is_new():
    known = KnownWords.from_counts(Counter({"robot": 9}), clause_counts=count_clauses(
        ["a robot, highly detailed, by greg rutkowski"] * MIN_CLAUSE_COUNT + ["a cat, riding a pig"] * (MIN_CLAUSE_COUNT - 1)))
    assert known.new_clauses("a robot, highly detailed, concept art by greg rutkowski") == ["concept art"]
    assert known.new_clauses("a robot, riding a pig, highly detailed") == ["riding a pig"]  # held too rarely
    # The idea's own clause may be new; a new clause without the idea's words is not excused.
    assert known.new_clauses("a robot in a teacup, highly detailed", idea="robot in a teacup") == []
    assert known.new_clauses("a robot, a teacup sky", idea="robot") == ["teacup sky"]
    # What the writer added to the idea's own clause counts: after its first word, or as a credit.
    assert known.new_clauses("a robot riding a pig", idea="robot") == ["riding a pig"]
    assert known.new_clauses("a robot highly detailed", idea="robot") == []
    assert known.new_clauses("a robot of highly detailed", idea="robot") == []  # "highly detailed" after "of"
    assert known.new_clauses("a robot in the style of nobody we know", idea="robot") == []  # a credit
    assert known.new_clauses("a robot dancing", idea="robot") == []  # one word added: too little to judge
    assert KnownWords(["robot"]).new_clauses("a robot, riding a pig") == []  # a list without clauses
    # Without an idea the subject is the writer's or the user's opening: as new as a person's.
    assert known.new_clauses("a robot in a teacup, riding a pig") == ["riding a pig"]


def test_new_clauses_rank_a_sample_down_within_its_tier():
    known = _clause_list("a robot, highly detailed, by greg rutkowski")
    good = score_sample("robot", "a robot, highly detailed", -20, 10, known)
    one = score_sample("robot", "a robot, holding fire at its hand, highly detailed", -20, 10, known)
    two = score_sample("robot", "a robot. the river is under water. the moon is under the stars", -20, 10, known)
    assert (good.new_clauses, one.new_clauses, two.new_clauses) == (0, 1, 2)
    assert good.tier() < one.tier() < two.tier()
    # A likelier sample, or one the critic prefers, with a new clause stays behind.
    assert select([(replace(one, mean_logprob=-0.5, critic=3.0), "o", "o"), (good, "g", "g")], 1) == ["g"]
    # The idea's place and the phrase faults come first.
    clash = score_sample("robot", "a robot, sunrise, sunset", -20, 10, known)
    assert one.tier() < clash.tier()


def test_known_clauses_survive_a_save_and_load(tmp_path):
    known = _clause_list("a robot, highly detailed")
    known.save(tmp_path / "known_words.txt")
    assert (tmp_path / KNOWN_CLAUSES_FILE).is_file()
    again = KnownWords.load(tmp_path / "known_words.txt")
    assert again.clauses.tolist() == known.clauses.tolist() and len(again.clauses) == 2
    assert again.new_clauses("a robot, riding a pig") == ["riding a pig"]
    (tmp_path / KNOWN_CLAUSES_FILE).write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="not a known-clause list"):
        KnownWords.load(tmp_path / "known_words.txt")


def test_select_takes_the_most_fluent_concise_sample_within_a_tier(monkeypatch):
    from textopia.generation import rerank

    def scored(prompt, logprob, critic=0.0):
        return replace(score_sample("fox", prompt, logprob, 10, None), critic=critic)

    candidates = [(scored("a red fox in snow, oil painting, highly detailed, trending on artstation", -20), "long", "a"),
                  (scored("a red fox in snow, oil painting", -20, critic=-3.0), "short", "b"),
                  (scored("a fox by a river at dawn, watercolor, soft light", -20, critic=5.0), "middle", "c"),
                  (score_sample("fox", "a red car in snow", -5, 10, None).__class__(
                      recall=0.0, invented=0, stutter=False, mean_logprob=-0.5, critic=9.0), "a red car", "d")]
    assert select(candidates, 1) == ["b"]  # equal fluency: the fewest words, whatever the critic says
    assert select(candidates, 4)[-1] == "d"  # no score lifts a sample out of its tier
    # A much likelier sample wins over a shorter one: a nat per token outweighs twelve words.
    fluent = [(replace(s, mean_logprob=-1.0 if i == "a" else -2.0), t, i) for s, t, i in candidates]
    assert select(fluent, 1) == ["a"]
    # Above FLUENCY_CAP fluency earns nothing more: a memorised template's ease does not decide.
    easy = [(replace(s, mean_logprob=-0.5 if i == "c" else -1.5), t, i) for s, t, i in candidates]
    assert rerank.FLUENCY_CAP == -1.5 and select(easy, 1) == ["b"]
    # Without the length term and with equal fluency, sampling order decides; a weighted critic decides.
    monkeypatch.setattr(rerank, "LENGTH_WEIGHT", 0.0)
    assert select(candidates, 1) == ["a"]
    monkeypatch.setattr(rerank, "CRITIC_WEIGHT", 1.0)
    assert select(candidates, 1) == ["c"]


def test_candidates_are_bounded_and_scale_with_n():
    assert rows_per_round(1, GenerationConfig(candidates=16)) == 32
    assert rows_per_round(1, GenerationConfig(candidates=4)) == 32  # one prompt: never fewer than MIN_POOL
    assert rows_per_round(1, GenerationConfig()) == 32  # the default: as many as four prompts of eight get
    assert rows_per_round(3, GenerationConfig(candidates=2)) == 32
    assert rows_per_round(1, GenerationConfig(candidates=4), min_pool=16) == 16  # latent diffusion's floor
    assert rows_per_round(5, GenerationConfig(candidates=4), min_pool=16) == 20
    assert rows_per_round(5, GenerationConfig(candidates=8)) == 40
    assert rows_per_round(4, GenerationConfig(candidates=16)) == 64
    assert rows_per_round(1, GenerationConfig(candidates=16, rerank=False)) == 1
    assert rows_per_round(4, GenerationConfig(candidates=16, rerank=False)) == 4
    for bad in (0, 65):
        with pytest.raises(TextopiaError, match="candidates must be an integer from 1 to 64"):
            GenerationConfig(candidates=bad).validate()


def test_one_prompt_is_chosen_among_the_candidate_budget(tiny_checkpoint, monkeypatch):
    from textopia.generation import decoder

    gen = textopia.load(str(tiny_checkpoint))
    drawn = []
    original = decoder.sample_many

    def spy(model, tokenizer, jobs, *args, **kwargs):
        drawn.append(sum(job.num_samples for job in jobs))
        return original(model, tokenizer, jobs, *args, **kwargs)

    monkeypatch.setattr(decoder, "sample_many", spy)
    out = gen.generate("old fisherman", n=1, seed=3, candidates=6, max_new_tokens=30)
    assert len(out) == 1
    assert drawn and drawn[0] == 32  # one batch of the whole pool (MIN_POOL), for n = 1


class _LengthCritic:
    """A stand-in critic that prefers longer prompts, by far more than fluency weighs: its choice
    is easy to see."""

    def __init__(self):
        self.calls = 0

    def logits(self, prompts):
        self.calls += 1
        return torch.tensor([1000.0 * len(p) for p in prompts])


def test_generator_reranks_by_its_critic_where_it_is_weighted(tiny_checkpoint, monkeypatch):
    """With the shipped CRITIC_WEIGHT of 0 the critic is not run; weighted, it scores every
    candidate in one batch and decides within a tier."""
    from textopia.generation import decoder, rerank

    gen = textopia.load(str(tiny_checkpoint))
    gen.critic = _LengthCritic()
    gen.generate("old fisherman", n=1, seed=5, candidates=16, max_new_tokens=40)
    assert rerank.CRITIC_WEIGHT == 0 and gen.critic.calls == 0
    monkeypatch.setattr(rerank, "CRITIC_WEIGHT", 1.0)
    seen = []

    def recording_select(candidates, n, groups=None):
        seen.append(list(candidates))
        return select(candidates, n, groups)

    monkeypatch.setattr(decoder, "select", recording_select)
    judged = gen.generate("old fisherman", n=1, seed=5, candidates=16, max_new_tokens=40)
    assert gen.critic.calls == 1  # every candidate scored in one batch
    candidates = seen[-1]
    assert len(candidates) >= 8 and all(score.critic == 1000.0 * len(text) for score, text, _ in candidates)
    best = min(score.tier() for score, _, _ in candidates)
    longest = max(len(text) for score, text, _ in candidates if score.tier() == best)
    assert len(judged[0].prompt) == longest  # the critic's favourite of the best tier
    gen.critic = None
    plain = gen.generate("old fisherman", n=1, seed=5, candidates=16, max_new_tokens=40)
    assert all(score.critic == 0.0 for score, _, _ in seen[-1])
    # Without a critic, the most fluent of the best tier (the model's own log-probability per token).
    assert plain[0].prompt == max(((score.mean_logprob, text) for score, text, _ in seen[-1] if score.tier() == best))[1]


def test_reranked_choice_is_deterministic_with_a_critic(tiny_checkpoint):
    gen = textopia.load(str(tiny_checkpoint))
    gen.critic = _LengthCritic()
    a = [g.prompt for g in gen.generate("old fisherman", n=2, seed=7, candidates=6, max_new_tokens=30)]
    b = [g.prompt for g in gen.generate("old fisherman", n=2, seed=7, candidates=6, max_new_tokens=30)]
    assert a == b


@pytest.fixture(scope="module")
def tiny_critic(prepared, tmp_path_factory):
    """A tiny critic trained through the one training loop on an easy task: human prompts against
    'samples' whose words are spelt backwards (invented words, as a poor writer's)."""
    from textopia.data.corpus import read_split
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    folder = tmp_path_factory.mktemp("critic-samples")
    for split, source in (("train", "train"), ("valid", "valid")):
        rows = []
        for prompt in read_split(prepared, source)[:300]:
            rows.append({"idea": "", "human": prompt, "sample": " ".join(w[::-1] for w in prompt.split())})
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path_factory.mktemp("runs") / "critic"
    overrides = ["model.kind=critic", "model.n_embd=32", "model.n_layer=1", "model.n_head=2", "model.n_positions=64",
                 f"data.dir={prepared}", f"data.critic_samples={folder}", f"train.out_dir={out}",
                 "train.batch_size=32", "train.max_steps=120", "train.lr=3e-3", "train.warmup_steps=10",
                 "train.eval_every=120", "train.save_every=0", "train.log_every=40"]
    train(load_config(None, overrides), progress=False)
    return out, folder


def test_critic_trains_to_tell_human_prompts_from_invented_words(tiny_critic):
    from textopia.models.checkpoint import load_coherence_critic

    out, folder = tiny_critic
    figures = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [f for f in figures if f.get("split") == "valid"][-1]
    assert valid["accuracy"] > 0.75  # held out; 0.5 would be chance
    critic = load_coherence_critic(out)
    rows = [json.loads(line) for line in (folder / "valid.jsonl").read_text().splitlines()][:50]
    human = critic.logits([r["human"] for r in rows])
    invented = critic.logits([r["sample"] for r in rows])
    assert human.shape == (50,) and human.dtype == torch.float32
    assert float((human > invented).float().mean()) > 0.75


def test_critic_reads_through_the_engine_as_transformers_does(tiny_critic):
    """The critic's lean-engine path gives transformers' logits, in the order given, though it reads
    the prompts sorted by length in batches of its own."""
    from textopia.models.checkpoint import load_coherence_critic
    from textopia.models.critic import critic_inputs, critic_logits

    out, folder = tiny_critic
    critic = load_coherence_critic(out)
    assert critic.engine is not None  # a GPT-2 trunk: the engine runs it
    rows = [json.loads(line) for line in (folder / "valid.jsonl").read_text().splitlines()][:40]
    prompts = [p for r in rows for p in (r["human"], r["sample"])]
    prompts.insert(3, prompts[0] + ", " + ", ".join(["highly detailed"] * 30))  # cut at n_positions
    fast = critic.logits(prompts, batch_size=7)
    with torch.no_grad():
        exact = critic_logits(critic.model, **critic_inputs(critic.tokenizer, prompts, critic.max_length))
    assert fast.shape == exact.shape == (len(prompts),)
    assert torch.allclose(fast, exact, atol=1e-4), float((fast - exact).abs().max())
    critic.engine = None  # transformers' own path
    assert torch.allclose(critic.logits(prompts), exact, atol=1e-5)


def test_critic_load_refuses_another_kind(tiny_checkpoint):
    from textopia.models.checkpoint import load_coherence_critic

    with pytest.raises(TextopiaError, match="not a critic"):
        load_coherence_critic(tiny_checkpoint)


def test_critic_task_needs_its_samples(prepared, tmp_path):
    from textopia.training.config import load_config
    from textopia.training.trainer import train

    with pytest.raises(TextopiaError, match="critic_samples"):
        train(load_config(None, ["model.kind=critic", f"data.dir={prepared}", f"train.out_dir={tmp_path / 'c'}"]),
              progress=False)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "train.jsonl").write_text("not json\n")
    (tmp_path / "s" / "valid.jsonl").write_text("")
    with pytest.raises(TextopiaError, match="line 1"):
        train(load_config(None, ["model.kind=critic", f"data.dir={prepared}", f"data.critic_samples={tmp_path / 's'}",
                                 f"train.out_dir={tmp_path / 'c'}"]), progress=False)


def test_a_checkpoints_own_critic_is_loaded_where_asked_or_weighed(tiny_checkpoint, tiny_critic, tmp_path,
                                                                   monkeypatch):
    """critic=True loads it, False never; by default only where the reranker weighs it (the
    shipped weight is 0: no critic, and no transformers import, on a cold start)."""
    import shutil

    from textopia.generation import rerank
    from textopia.generation.loader import critic_dir

    model = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model)
    assert critic_dir(model) is None and textopia.load(str(model), critic=True).critic is None
    shutil.copytree(tiny_critic[0], model / "critic")
    assert critic_dir(model) == model / "critic"
    assert textopia.load(str(model), critic=True).critic is not None
    assert textopia.load(str(model), critic=False).critic is None
    assert rerank.CRITIC_WEIGHT == 0 and textopia.load(str(model)).critic is None
    monkeypatch.setattr(rerank, "CRITIC_WEIGHT", 1.0)
    assert textopia.load(str(model)).critic is not None


def test_idea_prefix_is_the_likeliest_opening_made_of_the_idea(tiny_checkpoint):
    gen = textopia.load(str(tiny_checkpoint))
    assert gen.idea_prefix("old fisherman") in ("old fisherman", "a old fisherman", "an old fisherman",
                                                 "the old fisherman")
    assert gen.idea_prefix("the old fisherman") == "the old fisherman"  # begins with a stop word: as typed
    for seed in range(3):  # "a"/"an" never opens a plural idea, whatever the model finds likely
        torch.manual_seed(seed)
        gen.model.apply(lambda m: torch.nn.init.normal_(m.weight, std=2.0) if isinstance(m, torch.nn.Embedding) else None)
        assert gen.idea_prefix("floating islands") in ("floating islands", "the floating islands")


def test_half_the_candidates_open_with_the_idea(tiny_checkpoint, monkeypatch):
    from textopia.generation import decoder

    seen = []

    def recording_select(candidates, n, groups=None):
        seen.append([text for _, text, _ in candidates])
        return select(candidates, n, groups)

    monkeypatch.setattr(decoder, "select", recording_select)
    gen = textopia.load(str(tiny_checkpoint))
    prefix = gen.idea_prefix("old fisherman")
    gen.generate("old fisherman", n=2, seed=2, candidates=8, max_new_tokens=30)  # 16 rows, 8 opened
    opened = sum(text.lower().startswith(prefix) for text in seen[-1])
    gen.generate("old fisherman", n=2, seed=2, candidates=8, max_new_tokens=30, idea_prefix=0.0)
    assert opened >= 4 > sum(text.lower().startswith(prefix) for text in seen[-1])
    with pytest.raises(TextopiaError, match="idea_prefix"):
        GenerationConfig(idea_prefix=1.5).validate()


def test_latent_models_draw_prefix_rows_too(tiny_diffusion_checkpoint, tiny_checkpoint, monkeypatch):
    gen = textopia.load(str(tiny_diffusion_checkpoint))
    gen.meta["fusion_lm"] = str(tiny_checkpoint)  # same tokenizer: it chooses the opening
    gen.lm_weight = gen.generate_lm_weight = 1.0
    calls = []
    original = gen.sampler.draw

    def spy(jobs, settings):
        calls.extend((job.rows, job.opening) for job in jobs)
        return original(jobs, settings)

    monkeypatch.setattr(gen.sampler, "draw", spy)
    kw = dict(n=1, seed=1, candidates=3, max_new_tokens=12, min_new_tokens=0, steps=2)  # one prompt: LATENT_MIN_POOL, 16 rows
    out = gen.generate("castle", idea_prefix=0.5, **kw)
    opening = gen.idea_prefix("castle")
    # half free; half opening with the idea's own words, as a clause of its own and left open
    assert calls[:3] == [(8, None), (4, f"{opening},"), (4, opening)]
    assert len(out) == 1
    # By default every latent candidate opens with the idea: none is left for the boost to place.
    calls.clear()
    gen.generate("castle", **kw)
    assert calls[:2] == [(8, f"{opening},"), (8, opening)]


@pytest.mark.parametrize("argv, message", [
    (["--candidates", "0"], "candidates must be an integer from 1 to 64"),
    (["--idea-prefix", "2"], "idea_prefix must be a number in [0, 1]"),
])
def test_cli_refuses_out_of_bounds_reranking_settings(argv, message, capsys):
    from textopia.cli import main

    assert main(["generate", "castle", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_candidates_left_to_the_model_take_its_own_default(tiny_checkpoint):
    from textopia.generation.diffusion import DiffusionGenerator

    gen = textopia.load(str(tiny_checkpoint))
    assert gen.decoding().candidates == GenerationConfig.candidates == 8
    assert gen.decoding(candidates=3).candidates == 3
    assert DiffusionGenerator.default_decoding.candidates == 4  # a latent sample costs more
    assert gen.decoding().idea_prefix == 0.5 and DiffusionGenerator.default_decoding.idea_prefix == 1.0
    # the latent pair keeps the penalty it was judged with, whatever the language models' default
    assert gen.decoding().repetition_penalty == GenerationConfig.repetition_penalty
    assert gen.decoding(repetition_penalty=1.3).repetition_penalty == 1.3
    assert DiffusionGenerator.default_decoding.repetition_penalty == 1.1


def test_the_lstm_writes_without_the_repetition_penalty_by_default(tiny_lstm_checkpoint, tiny_checkpoint):
    lstm, gpt = textopia.load(str(tiny_lstm_checkpoint)), textopia.load(str(tiny_checkpoint))
    assert lstm.decoding().repetition_penalty == 1.0 and gpt.decoding().repetition_penalty == 1.1
    assert lstm.decoding(repetition_penalty=1.2).repetition_penalty == 1.2
    assert lstm.decoding().temperature == gpt.decoding().temperature  # only the penalty differs


@pytest.mark.parametrize("prompt, count", [
    ("a shepherd with his flock at dusk, by artgerm and greg rutkowski and alphonse mucha and "
     "william-adolphe bouguereau and beeple, 4k", 5),
    ("a castle, by greg rutkowski and alphonse mucha, in the style of wlop", 3),
    ("a castle by the sea, trending on artstation", 0),  # "by the sea" credits nobody
    ("a castle, painting by greg rutkowski & james gurney / craig mullins with thomas kinkade", 4),
])
def test_credit_count(prompt, count):
    from textopia.text import credit_count, crowded_credits

    assert credit_count(prompt) == count
    assert crowded_credits(prompt) is (count > 3)


def test_a_list_of_known_names_after_a_credit_counts_with_it():
    from textopia.text import credit_count, crowded_credits

    names = {"joseph leyendecker", "ivan aivazovsky", "ruan jia", "marc simonetti"}
    prompt = "old man portrait, art by joseph leyendecker, ivan aivazovsky, ruan jia, and marc simonetti, 8k"
    assert credit_count(prompt) == 1  # the comma ends the credit clause
    assert credit_count(prompt, names) == 4 and crowded_credits(prompt, names)
    # The list ends at the first part that is not a known name: "8k", "highly detailed", an unknown pair.
    assert credit_count("a ship, by ruan jia, highly detailed, ivan aivazovsky, marc simonetti", names) == 1
    assert credit_count("a ship, by ruan jia, john doe, ivan aivazovsky", names) == 1
    assert credit_count("a ship by the sea, ivan aivazovsky, ruan jia", names) == 0  # "by the sea" credits nobody
    assert credit_count("a ship (by ruan jia), ivan aivazovsky", names) == 1  # the clause ended at a bracket


def test_the_reranker_counts_known_names_listed_after_a_credit():
    from textopia.generation.rerank import score_sample
    from textopia.text import KnownWords

    prompt = "old man portrait, art by joseph leyendecker, ivan aivazovsky, ruan jia, marc simonetti"
    words = set(prompt.replace(",", " ").split())
    listed = KnownWords(words, names={"joseph leyendecker", "ivan aivazovsky", "ruan jia", "marc simonetti"})
    assert score_sample("old man portrait", prompt, -10.0, 10, listed).crowded
    assert not score_sample("old man portrait", prompt, -10.0, 10, KnownWords(words)).crowded


def test_a_crowd_of_makers_ranks_with_a_clash():
    crowded = score_sample("a shepherd", "a shepherd, by artgerm and greg rutkowski and alphonse mucha and beeple",
                           -8.0, 10, None)
    plain = score_sample("a shepherd", "a shepherd, by greg rutkowski and alphonse mucha", -30.0, 10, None)
    clash = score_sample("a shepherd", "a shepherd at dawn, sunset", -8.0, 10, None)
    assert crowded.crowded and not plain.crowded and not crowded.faultless
    assert plain.tier() < crowded.tier() == clash.tier()


def test_a_medium_against_the_users_ranks_with_a_clash():
    idea = "a linocut of a rooster"
    held = score_sample(idea, "a linocut of a rooster, bold lines, black and white", -20, 10, None)
    against = score_sample(idea, "a linocut of a rooster, concept art, black and white", -20, 10, None)
    assert against.clash and not held.clash and held.tier() < against.tier()
    assert not score_opening(idea, "a linocut of a rooster", against, None).clash


@pytest.mark.parametrize("idea, prompt, expected", [
    ("a snowy mountain in the style of hokusai", "a snowy mountain in the style of hokusai, art by greg rutkowski", True),
    ("a desert city by moebius", "a desert city by moebius, by greg rutkowski and artgerm", True),
    ("a cowboy in the style of frederic remington", "a cowboy in the style of frederic remington, 8k, professional "
     "photography", True),
    ("a field of poppies in the style of claude monet", "a field of poppies in the style of claude monet, octane render",
     True),
    ("a bridge over a pond by monet", "a bridge over a pond by monet, digital painting, artstation", True),
    ("a bridge over a pond by monet", "a bridge over a pond by monet, beautiful painting, soft light", False),
    ("a sunset over water in the style of turner", "a sunset over water in the style of turner, realistic lighting, hd",
     True),  # a digital picture's look
    ("a snowy mountain in the style of hokusai", "a snowy mountain in the style of hokusai, cinematic", False),
    ("a snowy mountain", "a snowy mountain, art by greg rutkowski, octane render", False),  # no maker asked for
    (None, "a snowy mountain, art by greg rutkowski", False),
])
def test_overrides_maker(idea, prompt, expected):
    assert overrides_maker(idea, prompt) is expected


def test_a_maker_overridden_ranks_with_a_clash():
    idea = "a snowy mountain in the style of hokusai"
    held = score_sample(idea, f"{idea}, cinematic, dramatic sky", -20, 10, None)
    other = score_sample(idea, f"{idea}, cinematic, art by greg rutkowski", -20, 10, None)
    assert other.clash and not held.clash and held.tier() < other.tier()
    assert not score_opening(idea, f"{idea}, cinematic", other, None).clash


def test_an_opening_is_checked_for_the_idea_reworded_whatever_its_whole():
    """The whole writes the idea as the user did after a reworded form; its opening does not."""
    idea = "a pen and ink drawing of a crow"
    whole = score_sample(idea, "a pen ink drawing of a crow, trending on artstation, pen and ink", -20, 10, None)
    assert not whole.idea_reworded
    assert score_opening(idea, "a pen ink drawing of a crow, trending on artstation", whole, None).idea_reworded


def test_an_opening_of_a_cut_sample_is_finished_and_the_cut_whole_is_not():
    """A sample cut (at the token limit, or as one of a batch's longest rows) ranks below every
    finished one; its clause openings end where the writer ended a clause and wrote on, and rank
    as finished."""
    idea = "a lighthouse in a storm"
    cut = score_sample(idea, "a lighthouse in a storm, oil painting, dramatic", -20, 12, None, finished=False)
    opening = score_opening(idea, "a lighthouse in a storm, oil painting", cut, None)
    done = score_sample(idea, "a lighthouse in a storm, oil painting", -20, 8, None)
    assert not cut.finished and opening.finished
    assert opening.tier() == done.tier() < cut.tier()
