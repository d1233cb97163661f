"""The prompt autoencoder's dual objective re-measured: reconstruction against the diversity of
diffusion samples, as the free bits and KL weight β, the latent noise and λ_div (MMD) vary.

The objective (``textopia.models.latent_objective``) is
λ_recon·L_recon + β·KL_free-bits + λ_div·MMD(q(z), p(z)), with ``latent_noise`` added to z in
training. Every grid point starts from the same autoencoder (``--base-ae``, the shipped one) and
trains on for ``--ae-steps`` with its own settings (same seed, same batches); then the shipped
denoiser, with that autoencoder swapped in (:func:`textopia.training.diffusion.swap_decoder`),
trains on over the new latents for ``--denoiser-steps``. The control point (the shipped recipe:
free bits 3, β 0.02, noise 0.1, λ_div 0) trains as long, so every point is compared after the
same compute. A fine-tune sweep, not a from-scratch one: a from-scratch run takes ~40 minutes
per point on our 2-core CPU (configs/prompt-ae.toml). Figures per point:

* **Reconstruction** of ``--num-recon`` test prompts, greedy decoding of the posterior mean:
  corpus BLEU and content recall (``latent_eval.reconstruction``, of the encoder's own mean: the
  objective trains the encoder; no refinement steps), and the KL (nats per prompt).
* **Diffusion samples**: ``--num-ideas`` test-split ideas x 8 prompts (seed = idea index), with
  the decoder alone (``lm_weight`` 0: what the latent itself holds) and with the model's default
  fusion: distinct-2 among the 8, idea-word recall, fluency (perplexity under the default GPT)
  and the MiniLM Fréchet distance to held-out human prompts (``latent_eval.row_figures``).

::

    python benchmarks/latent_sweep.py --data-dir data/sd            # the grid below (~1 hour)
    python benchmarks/latent_sweep.py --data-dir data/sd --quick    # 5 steps each: a smoke run

A finished point (its denoiser's ``trainer_state.json`` at ``--denoiser-steps``) is not trained
again. Writes ``results.json``, ``results.md`` and ``tradeoff.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latent_eval import generation, reconstruction, row_figures  # noqa: E402
from machine_info import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Point:
    """One setting of the objective."""

    free_bits: float = 3.0
    beta: float = 0.02
    latent_noise: float = 0.1
    lambda_div: float = 0.0

    @property
    def name(self) -> str:
        return f"fb{self.free_bits:g}-beta{self.beta:g}-noise{self.latent_noise:g}-ldiv{self.lambda_div:g}"


#: The control (the shipped recipe) and one move along each knob, in the order they are run.
GRID = [
    Point(),
    Point(lambda_div=100.0),
    Point(free_bits=1.0, beta=0.2),
    Point(latent_noise=0.3),
    Point(latent_noise=0.0),
]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="prepared data (train split for training, test for figures)")
    p.add_argument("--base-ae", default="runs/prompt-ae-shipped", help="the autoencoder every point starts from")
    p.add_argument("--base-latent", default="latent", help="the latent diffusion model whose denoiser every point starts from")
    p.add_argument("--ae-steps", type=int, default=400)
    p.add_argument("--denoiser-steps", type=int, default=800)
    p.add_argument("--denoiser-prompts", type=int, default=30000, help="training prompts whose posteriors the denoiser sees")
    p.add_argument("--num-recon", type=int, default=300)
    p.add_argument("--num-ideas", type=int, default=20)
    p.add_argument("--reference-size", type=int, default=1000)
    p.add_argument("--runs", default="runs/latent-sweep")
    p.add_argument("--points", type=int, default=len(GRID), help="run the first N points of the grid")
    p.add_argument("--quick", action="store_true", help="5 training steps, 2 points, few prompts: a smoke run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latent_sweep"))
    return p.parse_args(argv)


def _state_step(out_dir: Path) -> int:
    state = out_dir / "trainer_state.json"
    return json.loads(state.read_text())["step"] if state.is_file() else -1


def train_point(args, point: Point) -> tuple[Path, dict]:
    """Train the autoencoder, then the denoiser, of one point (resuming or skipping finished parts)."""
    from textopia.generation.loader import resolve_model
    from textopia.training.config import load_config
    from textopia.training.diffusion import swap_decoder
    from textopia.training.trainer import train

    run = Path(args.runs) / point.name
    ae_dir, start_dir, den_dir = run / "ae", run / "denoiser-start", run / "denoiser"
    timing = {}
    t0 = time.time()
    if _state_step(ae_dir) < args.ae_steps:
        config = load_config(ROOT / "configs" / "prompt-ae-long.toml", [
            f"model.init_from={args.base_ae}", f"data.dir={args.data_dir}", f"train.out_dir={ae_dir}",
            f"train.max_steps={args.ae_steps}", "train.batch_size=32", "train.lr=5e-4", "train.eval_every=0",
            f"train.warmup_steps={min(50, args.ae_steps)}", "train.save_every=100", "train.max_minutes=60",
            f"model.free_bits={point.free_bits!r}", f"model.beta_max={point.beta!r}", "model.kl_schedule=constant",
            f"model.latent_noise={point.latent_noise!r}", f"model.lambda_div={point.lambda_div!r}",
            f"train.seed={args.seed}"])
        train(config, resume=ae_dir.is_dir() and _state_step(ae_dir) > 0, progress=False)
    timing["ae_seconds"] = time.time() - t0
    t0 = time.time()
    if _state_step(den_dir) < args.denoiser_steps:
        if not (start_dir / "config.json").is_file():
            swap_decoder(resolve_model(args.base_latent), ae_dir, start_dir, new_encoder=True)
        config = load_config(ROOT / "configs" / "latent-diffusion-ae2.toml", [
            f"model.init_from={start_dir}", f"data.dir={args.data_dir}", f"train.out_dir={den_dir}",
            f"data.train_limit={args.denoiser_prompts}", f"train.max_steps={args.denoiser_steps}",
            "train.eval_every=0", f"train.warmup_steps={min(50, args.denoiser_steps)}", "train.save_every=200",
            "train.max_minutes=60", f"train.seed={args.seed}"])
        train(config, resume=den_dir.is_dir() and _state_step(den_dir) > 0, progress=False)
    timing["denoiser_seconds"] = time.time() - t0
    return den_dir, timing


def kl_per_prompt(vae, tokenizer, prompts: list[str]) -> float:
    """Mean KL(q(z|x) || N(0, I)) in nats per prompt over ``prompts``."""
    import torch

    from textopia.models.latent_objective import gaussian_kl
    from textopia.models.text_vae import posterior_batches

    with torch.no_grad():
        total = sum(float(gaussian_kl(mu, logvar).sum())
                    for _, mu, logvar in posterior_batches(vae, tokenizer, prompts, batch_size=32))
    return total / len(prompts)


#: The settings a shipped checkpoint carries for its generator (``default_*`` in its config.json),
#: copied from ``--base-latent`` onto every point's model so that all are sampled alike.
SHIPPED_DEFAULTS = ("guidance", "steps", "lm_weight", "default_spread")


def evaluate_point(den_dir: Path, defaults: dict, recon_prompts, ideas, fluency, embedder, reference) -> dict:
    from textopia.generation.loader import load

    gen = load(den_dir)
    for key, value in defaults.items():
        setattr(gen, key, value)
    t0 = time.time()
    out = {"reconstruction": {k: v for k, v in reconstruction(gen, recon_prompts, 0).items()},
           "kl_nats": kl_per_prompt(gen.vae, gen.tokenizer, recon_prompts)}
    for label, weight in (("decoder_alone", 0.0), ("fused", None)):
        kwargs = {} if weight is None else {"lm_weight": weight}
        samples = generation(gen, ideas, 8, **kwargs)
        out[label] = {**row_figures(samples, fluency, embedder, reference),
                      "examples": {k: samples[k][:3] for k in ideas[:2]}}
    out["eval_seconds"] = time.time() - t0
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    grid = GRID[: args.points]
    if args.quick:
        args.ae_steps, args.denoiser_steps, args.denoiser_prompts = 5, 5, 300
        args.num_recon, args.num_ideas, args.reference_size = 16, 2, 100
        args.runs += "_quick"
        args.out += "_quick"
        grid = GRID[:2]
    from textopia.data.corpus import read_split
    from textopia.evaluation.compare import default_embedder
    from textopia.evaluation.ideas import ideas_from_prompts
    from textopia.generation.loader import load, resolve_model
    from textopia.models.checkpoint import load_checkpoint

    base = load(args.base_latent)
    defaults = {key: getattr(base, key) for key in SHIPPED_DEFAULTS}
    del base
    started = time.time()
    test = read_split(Path(args.data_dir), "test")
    order = list(range(len(test)))
    random.Random(f"latent-sweep/{args.seed}").shuffle(order)
    recon_prompts = [test[j] for j in order[: args.num_recon]]
    idea_pairs = ideas_from_prompts(test, args.num_ideas, seed=args.seed)
    ideas = [i for i, _ in idea_pairs]
    used = {s for _, s in idea_pairs} | set(recon_prompts)
    reference_prompts = [test[j] for j in order if test[j] not in used][-args.reference_size:]
    model, tok, _ = load_checkpoint(resolve_model("default"))
    embedder = default_embedder()
    reference = embedder.encode(reference_prompts) if embedder is not None else None

    report = {"machine": machine(), "settings": vars(args), "sampling_defaults": defaults,
              "command": " ".join(["python benchmarks/latent_sweep.py", *(argv if argv is not None else sys.argv[1:])]),
              "points": []}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for point in grid:
        print(f"point {point.name}", flush=True)
        den_dir, timing = train_point(args, point)
        figures = evaluate_point(den_dir, defaults, recon_prompts, ideas, (model, tok), embedder, reference)
        report["points"].append({**asdict(point), "name": point.name, **timing, **figures})
        print(json.dumps({k: v for k, v in report["points"][-1].items() if k not in ("examples",)}, default=str)[:600],
              flush=True)
        report["seconds"] = time.time() - started
        (out / "results.json").write_text(json.dumps(report, indent=1, default=str) + "\n")  # after each point
        (out / "results.md").write_text(markdown(report))
        plot(report, out / "tradeoff.png")
    print((out / "results.md").read_text())
    return 0


def markdown(r: dict) -> str:
    s = r["settings"]
    lines = ["# Prompt autoencoder: reconstruction against diffusion-sample diversity", "",
             f"Machine: {r['machine']}. Command: `{r['command']}`.", "",
             f"Every point: the shipped autoencoder trained on {s['ae_steps']} steps with its settings, then the "
             f"shipped denoiser trained on {s['denoiser_steps']} steps over its latents "
             f"({s['denoiser_prompts']} training prompts). Reconstruction: {s['num_recon']} test prompts, greedy "
             f"decoding of the posterior mean. Samples: {s['num_ideas']} test-split ideas x 8, decoder alone "
             f"(lm_weight 0) and fused; every point sampled with the shipped model's defaults {r['sampling_defaults']}.", "",
             "| free bits | β | latent noise | λ_div | KL (nats) | BLEU | content recall | "
             "distinct-2 (alone) | idea recall (alone) | PPL (alone) | distinct-2 (fused) | idea recall (fused) | "
             "PPL (fused) | FD (fused) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in r["points"]:
        rc, a, f = p["reconstruction"], p["decoder_alone"], p["fused"]
        lines.append(f"| {p['free_bits']:g} | {p['beta']:g} | {p['latent_noise']:g} | {p['lambda_div']:g} | "
                     f"{p['kl_nats']:.0f} | {rc['bleu']:.1f} | {rc['content_recall']:.3f} | {a['distinct_2']:.3f} | "
                     f"{a['idea_recall']:.3f} | {a['fluency_ppl']:.1f} | {f['distinct_2']:.3f} | "
                     f"{f['idea_recall']:.3f} | {f['fluency_ppl']:.1f} | {f.get('fd', float('nan')):.4f} |")
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, label in zip(axes, ("decoder_alone", "fused"), strict=True):
        for p in r["points"]:
            x, y = p[label]["distinct_2"], p["reconstruction"]["bleu"]
            ax.plot([x], [y], "o")
            ax.annotate(f"fb{p['free_bits']:g} β{p['beta']:g} n{p['latent_noise']:g} λd{p['lambda_div']:g}",
                        (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(f"distinct-2 among 8 diffusion samples ({label.replace('_', ' ')})")
        ax.set_title("decoder alone (lm_weight 0)" if label == "decoder_alone" else "fused (default lm_weight)")
    axes[0].set_ylabel("reconstruction BLEU (test, greedy, posterior mean)")
    fig.suptitle("Prompt autoencoder: reconstruction against diversity")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
