"""One AlphaFold2 Evoformer block in plain PyTorch (eager, autograd), the peer of seqscale's
`evoformer_block` benchmark (layers/evoformer_block): the same modules in the same order
(Jumper et al. 2021, supplement Algorithm 6; the extra-MSA stack's block with
MSAColumnGlobalAttention, Algorithm 19), dropout left out, OuterProductMean divided by
N_seq. Attention is OpenFold's plain path (matmul, bias add, softmax, matmul: the
probabilities live as autograd saves them) or F.scaled_dot_product_attention with the
float bias. Peak memory and time of forward + backward are what the side-by-side needs;
the weights are random.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


def dims_from_model(path, stack):
    """Block dimensions from a workloads/models/*.json Evoformer file (main or extra_msa)."""
    m = json.load(open(path))
    main = stack == "main"
    att = m["msa_attention"] if main else m["extra_msa_attention"]
    return {
        "n_seq": m["n_seq"] if main else m["n_extra"], "n_res": m["n_res"],
        "c_m": m["c_m"] if main else m["c_e"], "c_z": m["c_z"],
        "msa_heads": att["heads"], "msa_head_dim": att["head_dim"],
        "tri_heads": m["triangle_attention"]["heads"], "tri_head_dim": m["triangle_attention"]["head_dim"],
        "c_opm": m.get("c_hidden_opm", 32), "c_tri_mul": m.get("c_hidden_tri_mul", 128),
        "transition": m.get("transition_factor", 4), "global_column": not main,
    }


def attend(q, k, v, bias, impl):
    """q, k, v [..., H, L, D]; bias broadcastable to [..., H, L, L] or None."""
    if impl == "torch_sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    a = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if bias is not None:
        a = a + bias
    return torch.matmul(torch.softmax(a, dim=-1), v)


class GatedAttention(nn.Module):
    """Gated self-attention over the second-to-last axis of x [rows, len, c]."""

    def __init__(self, c, heads, head_dim, pair_bias=None, c_z=None):
        super().__init__()
        self.h, self.d = heads, head_dim
        hd = heads * head_dim
        self.ln = nn.LayerNorm(c)
        self.q, self.k, self.v = (nn.Linear(c, hd, bias=False) for _ in range(3))
        self.g, self.o = nn.Linear(c, hd), nn.Linear(hd, c)
        # "self": triangle attention (bias from the same normalised pair); "z": MSA row
        # attention (its own LayerNorm of the pair representation).
        self.pair_bias = pair_bias
        if pair_bias == "z":
            self.ln_z = nn.LayerNorm(c_z)
        if pair_bias is not None:
            self.bias = nn.Linear(c_z if pair_bias == "z" else c, heads, bias=False)

    def forward(self, x, z, impl):
        rows, length, _ = x.shape
        x = self.ln(x)

        def split(t):
            return t.view(rows, length, self.h, self.d).transpose(-2, -3)  # [rows, H, len, D]

        bias = None
        if self.pair_bias == "z":
            bias = self.bias(self.ln_z(z)).permute(2, 0, 1)  # [H, len, len]
        elif self.pair_bias == "self":
            bias = self.bias(x).permute(2, 0, 1)
        o = attend(split(self.q(x)), split(self.k(x)), split(self.v(x)), bias, impl)
        o = o.transpose(-2, -3).reshape(rows, length, self.h * self.d)
        return self.o(torch.sigmoid(self.g(x)) * o)


class GlobalColumnAttention(nn.Module):
    """Algorithm 19 on x [rows, len, c] (rows = N_res, len = N_extra)."""

    def __init__(self, c, heads, head_dim):
        super().__init__()
        self.h, self.d = heads, head_dim
        self.ln = nn.LayerNorm(c)
        self.q = nn.Linear(c, heads * head_dim, bias=False)
        self.k, self.v = nn.Linear(c, head_dim, bias=False), nn.Linear(c, head_dim, bias=False)
        self.g, self.o = nn.Linear(c, heads * head_dim), nn.Linear(heads * head_dim, c)

    def forward(self, x, impl):
        rows, length, _ = x.shape
        x = self.ln(x)
        q = self.q(x).mean(dim=1).view(rows, self.h, self.d)             # [rows, H, D]
        a = torch.softmax(torch.matmul(q, self.k(x).transpose(-1, -2)) / math.sqrt(self.d), dim=-1)
        o = torch.matmul(a, self.v(x)).reshape(rows, 1, self.h * self.d)  # [rows, 1, H*D]
        return self.o(torch.sigmoid(self.g(x)) * o)


class Transition(nn.Module):
    def __init__(self, c, n):
        super().__init__()
        self.ln, self.l1, self.l2 = nn.LayerNorm(c), nn.Linear(c, n * c), nn.Linear(n * c, c)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(self.ln(x))))


class OuterProductMean(nn.Module):
    def __init__(self, c_m, c, c_z):
        super().__init__()
        self.ln, self.a, self.b = nn.LayerNorm(c_m), nn.Linear(c_m, c), nn.Linear(c_m, c)
        self.o = nn.Linear(c * c, c_z)

    def forward(self, m):
        x = self.ln(m)
        outer = torch.einsum("sic,sjd->ijcd", self.a(x), self.b(x)) / m.shape[0]
        return self.o(outer.reshape(m.shape[1], m.shape[1], -1))


class TriangleMultiplication(nn.Module):
    def __init__(self, c_z, c, outgoing):
        super().__init__()
        self.outgoing = outgoing
        self.ln_in, self.ln_out = nn.LayerNorm(c_z), nn.LayerNorm(c)
        self.ag, self.ap, self.bg, self.bp = (nn.Linear(c_z, c) for _ in range(4))
        self.g, self.p = nn.Linear(c_z, c_z), nn.Linear(c, c_z)

    def forward(self, z):
        x = self.ln_in(z)
        a = torch.sigmoid(self.ag(x)) * self.ap(x)
        b = torch.sigmoid(self.bg(x)) * self.bp(x)
        t = torch.einsum("ikc,jkc->ijc", a, b) if self.outgoing else torch.einsum("kic,kjc->ijc", a, b)
        return torch.sigmoid(self.g(x)) * self.p(self.ln_out(t))


class EvoformerBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        cm, cz = d["c_m"], d["c_z"]
        self.global_column = d["global_column"]
        self.row = GatedAttention(cm, d["msa_heads"], d["msa_head_dim"], pair_bias="z", c_z=cz)
        self.col = (GlobalColumnAttention(cm, d["msa_heads"], d["msa_head_dim"]) if self.global_column
                    else GatedAttention(cm, d["msa_heads"], d["msa_head_dim"]))
        self.msa_tr = Transition(cm, d["transition"])
        self.opm = OuterProductMean(cm, d["c_opm"], cz)
        self.tmo = TriangleMultiplication(cz, d["c_tri_mul"], True)
        self.tmi = TriangleMultiplication(cz, d["c_tri_mul"], False)
        self.tas = GatedAttention(cz, d["tri_heads"], d["tri_head_dim"], pair_bias="self")
        self.tae = GatedAttention(cz, d["tri_heads"], d["tri_head_dim"], pair_bias="self")
        self.pair_tr = Transition(cz, d["transition"])

    def forward(self, m, z, impl):
        m = m + self.row(m, z, impl)
        mt = m.transpose(0, 1)
        col = self.col(mt, impl) if self.global_column else self.col(mt, None, impl)
        m = m + col.transpose(0, 1)
        m = m + self.msa_tr(m)
        z = z + self.opm(m)
        z = z + self.tmo(z)
        z = z + self.tmi(z)
        z = z + self.tas(z, None, impl)
        zt = z.transpose(0, 1)
        z = z + self.tae(zt, None, impl).transpose(0, 1)
        z = z + self.pair_tr(z)
        return m, z


def make_block_step(model_path, stack, impl, dtype=torch.float32, device="cuda"):
    """Returns (fn, block): fn runs forward + backward of one block (weights and inputs
    are made here, so the caller's peak-memory window sees them, as seqscale's does)."""
    d = dims_from_model(model_path, stack)
    block = EvoformerBlock(d).to(device=device, dtype=dtype)
    S, R = d["n_seq"], d["n_res"]
    m = torch.randn(S, R, d["c_m"], device=device, dtype=dtype, requires_grad=True)
    z = torch.randn(R, R, d["c_z"], device=device, dtype=dtype, requires_grad=True)
    dm, dz = torch.randn_like(m), torch.randn_like(z)
    inputs = [m, z] + list(block.parameters())
    attention_impl = "torch_sdpa" if impl.startswith("torch_sdpa") else "torch_eager"

    def step():
        mo, zo = block(m, z, attention_impl)
        return torch.autograd.grad((mo, zo), inputs, (dm, dz))

    return step, block


if __name__ == "__main__":  # a smoke run on whatever device is there, at a tiny crop
    here = os.path.dirname(os.path.abspath(__file__))
    model = os.path.join(here, "..", "..", "workloads", "models", "evoformer-openfold-initial.json")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for stack in ("main", "extra_msa"):
        fn, blk = make_block_step(model, stack, "torch_eager", device=dev)
        print(stack, sum(p.numel() for p in blk.parameters()), "parameters")
