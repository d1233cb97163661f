"""The commands that write prompts: ``generate`` (from an idea, or a file of ideas) and the latent
commands of a VAE: ``reconstruct``, ``interpolate`` and ``variations``."""

from __future__ import annotations

import argparse
import json
import sys

from textopia.errors import TextopiaError
from textopia.generation.config import GenerationConfig, check_rows, check_setting, describe


def add_generate(sub) -> None:
    """Add the ``generate`` sub-parser to ``sub`` (argparse's sub-parsers action)."""
    p = sub.add_parser("generate", help="write prompts from an idea")
    p.add_argument("idea", nargs="?", default=None, help="the idea (expand) or the prompt's beginning (continue)")
    p.add_argument("-n", type=int, default=4, help=f"number of prompts ({describe('n')})")
    p.add_argument("--model", default=None, help="an embedded model's name or a checkpoint directory")
    d = GenerationConfig()  # one source of the defaults: the Python API's
    p.add_argument("--mode", choices=["expand", "continue"], default=d.mode)
    p.add_argument("--temperature", type=float, default=None,
                   help=f"softmax temperature, {describe('temperature')} (default: the model's own: {d.temperature}, lower "
                        "for latent diffusion)")
    p.add_argument("--top-p", type=float, default=d.top_p, help="nucleus sampling: keep the likeliest tokens "
                   f"holding this share of the probability, {describe('top_p')} (1: off; default %(default)s)")
    p.add_argument("--top-k", type=int, default=d.top_k,
                   help=f"keep the k likeliest tokens, {describe('top_k')} (0: off; default %(default)s)")
    p.add_argument("--repetition-penalty", type=float, default=None,
                   help=f"CTRL's penalty on tokens already written (Keskar et al. 2019), {describe('repetition_penalty')} "
                        f"(1: off; default: the model's own: {d.repetition_penalty}, 1.0 for the LSTM)")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens,
                   help=f"cap on tokens per prompt, {describe('max_new_tokens')} (default %(default)s)")
    p.add_argument("--min-new-tokens", type=int, default=None,
                   help="EOS is suppressed before this many tokens, at most --max-new-tokens (default: "
                        f"{d.min_new_tokens}, or --max-new-tokens if less)")
    p.add_argument("--min-p", type=float, default=d.min_p,
                   help="min-p sampling: drop tokens below this share of the likeliest one's probability, "
                        f"{describe('min_p')} (0: off)")
    p.add_argument("--idea-boost", type=float, default=d.idea_boost,
                   help=f"expand mode: nats added to the idea's words until each is written, {describe('idea_boost')} (0: off)")
    p.add_argument("--known-words-only", action=argparse.BooleanOptionalAction, default=None,
                   help="spell only words of the model's corpus and of the idea (default: the model's own: on "
                        "for latent diffusion, off for the others)")
    p.add_argument("--seed", type=int, default=None, help=f"{describe('seed')}; the same seed and settings, the same prompts")
    p.add_argument("--ban", action="append", default=[], metavar="WORD", help="a word the prompts must not contain")
    p.add_argument("--candidates", type=int, default=None,
                   help=f"samples drawn per prompt asked for, among which the reranker chooses ({describe('candidates')}; "
                        f"default: the model's own: {d.candidates}, 4 for latent diffusion)")
    p.add_argument("--idea-prefix", type=float, default=None,
                   help=f"share of the candidates that open with the idea's own words ({describe('idea_prefix')}; default: the "
                        f"model's own: {d.idea_prefix}, 1 for latent diffusion)")
    p.add_argument("--no-rerank", action="store_true",
                   help="do not oversample and prefer prompts with the whole idea, known words and no stutter")
    p.add_argument("--guidance", type=float, default=None,
                   help=f"latent diffusion models: classifier-free guidance scale, {describe('guidance')} (0: ignore the idea; "
                        "default: the model's own)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"latent diffusion models: DDIM steps, {describe('steps')} (default: the model's own)")
    p.add_argument("--lm-weight", type=float, default=None,
                   help=f"latent diffusion models: the language model's weight in shallow fusion, {describe('lm_weight')} "
                        "(0: the latent's decoder alone; default: the model's own)")
    p.add_argument("--json", action="store_true", help="print a JSON list (with --ideas-file: the run's summary)")
    f = p.add_argument_group("a file of ideas (resumable; see textopia.batch_generate)")
    f.add_argument("--ideas-file", help="ideas, one a line: write -n prompts for each to --out instead of printing")
    f.add_argument("--out", help="JSON-lines output, one line per idea in order; a rerun skips ideas already written")
    f.add_argument("--batch-size", type=int, default=16,
                   help="ideas written and synced to disk at once (with --ray: ideas per shard)")
    f.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray workers, one model each (needs textopia[ray]): ADDRESS 'auto' joins the cluster "
                        "of `ray start --head`; alone, Ray's default (RAY_ADDRESS, a running cluster, else a local "
                        "one); --out may be an fsspec URL (s3://...); see textopia.integrations.ray_batch")
    f.add_argument("--ray-workers", type=int, default=None, help="with --ray: workers (default: the cluster's CPUs)")


def add_latent(sub) -> None:
    """Add the ``reconstruct``, ``interpolate`` and ``variations`` sub-parsers to ``sub``."""
    help_model = "a model with a latent space: an embedded name or a checkpoint directory (default: latent)"
    refine_help = ("gradient steps that refine each prompt's encoded posterior mean on the decoder's likelihood "
                   "of it; 0: the encoder's own mean (default: the model's own, 30 for the embedded models)")
    p = sub.add_parser("reconstruct", help="encode prompts to their posterior mean and decode them (latent models)")
    p.add_argument("prompts", nargs="+", metavar="PROMPT")
    p.add_argument("--refine-steps", type=int, default=None, help=refine_help)
    p.add_argument("--model", default="latent", help=help_model)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p = sub.add_parser("interpolate", help="decode points on the spherical path between two prompts' latents (latent models)")
    p.add_argument("prompt_a")
    p.add_argument("prompt_b")
    p.add_argument("--steps", type=int, default=8, help=f"points on the path, both ends included ({describe('points')})")
    p.add_argument("--refine-steps", type=int, default=None, help=refine_help)
    p.add_argument("--model", default="latent", help=help_model)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p = sub.add_parser("variations", help="decode latents drawn around a prompt's posterior (latent models)")
    p.add_argument("prompt")
    p.add_argument("-n", type=int, default=8, help=f"number of variations ({describe('n')})")
    p.add_argument("--spread", type=float, default=None,
                   help=f"{describe('spread')}: a VAE's scale of the posterior's standard deviation; a latent diffusion "
                        "model takes it as --strength (default: the model's own)")
    p.add_argument("--strength", type=float, default=None,
                   help=f"{describe('strength')}: latent diffusion's SDEdit strength, the share of the noise schedule "
                        "the prompt's latent is noised up (default: the model's own)")
    p.add_argument("--seed", type=int, default=None, help=f"{describe('seed')}; the same seed and settings, the same prompts")
    p.add_argument("--refine-steps", type=int, default=None, help=refine_help)
    p.add_argument("--model", default="latent", help=help_model)
    p.add_argument("--json", action="store_true", help="print a JSON list")


def cmd_generate(args) -> None:
    """``textopia generate``: print ``-n`` prompts for an idea (or a JSON list); with ``--ideas-file``,
    write them for every idea to ``--out`` and print the run's summary."""
    from textopia.generation.loader import load

    check_setting("n", args.n, "-n")
    min_new_tokens = _min_new_tokens(args.min_new_tokens, args.max_new_tokens)
    # The settings are checked now, not after the model has loaded (the model's own defaults
    # stand in for now where it has them: temperature, candidates, idea_prefix, known_words_only).
    GenerationConfig(
        mode=args.mode, temperature=GenerationConfig.temperature if args.temperature is None else args.temperature,
        top_p=args.top_p, top_k=args.top_k,
        repetition_penalty=(GenerationConfig.repetition_penalty if args.repetition_penalty is None
                            else args.repetition_penalty),
        max_new_tokens=args.max_new_tokens, min_new_tokens=min_new_tokens, seed=args.seed, min_p=args.min_p,
        idea_boost=args.idea_boost,
        idea_prefix=GenerationConfig.idea_prefix if args.idea_prefix is None else args.idea_prefix,
        candidates=GenerationConfig.candidates if args.candidates is None else args.candidates,
    ).validate()
    if args.candidates is not None:
        check_rows(args.n, GenerationConfig(candidates=args.candidates, rerank=not args.no_rerank), "--candidates")
    if args.ideas_file or args.out:
        if not (args.ideas_file and args.out):
            raise TextopiaError("--ideas-file and --out go together")
        if args.idea is not None:
            raise TextopiaError("give either an idea or --ideas-file, not both")
        from textopia.batch_generate import check_out, read_ideas

        read_ideas(args.ideas_file)  # a bad file or output fails now, not after the model has loaded
        check_out(args.out)
    extra = {k: v for k, v in (("guidance", args.guidance), ("steps", args.steps), ("lm_weight", args.lm_weight))
             if v is not None}
    for name, value in extra.items():
        check_setting(name, value, "--" + name.replace("_", "-"))
    if args.ray is not None or args.ray_workers is not None:
        if not args.ideas_file:
            raise TextopiaError("--ray and --ray-workers go with --ideas-file and --out")
        if args.ray_workers is not None and args.ray_workers < 1:
            raise TextopiaError(f"--ray-workers must be >= 1, got {args.ray_workers}")
        from textopia.integrations.ray_batch import require_ray

        require_ray()  # Ray is an extra: imported only when asked for
    from textopia.clip_count import prefetch_clip_backend

    prefetch_clip_backend()
    generator = load(args.model)
    from textopia.generation.base import unsupported_settings

    if unsupported_settings(generator, extra):
        raise TextopiaError(f"--guidance, --steps and --lm-weight apply to latent diffusion models (such as "
                            f"'latent'), and {generator.name!r} is not one")
    temperature = generator.default_decoding.temperature if args.temperature is None else args.temperature
    repetition_penalty = (generator.default_decoding.repetition_penalty if args.repetition_penalty is None
                          else args.repetition_penalty)
    candidates = generator.default_decoding.candidates if args.candidates is None else args.candidates
    idea_prefix = generator.default_decoding.idea_prefix if args.idea_prefix is None else args.idea_prefix
    settings = dict(
        mode=args.mode, temperature=temperature, top_p=args.top_p, top_k=args.top_k,
        repetition_penalty=repetition_penalty, max_new_tokens=args.max_new_tokens,
        min_new_tokens=min_new_tokens, banned_words=args.ban, rerank=not args.no_rerank,
        min_p=args.min_p, idea_boost=args.idea_boost, candidates=candidates,
        idea_prefix=idea_prefix, **extra,
        known_words_only=generator.default_known_words_only() if args.known_words_only is None
        else args.known_words_only,
    )
    if args.ideas_file and args.ray is not None:
        from textopia.integrations.ray_batch import generate_file_ray

        report = generate_file_ray(args.model, args.ideas_file, args.out, n=args.n, seed=args.seed, settings=settings,
                                   batch_size=args.batch_size, address=args.ray, workers=args.ray_workers,
                                   progress=not args.json)
    elif args.ideas_file:
        from textopia.batch_generate import generate_file

        report = generate_file(generator, args.ideas_file, args.out, n=args.n, seed=args.seed, settings=settings,
                               batch_size=args.batch_size, progress=not args.json)
    if args.ideas_file:
        if args.json:
            print(json.dumps(report.to_dict()))
        else:
            print(f"{report.out}: {report.ideas} ideas ({report.written} written now, {report.skipped} already there), "
                  f"{report.prompts} prompts in {report.seconds:.1f} s: {report.ideas_per_s:.2f} ideas/s, "
                  f"{report.prompts_per_s:.2f} prompts/s", file=sys.stderr)
        return
    gens = generator.generate(args.idea, args.n, seed=args.seed, **settings)
    if args.json:
        print(json.dumps([g.to_dict() for g in gens], ensure_ascii=False))
    else:
        for g in gens:
            print(g.prompt)


def _min_new_tokens(asked: int | None, max_new_tokens: int) -> int:
    """``--min-new-tokens``: the default, lowered to ``--max-new-tokens`` when that is less; one
    asked for above ``--max-new-tokens`` is refused (a prompt cannot be both)."""
    if asked is None:
        return min(GenerationConfig.min_new_tokens, max_new_tokens)
    if asked > max_new_tokens:
        raise TextopiaError(f"--min-new-tokens must be at most --max-new-tokens ({max_new_tokens}), got {asked}")
    return asked


def _latent_generator(name: str, refine_steps: int | None = None):
    """The latent model ``name``; ``refine_steps`` is checked first, before the model loads."""
    from textopia.generation.base import LatentGenerator
    from textopia.generation.loader import load
    from textopia.models.refinement import check_refine_steps

    if refine_steps is not None:
        check_refine_steps(refine_steps)

    generator = load(name)
    if not isinstance(generator, LatentGenerator):
        raise TextopiaError(f"model {name!r} ({generator.kind}) has no latent space; use a VAE, e.g. --model vae")
    return generator


def _print_texts(texts: list[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(texts, ensure_ascii=False))
    else:
        for text in texts:
            print(text)


def cmd_reconstruct(args) -> None:
    """``textopia reconstruct``: each prompt decoded from its posterior mean, one a line (or a JSON list)."""
    generator = _latent_generator(args.model, args.refine_steps)
    _print_texts([generator.reconstruct(p, refine_steps=args.refine_steps) for p in args.prompts], args.json)


def cmd_interpolate(args) -> None:
    """``textopia interpolate``: the texts on the spherical path between two prompts' latents."""
    generator = _latent_generator(args.model, args.refine_steps)
    _print_texts(generator.interpolate(args.prompt_a, args.prompt_b, steps=args.steps,
                                       refine_steps=args.refine_steps), args.json)


def cmd_variations(args) -> None:
    """``textopia variations``: ``-n`` texts decoded from latents drawn around a prompt's posterior."""
    for name in ("spread", "strength"):  # refused before the model loads, as generate's settings are
        if getattr(args, name) is not None:
            check_setting(name, getattr(args, name), f"--{name}")
    generator = _latent_generator(args.model, args.refine_steps)
    _print_texts(generator.variations(args.prompt, args.n, spread=args.spread, strength=args.strength,
                                      seed=args.seed, refine_steps=args.refine_steps), args.json)
