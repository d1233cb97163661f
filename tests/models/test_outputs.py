"""Model outputs under the installed transformers release's cache field, read back by the decoding loop."""

import logging

import torch
from transformers.modeling_outputs import CausalLMOutputWithPast

from textopia.models.gpt_engine import EngineOutput
from textopia.models.outputs import causal_lm_output, output_cache

RELEASE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def test_the_cache_is_stored_under_the_releases_own_field_and_read_back():
    state = (torch.zeros(1, 2, 3), torch.ones(1, 2, 3))
    out = causal_lm_output(torch.zeros(2, 1, 5), state, loss=torch.tensor(1.0))
    assert list(out.keys()) == ["loss", "logits", RELEASE_FIELD]
    assert output_cache(out) is state
    assert output_cache(causal_lm_output(torch.zeros(2, 1, 5))) is None
    assert output_cache(CausalLMOutputWithPast(logits=torch.zeros(1), **{RELEASE_FIELD: state})) is state
    assert output_cache(EngineOutput(logits=torch.zeros(1), past_key_values=state)) is state


def test_an_lstm_step_writes_no_deprecation_warning(caplog):
    from textopia.models.lstm_lm import LSTMConfig, LSTMLanguageModel

    model = LSTMLanguageModel(LSTMConfig(n_embd=8, n_hidden=8, n_layer=1), vocab_size=16).eval()
    if hasattr(logging.Logger, "warning_once"):  # transformers warns once per process: forget earlier ones
        logging.Logger.warning_once.cache_clear()
    logger = logging.getLogger("transformers")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="transformers"):
            out = model(input_ids=torch.tensor([[1, 2]]), use_cache=True)
            state = output_cache(out)
            model(input_ids=torch.tensor([[3]]), past_key_values=state, use_cache=True)
    finally:
        logger.removeHandler(caplog.handler)
    assert state is not None and len(state) == 2
    assert RELEASE_FIELD in out.keys()
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]
