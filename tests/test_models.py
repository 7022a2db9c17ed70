"""The three models: parameter and FLOP accounting, attention direction, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from orchestrator.sizes import LADDER, parse_count
from trainers.architectures import ARCHITECTURES
from trainers.blocks import IGNORE, ModelConfig
from trainers.objectives import objective_for
from trainers.tokenizers import ByteTokenizer

TOK = ByteTokenizer()


def build(architecture, n_layer=2, n_embd=32, n_head=2, seq_len=32, device="cpu"):
    config = ModelConfig(architecture, TOK.vocab_size, seq_len, n_layer, n_embd, n_head)
    with torch.device(device):
        return ARCHITECTURES[architecture].load("model")(config)


def batch_of(architecture, rows=4, seq_len=32, seed=0):
    objective = objective_for(architecture, seq_len)
    rng = np.random.default_rng(seed)
    windows = rng.integers(0, 256, (rows, objective.window))  # bytes
    return objective.make(windows, TOK, rng)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("shape", [(1, 16, 1), (2, 32, 2), (3, 48, 3), (4, 96, 6)])
def test_parameter_counts_equal_the_closed_form(architecture, shape):
    model = build(architecture, *shape)
    acct = model.config.accounting
    assert model.count_params(non_embedding=True) == acct.n_params
    assert model.count_params(non_embedding=False) == acct.total_params
    L, d = shape[0], shape[1]
    stacks = {
        "decoder": L * (12 * d * d + 13 * d) + 2 * d,
        "encoder": L * (12 * d * d + 13 * d) + 2 * d + d * d + 3 * d,  # and the MLM head
        "encdec": L * (12 * d * d + 13 * d) + L * (16 * d * d + 19 * d) + 4 * d,
    }
    assert acct.n_params == stacks[architecture]


@pytest.mark.parametrize(("architecture", "label"), [(a, s) for a in LADDER for s in LADDER[a]])
def test_every_ladder_label_is_within_5_percent_of_the_measured_n(architecture, label):
    shape = LADDER[architecture][label]
    model = build(architecture, shape.n_layer, shape.n_embd, shape.n_head, 256, device="meta")
    n = model.count_params(non_embedding=True)
    assert abs(n - parse_count(label)) / parse_count(label) < 0.05


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("seq_len", [64, 256])
def test_flops_per_token_match_a_flop_counter(architecture, seq_len):
    """torch's FLOP counter sees every matmul of a training step (attention included on the
    math backend); the accounting adds biases and norms (6 per parameter), about 1% here."""
    model = build(architecture, 2, 128, 4, seq_len)
    batch = batch_of(architecture, 32, seq_len)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.loss(batch).backward()
    measured = counter.get_total_flops() / (32 * seq_len)
    acct = model.config.accounting
    if architecture == "decoder":
        small = 6 * (2 * 13 * 128 + 2 * 128)  # biases and norms: not matmuls
        assert measured == acct.flops_per_token - small
    if architecture == "encoder":  # the head runs on the positions actually selected
        selected = float((batch["targets"] != IGNORE).float().mean())
        measured += 6 * TOK.vocab_size * 128 * (0.15 - selected)
    assert 0.98 < measured / acct.flops_per_token < 1.0


def test_scored_fractions():
    fractions = {a: build(a, seq_len=128).config.accounting.scored_fraction for a in ARCHITECTURES}
    assert fractions["decoder"] == 1.0
    assert fractions["encoder"] == 0.15
    assert 0.18 < fractions["encdec"] < 0.22  # 19 noise tokens + 6 sentinels + <eos> of 128


def test_decoder_is_causal():
    model = build("decoder").eval()
    x = torch.randint(0, 256, (1, 32))
    y = x.clone()
    y[0, 20:] = (y[0, 20:] + 1) % 256  # change the future
    with torch.no_grad():
        assert torch.allclose(model(x)[0, :20], model(y)[0, :20], atol=1e-6)
        assert not torch.allclose(model(x)[0, 20:], model(y)[0, 20:])
        keys = torch.ones(1, 32, dtype=torch.bool)  # a key mask keeps the causal mask
        assert torch.allclose(model(x, keys), model(x), atol=1e-6)


def test_encoder_is_bidirectional():
    model = build("encoder").eval()
    x = torch.randint(0, 256, (1, 32))
    y = x.clone()
    y[0, 31] = (y[0, 31] + 1) % 256  # change only the last token
    with torch.no_grad():
        assert not torch.allclose(model(x)[0, 0], model(y)[0, 0])  # the first position sees it


def test_encdec_decoder_is_causal_and_sees_the_whole_input():
    model = build("encdec").eval()
    inputs = torch.randint(0, 256, (1, 20))
    targets = torch.randint(0, 256, (1, 8))
    later = targets.clone()
    later[0, 5:] = (later[0, 5:] + 1) % 256
    other_input = inputs.clone()
    other_input[0, -1] = (other_input[0, -1] + 1) % 256
    with torch.no_grad():
        base = model(inputs, targets)[0]
        assert torch.allclose(base[:5], model(inputs, later)[0, :5], atol=1e-6)
        assert not torch.allclose(base[0], model(other_input, targets)[0, 0])


def test_a_masked_lm_batch_with_nothing_selected_has_zero_loss():
    model = build("encoder")
    batch = {"inputs": torch.randint(0, 256, (1, 32)), "targets": torch.full((1, 32), IGNORE)}
    loss = model.loss(batch)
    assert loss.item() == 0.0
    loss.backward()  # and a gradient of zeros, not NaN


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_architecture_overfits_one_batch(architecture):
    torch.manual_seed(0)
    model = build(architecture, 2, 64, 4, 32)
    batch = batch_of(architecture, 4, 32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = model.loss(batch).item()
    for _ in range(300):
        optimizer.zero_grad()
        loss = model.loss(batch)
        loss.backward()
        optimizer.step()
    assert first > 5.0  # about ln(vocab) at initialisation
    assert loss.item() < 0.05


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_name_a_registry_entry_gives_is_code_that_exists(architecture):
    entry = ARCHITECTURES[architecture]
    for part in ("model", "batches", "scorer", "hf_mapping"):
        assert callable(entry.load(part)), part
    assert entry.hf_class.startswith("AutoModelFor") and entry.pipeline
