"""The keep head: a linear reward model of what blind judges keep, read off the writer's own
hidden states.

For a prompt written for an idea, the head's utility is

    u = w_f · min(fluency, cap) + w_w · words / 10 + v · (pooled - mean) / std

where ``fluency`` is the writer's mean log-probability per token of the prompt and its end given
the idea (nats per token, float32), ``words`` the prompt's length in words, and ``pooled`` (2E,)
the writer's final hidden states (after the last LayerNorm) averaged over the prompt's tokens and
taken at its end token. The weights are a Bradley-Terry model (Bradley and Terry 1952; the linear
reward model of preference learning, Christiano et al. 2017, eq. 1): the log-odds that a judge
keeps prompt a over prompt b for the same idea is ``u(a) - u(b)``, fitted by L2-penalised logistic
regression on the pairs of model prompts that blind judges kept differently
(:func:`fit_bradley_terry`; ``python -m benchmarks judge_agreement``). The hidden states carry
what fluency and length do not: which names, media and details go with which subjects, as the
writer learned them from the corpus.

A head belongs to the writer whose hidden states it was fitted on; it is saved in that writer's
checkpoint folder as ``keep/`` (:data:`KEEP_DIR`): ``config.json`` (:class:`KeepHeadConfig`) and
``model.safetensors`` (``weight`` (2 + 2E,), ``mean`` and ``std`` (2E,), float32).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from textopia.errors import TextopiaError
from textopia.io import atomic_dir
from textopia.text import tokenize

#: The folder of a writer's checkpoint that holds its keep head.
KEEP_DIR = "keep"
#: The most passes over the judged pairs :func:`fine_tune_encoder` makes.
MAX_ENCODER_EPOCHS = 20
#: Rows a :func:`features` forward pass takes at once.
BATCH_ROWS = 64


@dataclass
class KeepHeadConfig:
    """What a keep head reads and how it was fitted (saved as ``keep/config.json``).

    Attributes:
        hidden_size: E, the writer's hidden size (the head reads 2E pooled features).
        fluency_cap: the mean log-probability per token (nats) above which fluency earns no more;
            None: no cap.
        l2: the penalty on the pooled features' weights (the fluency and length weights are not
            penalised), per pair of the fit.
        pairs: judged pairs it was fitted on.
        held_out_accuracy: the share of judged pairs it ranks as the judge did, each judging
            round left out of the fit in turn (with an encoder, each of five groups of rounds:
            :func:`textopia.evaluation.judged.held_out_fold_hits`).
        command: the command that fitted it.
        encoder_epochs: passes over the pairs that fine-tuned the head's encoder with its weights
            (:func:`fine_tune_encoder`); 0: no encoder, the writer's own hidden states.
        encoder_lr: the encoder's peak learning rate.
    """

    hidden_size: int
    fluency_cap: float | None = -1.5
    l2: float = 0.3
    pairs: int = 0
    held_out_accuracy: float | None = None
    command: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    encoder_epochs: int = 0
    encoder_lr: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= int(self.hidden_size) <= 65536:
            raise TextopiaError(f"keep head hidden_size must be in 1..65536, got {self.hidden_size}")
        if not 0 <= int(self.encoder_epochs) <= MAX_ENCODER_EPOCHS:
            raise TextopiaError(f"keep head encoder_epochs must be in 0..{MAX_ENCODER_EPOCHS}, got {self.encoder_epochs}")
        if not 0 <= float(self.encoder_lr) <= 1:
            raise TextopiaError(f"keep head encoder_lr must be in [0, 1], got {self.encoder_lr}")


def features(engine, tokenizer, ideas: Sequence[str | None], prompts: Sequence[str],
             batch_rows: int = BATCH_ROWS, wholes: Sequence[str] | None = None,
             weight_dtype: str = "float32", fluency: bool = True) -> torch.Tensor:
    """The raw features of each prompt: ``[fluency, words / 10, pooled]``, (N, 2 + 2E) float32.

    Args:
        engine: the writer (:class:`~textopia.models.gpt_engine.GPT2Engine`); scored with
            ``weight_dtype`` weights, whatever the engine decodes with, and without switching its
            weights (another thread may be decoding with it): float32, what heads are fitted on,
            or the engine's :attr:`~textopia.models.gpt_engine.GPT2Engine.scoring_dtype` when
            choosing among a request's candidates.
        tokenizer: its :class:`~textopia.data.tokenizer.PromptTokenizer`.
        ideas: N ideas (None: unconditional), each prompt's context.
        prompts: N prompts.
        wholes: N prompts or None (each prompt its own): the prompt that each one opens
            (:func:`textopia.text.clause_openings`), or itself. One pass over each whole gives its
            openings' features too: causal attention, so an opening's states are its whole's
            over its tokens (where its tokens begin the whole's; another is read whole), and its
            end token is one step more over the whole's cache; a whole is read only as far as
            its longest prompt.
        fluency: False: the output layer is not run and the fluency column is NaN (a pass that
            reads the hidden states alone: :meth:`KeepHead.features`' encoder pass).

    Raises:
        ValueError: a context and prompt pass the writer's positions.
    """
    wholes = list(prompts) if wholes is None else list(wholes)
    if len(wholes) != len(prompts) or len(ideas) != len(prompts):
        raise ValueError(f"{len(ideas)} ideas, {len(prompts)} prompts and {len(wholes)} wholes")
    eos = tokenizer.eos_id
    # Each prompt's tokens, and how far each whole is read: to its longest prompt (an opening's
    # tokens are its whole's first ones; the whole's tail after every prompt it holds is not read).
    encoded: dict[str, list[int]] = {}

    def encode(text: str) -> list[int]:
        if text not in encoded:
            encoded[text] = tokenizer.encode(text)
        return encoded[text]

    def opens(prompt: str, whole: str) -> bool:  # its tokens begin the whole's (BPE may merge otherwise at a cut)
        body, full = encode(prompt), encode(whole)
        return prompt == whole or (len(body) < len(full) and full[: len(body)] == body)

    needed: dict[tuple[str | None, str], int] = {}
    for idea, prompt, whole in zip(ideas, prompts, wholes):
        if opens(prompt, whole):
            needed[idea, whole] = max(needed.get((idea, whole), 0), len(encode(prompt)))
    rows: dict[tuple[str | None, tuple[int, ...]], int] = {}  # (idea, tokens read) -> row of the pass
    bodies: list[tuple[list[int], list[int]]] = []  # each row's (context, body without its end token)
    where: list[tuple[int, int | None]] = []  # each prompt's row, and its body's length where it is an opening

    def row(idea: str | None, body: list[int]) -> int:
        if (idea, tuple(body)) not in rows:
            rows[idea, tuple(body)] = len(bodies)
            bodies.append((tokenizer.context_ids(idea), body))
        return rows[idea, tuple(body)]

    for idea, prompt, whole in zip(ideas, prompts, wholes):
        body = encode(prompt)
        if not opens(prompt, whole) or needed[idea, whole] == len(body):
            where.append((row(idea, body), None))  # read to its end: its own end token is in the pass
        else:
            where.append((row(idea, encode(whole)[: needed[idea, whole]]), len(body)))
    out: list[torch.Tensor | None] = [None] * len(prompts)
    device = engine.params["transformer__wte__weight"].device
    # Rows of like length pass together: a pass is as wide as its longest row.
    order = sorted(range(len(bodies)), key=lambda r: len(bodies[r][0]) + len(bodies[r][1]))
    for start in range(0, len(bodies), batch_rows):
        index = {r: i for i, r in enumerate(order[start:start + batch_rows])}  # row -> its place in the pass
        chunk = [bodies[r] for r in index]
        width = max(len(c) + len(b) + 1 for c, b in chunk)
        input_ids = torch.full((len(chunk), width), eos, dtype=torch.long)
        for i, (c, b) in enumerate(chunk):
            input_ids[i, : len(c) + len(b) + 1] = torch.tensor(c + b + [eos])
        members = [(p, index[r], cut) for p, (r, cut) in enumerate(where) if r in index]
        cuts = [(p, i, cut) for p, i, cut in members if cut is not None]
        slot: dict[int, tuple[int, int]] = {}  # an opening's (row, query) in the end tokens' pass
        per_row = [0] * len(chunk)
        for p, i, _ in cuts:
            slot[p], per_row[i] = (i, per_row[i]), per_row[i] + 1
        queries = max(per_row, default=0)
        with torch.no_grad():
            cache = engine.new_cache(len(chunk), width + queries) if cuts else None
            hidden = engine.hidden_states(input_ids.to(device), weight_dtype=weight_dtype, cache=cache)  # (B, W, E)
            # The output layer over the positions that predict a body token or its end alone, not the
            # context's nor the padding's: (sum of T + 1, E) -> (sum of T + 1, V).
            if fluency:
                predicting = torch.cat([hidden[i, len(c) - 1:len(c) + len(b)] for i, (c, b) in enumerate(chunk)])
                logits = engine.output_logits(predicting[None], weight_dtype=weight_dtype)[0].cpu()
                norm = torch.logsumexp(logits, dim=-1)  # (sum of T + 1,)
            offsets = [0]
            for _, b in chunk:
                offsets.append(offsets[-1] + len(b) + 1)
            if cuts:
                # Each opening's end token goes on from its whole's cache after the opening's own
                # tokens, at its own position: a row's openings are that row's queries of one pass,
                # each seeing the opening's keys and itself only (no cache copied per opening).
                key_mask = torch.zeros(len(chunk), queries, width + queries, dtype=torch.bool)
                key_mask[:, torch.arange(queries), width + torch.arange(queries)] = True
                position_ids = torch.zeros(len(chunk), queries, dtype=torch.long)
                for p, i, cut in cuts:
                    j = slot[p][1]
                    key_mask[i, j, : len(chunk[i][0]) + cut] = True
                    position_ids[i, j] = len(chunk[i][0]) + cut
                ends = engine.hidden_states(torch.full((len(chunk), queries), eos, dtype=torch.long, device=device),
                                            weight_dtype=weight_dtype, cache=cache, key_mask=key_mask.to(device),
                                            position_ids=position_ids.to(device)).float().cpu()  # (B, Q, E)
        hidden = hidden.float().cpu()
        end_of = {p: ends[slot[p]] for p, _, _ in cuts}
        for p, i, cut in members:
            c, b = chunk[i]
            length = len(b) if cut is None else cut
            mean_logprob = torch.tensor(math.nan)
            if fluency:
                targets = torch.tensor(b[:length] + [eos])  # the body's tokens and its end, each predicted
                at = slice(offsets[i], offsets[i] + length + 1)
                mean_logprob = (logits[at].gather(1, targets[:, None])[:, 0] - norm[at]).mean()  # nats
            h = hidden[i, len(c):len(c) + length + 1] if cut is None else torch.cat([hidden[i, len(c):len(c) + cut],
                                                                                    end_of[p][None]])  # (T, E)
            words = torch.tensor(len(tokenize(prompts[p])) / 10)
            out[p] = torch.cat([torch.stack([mean_logprob, words]), h.mean(0), h[-1]])
    return torch.stack(out) if out else torch.zeros(0, 2)  # (N, 2 + 2E)


#: What :meth:`KeepHead.save` writes into a head's folder, and all it writes (the encoder where
#: the head has one).
KEEP_CONFIG, KEEP_WEIGHTS, KEEP_ENCODER = "config.json", "model.safetensors", "encoder.safetensors"
KEEP_FILES = (KEEP_CONFIG, KEEP_WEIGHTS, KEEP_ENCODER)


def is_keep_dir(directory: str | Path) -> bool:
    """Whether ``directory`` holds a keep head: :data:`KEEP_FILES`, the config a head's. Whether it
    holds anything else beside it, writing a head there would lose: ``fit-keep`` passes
    :data:`KEEP_FILES` to :func:`textopia.io.check_output_dir` as what a head's folder may hold."""
    directory = Path(directory)
    try:
        config = json.loads((directory / KEEP_CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return (directory / KEEP_WEIGHTS).is_file() and isinstance(config, dict) and "hidden_size" in config


class KeepHead:
    """A fitted head: :meth:`utility` of raw :func:`features` (:meth:`features`).

    Args:
        config: its :class:`KeepHeadConfig`.
        weight: (2 + 2E,) float32, the Bradley-Terry weights of capped fluency, words / 10 and the
            standardised pooled features.
        mean, std: (2E,) float32, the pooled features' mean and standard deviation over the prompts
            it was fitted on.
        encoder: None (the pooled features are the writer's hidden states), or the fine-tuned
            blocks and final LayerNorm that read them instead (:func:`fine_tune_encoder`), by
            transformers' GPT-2 names (``transformer.h.0.attn.c_attn.weight``, ...,
            ``transformer.ln_f.bias``): over the writer's own embeddings, a second pass of its size.
    """

    def __init__(self, config: KeepHeadConfig, weight: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                 encoder: dict[str, torch.Tensor] | None = None) -> None:
        e = 2 * config.hidden_size
        if tuple(weight.shape) != (2 + e,) or tuple(mean.shape) != (e,) or tuple(std.shape) != (e,):
            raise TextopiaError(f"keep head of hidden size {config.hidden_size} needs weight ({2 + e},) and mean, std "
                                f"({e},); got {tuple(weight.shape)}, {tuple(mean.shape)}, {tuple(std.shape)}")
        if encoder is not None and not any(name.startswith("transformer.h.") for name in encoder):
            raise TextopiaError("keep head encoder holds no block weights (transformer.h.*)")
        self.config = config
        self.weight, self.mean, self.std = weight.float(), mean.float(), std.float().clamp_min(1e-6)
        self.encoder = None if encoder is None else {name: t.float() for name, t in encoder.items()}
        self._engine: tuple[Any, Any] | None = None  # (writer, the encoder's engine over its embeddings)

    def inputs(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw :func:`features` (N, 2 + 2E) as the weights read them: fluency capped, the pooled
        features standardised; (N, 2 + 2E) float32."""
        fluency = raw[:, :1] if self.config.fluency_cap is None else raw[:, :1].clamp_max(self.config.fluency_cap)
        return torch.cat([fluency, raw[:, 1:2], (raw[:, 2:] - self.mean) / self.std], dim=1)

    def utility(self, raw: torch.Tensor) -> torch.Tensor:
        """(N,) float32 utilities: differences are the log-odds that a judge keeps one prompt over another."""
        return self.inputs(raw.float()) @ self.weight

    def encoder_engine(self, writer):
        """The engine whose hidden states the head's pooled features are: ``writer`` itself, or
        where the head has an encoder, an engine of the writer's embeddings and the encoder's
        blocks and final LayerNorm, with the writer's weight dtype (built once per writer).

        Raises:
            TextopiaError: the encoder does not fit the writer (a name or a shape).
        """
        if self.encoder is None:
            return writer
        if self._engine is None or self._engine[0] is not writer:
            from textopia.models.gpt_engine import GPT2Engine

            weights = {name.replace("__", "."): p.detach() for name, p in writer.params.items()}
            for name, tensor in self.encoder.items():
                if name not in weights or weights[name].shape != tensor.shape:
                    raise TextopiaError(f"keep head encoder weight {name} {tuple(tensor.shape)} does not fit the writer")
            device = weights["transformer.wte.weight"].device
            weights.update({name: t.to(device) for name, t in self.encoder.items()})
            engine = GPT2Engine(writer.config, weights).set_weight_dtype(writer.weight_dtype)
            self._engine = (writer, engine)
        return self._engine[1]

    def features(self, writer, tokenizer, ideas: Sequence[str | None], prompts: Sequence[str],
                 wholes: Sequence[str] | None = None, weight_dtype: str = "float32") -> torch.Tensor:
        """The raw features this head reads, (N, 2 + 2E) float32: :func:`features` of ``writer``
        (fluency and length are always the writer's), its pooled part read by the encoder's engine
        where the head has an encoder (:meth:`encoder_engine`; a second pass). Arguments and
        errors as :func:`features`'."""
        raw = features(writer, tokenizer, ideas, prompts, wholes=wholes, weight_dtype=weight_dtype)
        if self.encoder is None:
            return raw
        pooled = features(self.encoder_engine(writer), tokenizer, ideas, prompts, wholes=wholes,
                          weight_dtype=weight_dtype, fluency=False)
        return torch.cat([raw[:, :2], pooled[:, 2:]], dim=1)

    def save(self, directory: str | Path) -> None:
        """Write ``directory`` (config.json, model.safetensors and, where the head has an encoder,
        encoder.safetensors in float16) whole, or leave it as it was."""
        from safetensors.torch import save_file

        with atomic_dir(directory) as tmp:
            save_file({"weight": self.weight.contiguous(), "mean": self.mean.contiguous(), "std": self.std.contiguous()},
                      str(tmp / KEEP_WEIGHTS))
            if self.encoder is not None:
                save_file({name: t.half().contiguous() for name, t in self.encoder.items()}, str(tmp / KEEP_ENCODER))
            (tmp / KEEP_CONFIG).write_text(json.dumps(asdict(self.config), indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "KeepHead":
        """Read a head that :meth:`save` wrote.

        Raises:
            TextopiaError: a file is missing or is not a keep head's.
        """
        from safetensors.torch import load_file

        directory = Path(directory)
        try:
            raw = json.loads((directory / KEEP_CONFIG).read_text())
            known = {f.name for f in fields(KeepHeadConfig)}
            config = KeepHeadConfig(**{k: v for k, v in raw.items() if k in known})
            tensors = load_file(str(directory / KEEP_WEIGHTS))
            encoder = None
            if config.encoder_epochs > 0:
                encoder = load_file(str(directory / KEEP_ENCODER))
            return cls(config, tensors["weight"], tensors["mean"], tensors["std"], encoder)
        except TextopiaError:
            raise
        except Exception as e:  # safetensors raises its own error for a corrupt file
            raise TextopiaError(f"{directory} is not a keep head: {e}") from None


def fit_bradley_terry(diffs: torch.Tensor, outcomes: torch.Tensor, l2: float = 0.0, free: int = 0) -> torch.Tensor:
    """Bradley-Terry weights: logistic regression without intercept of ``outcomes`` (P,) (1: the
    first prompt of the pair was kept higher) on the feature differences ``diffs`` (P, F), with
    an L2 penalty ``l2 · |w[free:]|²`` (the first ``free`` weights unpenalised); (F,) float32, by L-BFGS."""
    x, y = diffs.float(), outcomes.float()
    w = torch.zeros(x.size(1), requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w, y) + l2 * (w[free:] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    if not bool(torch.isfinite(w).all()):
        raise TextopiaError("the Bradley-Terry fit diverged")
    return w.detach()


def fit_keep_head(raw_a: torch.Tensor, raw_b: torch.Tensor, outcomes: torch.Tensor, hidden_size: int,
                  fluency_cap: float | None, l2: float, **config: Any) -> KeepHead:
    """A :class:`KeepHead` fitted on judged pairs: raw :func:`features` of each pair's first and
    second prompt, (P, 2 + 2E) each, and ``outcomes`` (P,) (1: the first was kept higher). The
    pooled features are standardised over the pairs' prompts."""
    pooled = torch.cat([raw_a[:, 2:], raw_b[:, 2:]])
    mean, std = pooled.mean(0), pooled.std(0).clamp_min(1e-6)
    e = 2 * hidden_size
    head = KeepHead(KeepHeadConfig(hidden_size=hidden_size, fluency_cap=fluency_cap, l2=l2, pairs=len(outcomes),
                                   **config), torch.zeros(2 + e), mean, std)
    head.weight = fit_bradley_terry(head.inputs(raw_a) - head.inputs(raw_b), outcomes, l2=l2, free=2)
    return head


def fine_tune_encoder(writer, tokenizer, items: Sequence[tuple[str | None, str]], a: torch.Tensor, b: torch.Tensor,
                      won: torch.Tensor, raw: torch.Tensor, head: KeepHead, epochs: int, lr: float,
                      batch_pairs: int = 32, seed: int = 0) -> KeepHead:
    """A head whose pooled features are read by an encoder fine-tuned on the judged pairs: the
    writer's blocks and final LayerNorm trained with the head's weights on the Bradley-Terry loss
    of the pairs (the reward model of Ziegler et al. 2019 and Ouyang et al. 2022, eq. 1: a
    language model with a scalar head, trained on pairwise preferences), from the writer's
    weights and ``head``'s (a linear head fitted on the same pairs, whose standardisation it
    keeps); the embeddings stay the writer's. AdamW, ``lr`` for the blocks and 1e-3 for the head's
    weights, each on a cosine from its peak to 0 over ``epochs`` passes of ``batch_pairs`` pairs
    in an order drawn from ``seed``; gradients clipped at norm 1. Trained in float32 on
    transformers' ``GPT2Model``, whose hidden states the engine reproduces.

    Args:
        writer: the writer's :class:`~textopia.models.gpt_engine.GPT2Engine`.
        tokenizer: its tokenizer.
        items: N ``(idea, prompt)``; ``raw`` (N, 2 + 2E): their :func:`features` by the writer
            (fluency and length are read from it, fixed).
        a, b: (P,) int64, each pair's first and second item; ``won`` (P,) 1 where the first was
            kept higher.
        head: the linear head to start from.
        epochs: 1 to :data:`MAX_ENCODER_EPOCHS` passes over the pairs.
        lr: the blocks' peak learning rate, in (0, 1].

    Returns:
        the new :class:`KeepHead`, with ``encoder`` and the config's ``encoder_epochs`` and
        ``encoder_lr``.

    Raises:
        TextopiaError: ``epochs`` or ``lr`` out of bounds, or no pairs.
    """
    import random
    from dataclasses import replace

    from transformers import GPT2Config, GPT2Model

    if not 1 <= epochs <= MAX_ENCODER_EPOCHS:
        raise TextopiaError(f"encoder epochs must be in 1..{MAX_ENCODER_EPOCHS}, got {epochs}")
    if not 0 < lr <= 1:
        raise TextopiaError(f"encoder lr must be in (0, 1], got {lr}")
    if len(won) == 0:
        raise TextopiaError("no judged pairs to fine-tune the encoder on")
    cfg = writer.config
    model = GPT2Model(GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.n_positions, n_embd=cfg.n_embd,
                                 n_layer=cfg.n_layer, n_head=cfg.n_head, layer_norm_epsilon=cfg.layer_norm_epsilon,
                                 activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                 bos_token_id=tokenizer.eos_id, eos_token_id=tokenizer.eos_id))
    weights = {name.replace("__", "."): p.detach().float().cpu() for name, p in writer.params.items()}
    model.load_state_dict({name.removeprefix("transformer."): t for name, t in weights.items()})
    model.wte.weight.requires_grad_(False)
    model.wpe.weight.requires_grad_(False)
    model.train()
    contexts = [tokenizer.context_ids(idea) for idea, _ in items]
    seqs = [c + tokenizer.encode(prompt) + [tokenizer.eos_id] for c, (_, prompt) in zip(contexts, items)]
    starts = [len(c) for c in contexts]
    fixed = raw[:, :2].float().clone()
    if head.config.fluency_cap is not None:
        fixed[:, 0] = fixed[:, 0].clamp_max(head.config.fluency_cap)
    mean, std = head.mean, head.std

    def pooled(rows: list[int]) -> torch.Tensor:  # (R, 2E): as features() pools, over the body and its end
        width = max(len(seqs[r]) for r in rows)
        input_ids = torch.full((len(rows), width), tokenizer.eos_id, dtype=torch.long)
        mask = torch.zeros(len(rows), width)
        body = torch.zeros(len(rows), width)
        for i, r in enumerate(rows):
            input_ids[i, :len(seqs[r])] = torch.tensor(seqs[r])
            mask[i, :len(seqs[r])] = 1
            body[i, starts[r]:len(seqs[r])] = 1
        hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state  # (R, W, E)
        ends = hidden[torch.arange(len(rows)), torch.tensor([len(seqs[r]) - 1 for r in rows])]
        return torch.cat([(hidden * body[..., None]).sum(1) / body.sum(1, keepdim=True), ends], dim=1)

    weight = torch.nn.Parameter(head.weight.clone())
    blocks = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": blocks, "lr": lr}, {"params": [weight], "lr": 1e-3}], weight_decay=0.0)
    peaks = [lr, 1e-3]
    order = list(range(len(won)))
    rng = random.Random(seed)
    steps = epochs * math.ceil(len(order) / batch_pairs)
    step = 0
    for _ in range(epochs):
        rng.shuffle(order)
        for start in range(0, len(order), batch_pairs):
            batch = order[start:start + batch_pairs]
            rows = a[batch].tolist() + b[batch].tolist()
            x = torch.cat([fixed[rows], (pooled(rows) - mean) / std], dim=1)
            u = x @ weight
            loss = torch.nn.functional.binary_cross_entropy_with_logits(u[:len(batch)] - u[len(batch):], won[batch])
            for group, peak in zip(opt.param_groups, peaks):
                group["lr"] = peak * 0.5 * (1 + math.cos(math.pi * step / steps))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(blocks + [weight], 1.0)
            opt.step()
            step += 1
    encoder = {f"transformer.{name}": t.detach().clone() for name, t in model.state_dict().items()
               if name.startswith(("h.", "ln_f."))}
    config = replace(head.config, encoder_epochs=epochs, encoder_lr=lr)
    return KeepHead(config, weight.detach().clone(), mean, std, encoder)
