"""Textopia as a Dynamic Prompts generator, and Dynamic Prompts' own MagicPromptGenerator loading
Textopia's default checkpoint as it loads a Hub model. Uses the real ``dynamicprompts`` library."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dynamicprompts", reason="Textopia's dynamicprompts extra is not installed")

from dynamicprompts.generators import CombinatorialPromptGenerator, RandomPromptGenerator  # noqa: E402
from dynamicprompts.generators.promptgenerator import PromptGenerator  # noqa: E402

from tests.fakes import FakeGenerator  # noqa: E402
from textopia.data.tokenizer import PROMPT, PromptTokenizer  # noqa: E402
from textopia.errors import TextopiaError  # noqa: E402
from textopia.generation.loader import assets_dir  # noqa: E402
from textopia.integrations.dynamicprompts import TextopiaPromptGenerator  # noqa: E402

TEMPLATE = "a {red|blue|green} castle on a {hill|lake}"


def test_each_prompt_of_the_template_is_an_idea():
    fake = FakeGenerator()
    generator = TextopiaPromptGenerator(CombinatorialPromptGenerator(), model=fake, seed=1)
    assert isinstance(generator, PromptGenerator)
    prompts = generator.generate(TEMPLATE, 6)
    ideas = [call["idea"] for call in fake.calls]
    assert ideas == CombinatorialPromptGenerator().generate(TEMPLATE, 6)
    assert len(prompts) == 6 and all(p.startswith(idea + ", ") for p, idea in zip(prompts, ideas))
    assert {call["n"] for call in fake.calls} == {1}


def test_the_same_seed_gives_the_same_prompts():
    def run(seed):
        fake = FakeGenerator()
        generator = TextopiaPromptGenerator(model=fake, seed=seed, temperature=0.8, banned_words=["moon"])
        return generator.generate(TEMPLATE, 4) + generator.generate(TEMPLATE, 4), fake.calls

    (first, calls), (again, _), (other, _) = run(5), run(5), run(6)
    assert first == again and first != other
    assert len({c["seed"] for c in calls}) == 8  # a fresh seed per prompt, call after call
    assert {(c["temperature"], c["banned_words"]) for c in calls} == {(0.8, ("moon",))}


def test_the_images_seeds_fix_the_prompts():
    fake = FakeGenerator()
    generator = TextopiaPromptGenerator(model=fake)
    assert generator.generate(TEMPLATE, 3, seeds=[10, 11, 12]) == generator.generate(TEMPLATE, 3, seeds=[10, 11, 12])
    assert [c["seed"] for c in fake.calls[:3]] == [10, 11, 12]
    generator.generate(TEMPLATE, 2, seeds=9)
    assert [c["seed"] for c in fake.calls[-2:]] == [9, 9]


def test_bad_settings_fail_before_any_template():
    with pytest.raises(TextopiaError, match="temperature"):
        TextopiaPromptGenerator(model=FakeGenerator(), temperature=0)
    with pytest.raises(TextopiaError, match="seed"):
        TextopiaPromptGenerator(model=FakeGenerator(), seed=-1)


def test_expands_a_template_with_the_default_model():
    prompts = TextopiaPromptGenerator(RandomPromptGenerator(seed=3), seed=3).generate(TEMPLATE, 3)
    assert prompts == TextopiaPromptGenerator(RandomPromptGenerator(seed=3), seed=3).generate(TEMPLATE, 3)
    ideas = RandomPromptGenerator(seed=3).generate(TEMPLATE, 3)
    for prompt, idea in zip(prompts, ideas):
        color = idea.split()[1]
        assert color in prompt and "castle" in prompt and len(prompt) > len(idea)


# Run in a child process: MagicPromptGenerator keeps its pipeline on the class, and the Hub is
# switched off there before transformers is imported, so that only local files can be read.
MAGICPROMPT = """
import json, sys
import transformers
from dynamicprompts.generators import RandomPromptGenerator
from dynamicprompts.generators.magicprompt import MagicPromptGenerator

checkpoint = sys.argv[1]
magic = MagicPromptGenerator(RandomPromptGenerator(seed=0), model_name=checkpoint, seed=0, device="cpu")
prompts = magic.generate("a {red|blue} castle on a hill", 3)
pipe = transformers.pipeline("text-generation", model=checkpoint, device="cpu")
tokenizer = MagicPromptGenerator.tokenizer
print(json.dumps({"prompts": prompts, "greedy": pipe("a castle", do_sample=False)[0]["generated_text"],
                  "prefix": pipe.prefix, "ids": tokenizer("a castle on a hill")["input_ids"],
                  "special": tokenizer.convert_tokens_to_ids(["<|idea|>", "<|prompt|>"])}))
"""


def test_magicprompt_loads_the_default_checkpoint_offline():
    pytest.importorskip("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", MAGICPROMPT, str(assets_dir() / "default")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    # Textopia's tokenizer, special tokens included, encoding a text as Textopia does (after a space)
    textopia_tokenizer = PromptTokenizer.from_dir(assets_dir() / "default")
    assert answer["special"] == [textopia_tokenizer.idea_id, textopia_tokenizer.prompt_id]
    assert answer["ids"] == textopia_tokenizer.encode("a castle on a hill")
    assert len(answer["prompts"]) == 3 and all("castle on a hill" in p for p in answer["prompts"])
    assert any(len(p) > len("a blue castle on a hill") + 10 for p in answer["prompts"])
    # Read as the beginning of a prompt (the config's prefix), as Textopia's continue mode reads it, the
    # text goes on as a prompt; encoded without its leading space, it looped ("a castleaaaaaaaa").
    assert answer["prefix"] == PROMPT
    greedy = answer["greedy"]
    assert greedy.startswith("a castle ") and "," in greedy and not re.search(r"(\w)\1{3}", greedy)
