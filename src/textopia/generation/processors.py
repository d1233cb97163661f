"""Logits processors on plain tensors: the decoding rules, without importing transformers.

Each rule is a callable ``rule(input_ids (N, T) int64, scores (N, V) float) -> scores (N, V)``,
exactly as transformers' ``LogitsProcessor`` classes of the same name compute it (the tests
check them against transformers on random inputs), so that the prompt writer starts in a
fraction of the time ``import transformers`` takes. ``-inf`` removes a token.
"""

from __future__ import annotations

import functools
import math

import torch


class ProcessorList(list):
    """Rules applied in order: ``ProcessorList([...])(input_ids, scores) -> scores``."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for rule in self:
            scores = rule(input_ids, scores)
        return scores


class MinNewTokens:
    """EOS is forbidden until ``min_new_tokens`` tokens follow the first ``context_length`` ones."""

    def __init__(self, context_length: int, min_new_tokens: int, eos_id: int) -> None:
        self.context_length, self.min_new_tokens, self.eos_id = context_length, min_new_tokens, eos_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.size(1) - self.context_length < self.min_new_tokens:
            scores[:, self.eos_id] = -math.inf
        return scores


class NoRepeatNGram:
    """Forbid any token that would repeat an n-gram already in the row (Paulus et al. 2018)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        n = self.n
        if input_ids.size(1) + 1 < n:
            return scores
        for row, ids in enumerate(input_ids.tolist()):
            prefix = tuple(ids[len(ids) - n + 1 :]) if n > 1 else ()
            banned = [ids[i + n - 1] for i in range(len(ids) - n + 1) if tuple(ids[i : i + n - 1]) == prefix]
            if banned:
                scores[row, banned] = -math.inf
        return scores


class RepetitionPenalty:
    """CTRL's penalty (Keskar et al. 2019): the score of every token already in the row is divided
    by ``penalty`` if positive, multiplied if negative."""

    def __init__(self, penalty: float) -> None:
        self.penalty = penalty

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        picked = torch.gather(scores, 1, input_ids)
        picked = torch.where(picked < 0, picked * self.penalty, picked / self.penalty)
        return scores.scatter_(1, input_ids, picked)


class NoBadWords:
    """Forbid token sequences: a one-token sequence always, a longer one at its last token once the
    row ends with the rest of it.

    The longer sequences are matched on tensors, grouped by length, not in a Python loop per row
    and sequence: safe mode bans every spelling of its words in every request of a batch.
    """

    def __init__(self, sequences: list[list[int]]) -> None:
        self.single = sorted({seq[0] for seq in sequences if len(seq) == 1})
        by_length: dict[int, set[tuple[int, ...]]] = {}
        for seq in sequences:
            if len(seq) > 1:
                by_length.setdefault(len(seq) - 1, set()).add(tuple(seq))
        #: per prefix length L: the prefixes (S, L) int64 and the tokens they forbid (S,) int64
        self.longer = [(torch.tensor([s[:-1] for s in sorted(seqs)]), torch.tensor([s[-1] for s in sorted(seqs)]))
                       for seqs in by_length.values()]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.single:
            scores[:, self.single] = -math.inf
        for prefixes, last in self.longer:
            length = prefixes.size(1)
            if input_ids.size(1) < length:
                continue
            prefixes, last = prefixes.to(input_ids.device), last.to(input_ids.device)
            hits = (input_ids[:, None, -length:] == prefixes[None]).all(dim=-1)  # (N, S)
            rows, seqs = hits.nonzero(as_tuple=True)
            scores[rows, last[seqs]] = -math.inf
        return scores


class Temperature:
    def __init__(self, temperature: float) -> None:
        self.temperature = temperature

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores.div_(self.temperature)


class TopK:
    """Keep the ``k`` likeliest tokens (ties at the k-th score kept)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        k = min(max(self.k, 1), scores.size(-1))
        kth = torch.topk(scores, k)[0][..., -1, None]
        return scores.masked_fill_(scores < kth, -math.inf)


@functools.lru_cache(maxsize=None)
def _below_zero(dtype: torch.dtype) -> float:
    """The negative ``dtype`` number nearest 0 (a subnormal), as a float."""
    return torch.nextafter(torch.zeros((), dtype=dtype), torch.tensor(-1.0, dtype=dtype)).item()


class MinP:
    """Min-p (Nguyen et al. 2024, "Turning Up the Heat"): drop tokens whose probability is below
    ``min_p`` times the likeliest token's.

    Computed on the scores, without a softmax: ``p_i < min_p · p_max`` iff
    ``s_i < s_max + log(min_p)`` (the softmax's normaliser cancels). In place, as three passes
    that make no mask: the floor subtracted, ``threshold_`` (every score not above 0 to -inf),
    the floor added back; twice as fast as a mask and ``masked_fill_`` at (32, 8192), the
    sampler's shape under load. A kept score may come back one unit of its last place off.
    """

    def __init__(self, min_p: float) -> None:
        self.min_p = min_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # A row with nothing left has a floor of -inf, and -inf - -inf is nan: such a floor is
        # the dtype's lowest instead, which leaves -inf as it is.
        floor = (scores.amax(dim=-1, keepdim=True) + math.log(self.min_p)).clamp_(min=torch.finfo(scores.dtype).min)
        # "Not above the negative number nearest 0": below the floor, a score at it kept.
        torch.nn.functional.threshold_(scores.sub_(floor), _below_zero(scores.dtype), -math.inf)
        return scores.add_(floor)


def in_nucleus(sorted_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Which tokens of ``sorted_probs`` (N, k), each row likeliest first, are in the nucleus of
    ``top_p`` (Holtzman et al. 2020, section 3.1): a token is iff the mass ranked above it is
    below ``top_p``; the likeliest always is. Returns (N, k) bool."""
    keep = (sorted_probs.cumsum(dim=-1) - sorted_probs) < top_p
    keep[:, 0] = True
    return keep


class TopP:
    """Nucleus sampling (Holtzman et al. 2020): keep the smallest set of likeliest tokens whose
    probability reaches ``top_p`` (at least one)."""

    def __init__(self, top_p: float) -> None:
        self.top_p = top_p

    #: Tokens looked at first: the nucleus is almost always among the likeliest few hundred, and a
    #: partial sort (top-k) of them is much cheaper than sorting the whole vocabulary.
    first_k = 256

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = scores.softmax(dim=-1)
        keep = torch.zeros_like(scores, dtype=torch.bool)
        rows = torch.arange(scores.size(0))
        for k in (self.first_k, 8 * self.first_k):
            if k >= scores.size(-1) or rows.numel() == 0:
                break
            top, order = probs[rows].topk(k, dim=-1)  # descending
            keep_top = in_nucleus(top, self.top_p)
            covered = top.sum(dim=-1) >= self.top_p  # the nucleus ends within the first k
            done = rows[covered]
            keep[done] = torch.zeros_like(keep[done]).scatter(1, order[covered], keep_top[covered])
            rows = rows[~covered]
        if rows.numel():  # a flat row: the whole vocabulary, sorted
            sorted_scores, full_order = torch.sort(scores[rows], descending=False)
            cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
            keep_sorted = ~(cumulative <= (1 - self.top_p))
            keep_sorted[..., -1:] = True
            keep[rows] = keep_sorted.scatter(1, full_order, keep_sorted)
        return scores.masked_fill(~keep, -math.inf)
