"""A pure-torch stand-in for the two ``sgl_kernel`` CPU ops sglang calls when it serves a
small model on the CPU (the published ``sglang-kernel`` wheel is GPU-only).

Test infrastructure only: put this directory first on the sglang server's PYTHONPATH.
Names sglang imports but never calls on this path resolve to functions that raise.
"""

from __future__ import annotations

import ctypes

import torch


def assign_req_to_token_pool_cpu(
    req_pool_indices: torch.Tensor,
    req_to_token: torch.Tensor,
    start_offset: torch.Tensor,
    end_offset: torch.Tensor,
    out_cache_loc: torch.Tensor,
    pool_len: int,
) -> None:
    """Write each request's new cache locations into its row of the token pool."""
    pos = 0
    for row, start, end in zip(
        req_pool_indices.tolist(), start_offset.tolist(), end_offset.tolist(), strict=True
    ):
        n = end - start
        req_to_token[row, start:end] = out_cache_loc[pos : pos + n].to(req_to_token.dtype)
        pos += n


def copy_all_layer_kv_cache_cpu(
    data_ptrs: torch.Tensor, strides: torch.Tensor, tgt_loc: torch.Tensor, src_loc: torch.Tensor
) -> None:
    """For every KV buffer (a raw pointer and a row stride in bytes) copy row src to tgt."""
    pairs = list(zip(tgt_loc.tolist(), src_loc.tolist(), strict=True))
    for ptr, stride in zip(data_ptrs.tolist(), strides.tolist(), strict=True):
        for tgt, src in pairs:
            ctypes.memmove(ptr + tgt * stride, ptr + src * stride, stride)


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)

    def unavailable(*args, **kwargs):
        raise NotImplementedError(f"sgl_kernel.{name} is not available in the CPU shim")

    unavailable.__name__ = name
    return unavailable
