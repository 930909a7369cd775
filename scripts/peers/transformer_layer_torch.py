"""One GPT layer (GPT-NeoX / Megatron GPT / Llama) in plain PyTorch (eager, autograd), the
peer of seqscale's `transformer_layer` benchmark (layers/transformer_layer): the same layer
as transformer_layer_def.h in the same order, dropout left out, weights random:
  sequential   h1 = x + Attn(N1(x));  y = h1 + Mlp(N2(h1))
  parallel     y  = x + Attn(N1(x)) + Mlp(N2(x))            (GPT-NeoX, GenSLM)
N LayerNorm or RMSNorm (eps 1e-5); Attn: Q, K, V projections (GQA when kv_heads < heads),
rotary (rotate_half on int(head_dim * rotary_pct) dims, base 10000) with rotary positions,
causal attention, output projection; Mlp bias + tanh-GELU (GPT) or SwiGLU (Llama, no biases).
Attention two ways (impl):
  torch_eager   materialized: Q K^T / sqrt(d), masked_fill of the causal mask, softmax,
                P V (the probabilities live as autograd saves them: the s^2 baseline)
  torch_sdpa    F.scaled_dot_product_attention(is_causal=True) (PyTorch picks its flash
                or memory-efficient kernel; no s^2 tensor)
Recompute as the plan says: none; selective (torch.utils.checkpoint around the attention
core, Korthikanti et al. 2022 s5); full (checkpoint around the whole layer).
A point's time is forward + backward of one layer (the input gradient and every weight's);
its peak is torch.cuda.max_memory_allocated over weights, input, activations and gradients.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def parse_plan(text):
    """The keys of seqscale's --plan syntax this peer reads ("attn=fused,recompute=none")."""
    out = {}
    for part in filter(None, (text or "").split(",")):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip()
    return out


def dims_from_point(p):
    """Layer dimensions from a matrix point: the model file plus its overrides."""
    m = json.load(open(os.path.join(ROOT, "workloads", "models", p["model"] + ".json")))
    hidden = p.get("hidden", m["hidden"])
    heads = p.get("heads", m["heads"])
    kv_heads = m.get("kv_heads", m["heads"])
    if "heads" in p and kv_heads == m["heads"]:
        kv_heads = heads
    head_dim = hidden // heads
    rotary = m.get("position_embedding", "learned") == "rotary"
    rot = int(head_dim * m.get("rotary_pct", 1.0)) // 2 * 2 if rotary else 0
    return {
        "hidden": hidden, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
        "ffn": p.get("ffn_hidden", m["ffn_hidden"]), "rotary_dims": rot,
        "mlp": p.get("mlp", m.get("mlp", "gelu")), "norm": p.get("norm", m.get("norm", "layernorm")),
        "parallel": p.get("residual", "parallel" if m.get("parallel_residual", False) else "sequential") == "parallel",
        "seq": p["seq"], "batch": p.get("micro_batch", 1),
    }


class RMSNorm(nn.Module):
    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(c)), eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rotate(x, rot, cos, sin):
    """GPT-NeoX rotate_half on the first `rot` dims of x [b, s, H, d]."""
    if rot == 0:
        return x
    xr, xp = x[..., :rot], x[..., rot:]
    x1, x2 = xr[..., : rot // 2], xr[..., rot // 2:]
    rotated = torch.cat((-x2, x1), dim=-1)
    return torch.cat((xr * cos + rotated * sin, xp), dim=-1)


class GptLayer(nn.Module):
    def __init__(self, d, impl, recompute):
        super().__init__()
        h, H, K, hd, f = d["hidden"], d["heads"], d["kv_heads"], d["head_dim"], d["ffn"]
        bias = d["mlp"] == "gelu"
        norm = (lambda: nn.LayerNorm(h, eps=1e-5)) if d["norm"] == "layernorm" else (lambda: RMSNorm(h))
        self.d, self.impl, self.recompute = d, impl, recompute
        self.n1, self.n2 = norm(), norm()
        self.q, self.k, self.v = nn.Linear(h, H * hd, bias=bias), nn.Linear(h, K * hd, bias=bias), nn.Linear(h, K * hd, bias=bias)
        self.o = nn.Linear(H * hd, h, bias=bias)
        self.fc1 = nn.Linear(h, 2 * f if d["mlp"] == "swiglu" else f, bias=bias)
        self.fc2 = nn.Linear(f, h, bias=bias)
        rot = d["rotary_dims"]
        if rot:
            inv = 10000.0 ** (-torch.arange(0, rot, 2, dtype=torch.float64) / rot)
            ang = torch.outer(torch.arange(d["seq"], dtype=torch.float64), inv)
            ang = torch.cat((ang, ang), dim=-1)[None, :, None, :]  # [1, s, 1, rot]
            self.register_buffer("cos", ang.cos().float(), persistent=False)
            self.register_buffer("sin", ang.sin().float(), persistent=False)

    def core(self, q, k, v):
        """q [b, H, s, d], k, v [b, K, s, d] -> context [b, H, s, d], causal."""
        H, K = q.shape[1], k.shape[1]
        if K != H:  # GQA: each kv head serves H / K query heads
            k, v = k.repeat_interleave(H // K, dim=1), v.repeat_interleave(H // K, dim=1)
        if self.impl == "torch_sdpa":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        s = q.shape[2]
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        mask = torch.ones(s, s, dtype=torch.bool, device=q.device).triu_(1)
        p = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        return torch.matmul(p, v)

    def attention(self, x):
        d = self.d
        b, s, _ = x.shape
        q = self.q(x).view(b, s, d["heads"], d["head_dim"])
        k = self.k(x).view(b, s, d["kv_heads"], d["head_dim"])
        v = self.v(x).view(b, s, d["kv_heads"], d["head_dim"])
        if d["rotary_dims"]:
            cos, sin = self.cos.to(q.dtype), self.sin.to(q.dtype)
            q, k = rotate(q, d["rotary_dims"], cos, sin), rotate(k, d["rotary_dims"], cos, sin)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if self.recompute == "selective":
            o = checkpoint(self.core, q, k, v, use_reentrant=False)
        else:
            o = self.core(q, k, v)
        return self.o(o.transpose(1, 2).reshape(b, s, d["heads"] * d["head_dim"]))

    def mlp(self, x):
        u = self.fc1(x)
        if self.d["mlp"] == "swiglu":
            g, up = u.chunk(2, dim=-1)
            return self.fc2(F.silu(g) * up)
        return self.fc2(F.gelu(u, approximate="tanh"))

    def block(self, x):
        if self.d["parallel"]:
            return x + self.attention(self.n1(x)) + self.mlp(self.n2(x))
        h1 = x + self.attention(self.n1(x))
        return h1 + self.mlp(self.n2(h1))

    def forward(self, x):
        if self.recompute == "full":
            return checkpoint(self.block, x, use_reentrant=False)
        return self.block(x)


def make_layer_step(point, impl, dtype=torch.bfloat16, device="cuda"):
    """Returns (fn, layer): fn runs forward + backward of one layer on a fixed input and
    upstream gradient (made here, inside the caller's peak-memory window, as seqscale's
    TransformerLayerStep allocates x, dy and dx beside the weights)."""
    d = dims_from_point(point)
    recompute = parse_plan(point.get("plan", "")).get("recompute", "none")
    layer = GptLayer(d, impl, recompute).to(device=device, dtype=dtype)
    x = torch.randn(d["batch"], d["seq"], d["hidden"], device=device, dtype=dtype, requires_grad=True)
    dy = torch.randn_like(x)
    inputs = [x] + list(layer.parameters())

    def step():
        return torch.autograd.grad(layer(x), inputs, dy)

    return step, layer


if __name__ == "__main__":  # a smoke run on whatever device is there, at a tiny size
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    pt = {"model": "tiny-gpt", "heads": 1, "seq": 33, "plan": "attn=fused,recompute=selective"}
    for impl in ("torch_eager", "torch_sdpa"):
        fn, lyr = make_layer_step(pt, impl, dtype=torch.float32, device=dev)
        grads = fn()
        print(impl, sum(p.numel() for p in lyr.parameters()), "parameters,", len(grads), "gradients")
