"""Exact likelihood of decoder-only models: it lives in :mod:`textopia.models.likelihood` (training
validates with it, below the evaluation layer); its names are re-exported here for evaluation code."""

from textopia.models.likelihood import LikelihoodResult, score_prompts, token_nll_sum, unigram_baseline

__all__ = ["LikelihoodResult", "score_prompts", "token_nll_sum", "unigram_baseline"]
