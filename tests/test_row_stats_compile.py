"""The LayerNorm-style references trace into one graph: torch.compile(fullgraph=True) of a model whose norms fall
back to them must not fail on a branch on data (the anchor lane's compile of layer_norm and group_norm did)."""

import torch

from mpskernels.kernels.row_stats import normalize_rows


def test_normalize_rows_compiles_fullgraph_and_keeps_the_rescue():
    rows = torch.tensor([[1.0, 2.0, 4.0, 8.0],
                         [3.0e38, -3.0e38, 1.0e38, 0.0],  # the fp32 sums overflow: the rescued path
                         [5.0, 5.0, 5.0, 5.0]])  # constant: exactly 0
    compiled = torch.compile(normalize_rows, backend="eager", fullgraph=True)
    got, want = compiled(rows, 1e-5), normalize_rows(rows, 1e-5)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    exact = rows.double()
    exact = (exact - exact.mean(-1, keepdim=True)) / (exact.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    torch.testing.assert_close(got, exact.float(), rtol=1e-5, atol=1e-6)
    assert torch.isfinite(got).all() and (got[2] == 0).all()
