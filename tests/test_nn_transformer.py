"""nn.Transformer and its encoder/decoder layers: PyTorch's state-dict keys, forward values and
gradients (PyTorch's weights loaded into tensorlite's model), float64 gradchecks, masks, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from oracle import torch

import tensorlite as tl

SMALL = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=12, dropout=0.0)
CONFIGS = [dict(), dict(batch_first=True, norm_first=True, activation="gelu"), dict(bias=False)]


def host(t) -> np.ndarray:
    return np.asarray(t.detach().numpy() if hasattr(t, "detach") else t.numpy())


def inputs(batch_first: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """src (S=5) and tgt (T=4) for batch 3, in the layout the model expects."""
    rng = np.random.default_rng(seed)
    src, tgt = rng.standard_normal((5, 3, 8)), rng.standard_normal((4, 3, 8))
    if batch_first:
        src, tgt = src.transpose(1, 0, 2), tgt.transpose(1, 0, 2)
    return np.ascontiguousarray(src, dtype=np.float32), np.ascontiguousarray(tgt, dtype=np.float32)


def twins(options: dict, device: str) -> tuple:
    """PyTorch's model and tensorlite's, with PyTorch's weights copied into tensorlite's."""
    torch.manual_seed(0)
    theirs = torch.nn.Transformer(**SMALL, **options)
    ours = tl.nn.Transformer(**SMALL, **options, device=device)
    ours.load_state_dict({k: tl.tensor(host(v), device=device) for k, v in theirs.state_dict().items()})
    return theirs, ours


@pytest.mark.parity
@pytest.mark.parametrize("options", CONFIGS, ids=["post-norm", "pre-norm-batch-first-gelu", "no-bias"])
def test_transformer_matches_pytorch(device: str, options: dict) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's note about nested tensors
        theirs, ours = twins(options, device)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    src, tgt = inputs(options.get("batch_first", False))
    pad = np.array([[False] * 4 + [True], [False] * 5, [False, True, False, False, False]])  # (N, S)
    mask_t = torch.nn.Transformer.generate_square_subsequent_mask(4)
    mask_o = tl.nn.Transformer.generate_square_subsequent_mask(4, device=device)
    src_t, tgt_t = torch.tensor(src, dtype=torch.float32, requires_grad=True), torch.tensor(tgt, dtype=torch.float32)
    src_o, tgt_o = tl.tensor(src, dtype=tl.float32, device=device, requires_grad=True), tl.tensor(tgt, device=device)
    out_t = theirs(src_t, tgt_t, tgt_mask=mask_t, src_key_padding_mask=torch.from_numpy(pad),
                   memory_key_padding_mask=torch.from_numpy(pad))
    out_o = ours(src_o, tgt_o, tgt_mask=mask_o, src_key_padding_mask=tl.tensor(pad, device=device),
                 memory_key_padding_mask=tl.tensor(pad, device=device))
    np.testing.assert_allclose(host(out_o), host(out_t), rtol=1e-5, atol=1e-5)
    weights = np.random.default_rng(3).standard_normal(out_t.shape).astype(np.float32)
    (out_t * torch.from_numpy(weights)).sum().backward()
    (out_o * tl.tensor(weights, device=device)).sum().backward()
    np.testing.assert_allclose(host(src_o.grad), host(src_t.grad), rtol=1e-4, atol=1e-5)
    grads_t = {name: p.grad for name, p in theirs.named_parameters()}
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(host(p.grad), host(grads_t[name]), rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parity
def test_encoder_with_a_float_causal_mask_matches_pytorch(device: str) -> None:
    """The word_language_model pattern: only the encoder, a float mask built with masked_fill."""
    torch.manual_seed(1)
    layer_t = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    theirs = torch.nn.TransformerEncoder(layer_t, 2, enable_nested_tensor=False)
    ours = tl.nn.TransformerEncoder(tl.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0), 2)
    ours.to(device).load_state_dict({k: tl.tensor(host(v)) for k, v in theirs.state_dict().items()})
    mask = (np.triu(np.ones((5, 5))) == 1).T
    float_mask = np.where(mask, 0.0, -np.inf).astype(np.float32)
    src = np.random.default_rng(0).standard_normal((5, 2, 8)).astype(np.float32)
    out_t = theirs(torch.from_numpy(src), mask=torch.from_numpy(float_mask))
    out_o = ours(tl.tensor(src, device=device), mask=tl.tensor(float_mask, device=device))
    np.testing.assert_allclose(host(out_o), host(out_t), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_gradcheck(check, device: str, norm_first: bool) -> None:
    tl.manual_seed(0)
    model = tl.nn.Transformer(**{**SMALL, "num_encoder_layers": 1}, norm_first=norm_first, dtype=tl.float64,
                              device=device)
    mask = tl.nn.Transformer.generate_square_subsequent_mask(4, device=device, dtype=tl.float64)
    src, tgt = inputs(False, seed=2)
    check.grad(lambda s, t: model(s, t, tgt_mask=mask), [src[:, :2], tgt[:, :2]], device)
    check.parity(lambda s, t: tl.nn.Transformer.generate_square_subsequent_mask(3, device=device) + s.sum() * 0,
                 lambda s, t: torch.nn.Transformer.generate_square_subsequent_mask(3) + s.sum() * 0,
                 [src[:1, :1, :1], tgt[:1, :1, :1]], device)


def test_causal_mask_values(device: str) -> None:
    mask = tl.nn.Transformer.generate_square_subsequent_mask(3, device=device)
    assert mask.device == device and mask.dtype == tl.float32
    assert mask.tolist() == [[0.0, -math.inf, -math.inf], [0.0, 0.0, -math.inf], [0.0, 0.0, 0.0]]


def test_layers_are_independent_copies_and_matrices_are_xavier() -> None:
    model = tl.nn.Transformer(**SMALL)
    first, second = model.encoder.layers
    assert first is not second and first.linear1.weight is not second.linear1.weight
    bound = math.sqrt(6 / (8 + 12))  # xavier_uniform_ of linear1's (12, 8) weight
    assert 0 < np.abs(host(first.linear1.weight)).max() <= bound
    assert set(dict(model.named_modules())) >= {"encoder.norm", "decoder.norm", "decoder.layers.0.multihead_attn"}


def test_unbatched_sequences(device: str) -> None:
    model = tl.nn.Transformer(**SMALL, device=device)
    out = model(tl.randn(5, 8, device=device), tl.randn(4, 8, device=device))
    assert out.shape == (4, 8)


def test_transformer_rejects_bad_arguments() -> None:
    model = tl.nn.Transformer(**SMALL)
    with pytest.raises(ValueError, match="the batch number of src and tgt must be equal"):
        model(tl.zeros(5, 3, 8), tl.zeros(4, 2, 8))
    with pytest.raises(ValueError, match=r"must be equal to d_model \(8\)"):
        model(tl.zeros(5, 3, 8), tl.zeros(4, 3, 6))
    with pytest.raises(ValueError, match="activation should be relu/gelu or a callable, not 'swish'"):
        tl.nn.TransformerEncoderLayer(8, 2, activation="swish")
    with pytest.raises(ValueError, match="TransformerDecoder: num_layers must be a positive int, got 0"):
        tl.nn.TransformerDecoder(tl.nn.TransformerDecoderLayer(8, 2), 0)
    with pytest.raises(TypeError, match="TransformerEncoder: expected a layer module to copy"):
        tl.nn.TransformerEncoder("layer", 2)
