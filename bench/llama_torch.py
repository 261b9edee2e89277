#!/usr/bin/env python3
"""The model examples/train_llama trains, in eager PyTorch fp32 on the CPU: the baseline of
bench/cpu_vs_llmc_pytorch.sh.

Same architecture and shapes as examples/train_llama/params.hpp and model.hpp: token embedding,
L x [RMSNorm -> q/k/v projections (no biases) -> RoPE (half-split pairs: i with i + D/2, angle
pos * theta^(-2i/D)) -> causal attention with GQA (kv heads repeated) -> output projection ->
residual; RMSNorm -> SwiGLU (silu(gate) * up -> down) -> residual], final RMSNorm, untied output
head, mean softmax cross-entropy. The same initialisation (N(0, 0.02), output projections scaled
by 1/sqrt(2L), norms at 1), AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.1 on every
parameter, as train_llama's kernel), gradient-norm clip 1.0 and the same learning-rate schedule
(linear warm-up over 10 steps, cosine to 10%). Random tokens (timing does not depend on them).

Each step (forward, backward, clip, AdamW) is timed; the first --warmup steps are left out of the
figure, as train_llama's meter does. Attention: PyTorch 1.13 has no fused attention, so the
default (--attention auto) uses torch.nn.functional.scaled_dot_product_attention where it
exists (PyTorch >= 2.0) and a masked softmax otherwise; --attention masked or sdpa forces one.

The last line is the result, one parsable line:
  llama_torch: tokens_per_s=<X> ms_per_step=<X> B=.. T=.. steps=.. warmup=.. threads=.. ...

  python3 bench/llama_torch.py [--lbs 4] [--seq 64] [--steps 10] [--warmup 2] [--threads N]
"""
import argparse
import math
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the benchmark script checks this first; say it when run by hand too
    sys.exit(f"llama_torch.py: PyTorch is not importable ({e}); on Debian/Ubuntu: "
             "apt-get install python3-torch libopenblas0-openmp")


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T, D, theta):
    # angle[t, i] = t * theta^(-2i/D), i < D/2, in double as train_llama's kernel, then fp32
    i = torch.arange(D // 2, dtype=torch.float64)
    freq = theta ** (-2.0 * i / D)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
    return angle.cos().float(), angle.sin().float()


def rope(x, cos, sin):
    # x [B, H, T, D]; pairs (i, i + D/2)
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)


class Block(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.Hq, self.Hkv, self.D = a.heads, a.kv_heads, a.hidden // a.heads
        Q, KV = self.Hq * self.D, self.Hkv * self.D
        self.attn_norm = RMSNorm(a.hidden, a.norm_eps)
        self.wq = torch.nn.Linear(a.hidden, Q, bias=False)
        self.wk = torch.nn.Linear(a.hidden, KV, bias=False)
        self.wv = torch.nn.Linear(a.hidden, KV, bias=False)
        self.wo = torch.nn.Linear(Q, a.hidden, bias=False)
        self.mlp_norm = RMSNorm(a.hidden, a.norm_eps)
        self.wgate = torch.nn.Linear(a.hidden, a.ffn, bias=False)
        self.wup = torch.nn.Linear(a.hidden, a.ffn, bias=False)
        self.wdown = torch.nn.Linear(a.ffn, a.hidden, bias=False)
        self.sdpa = a.use_sdpa

    def attention(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.Hq, self.D).transpose(1, 2)
        k = self.wk(x).view(B, T, self.Hkv, self.D).transpose(1, 2)
        v = self.wv(x).view(B, T, self.Hkv, self.D).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if self.Hkv != self.Hq:  # GQA: each kv head serves Hq / Hkv query heads
            k = k.repeat_interleave(self.Hq // self.Hkv, dim=1)
            v = v.repeat_interleave(self.Hq // self.Hkv, dim=1)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.D))
            y = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
        return self.wo(y.transpose(1, 2).reshape(B, T, self.Hq * self.D))

    def forward(self, x, cos, sin, mask):
        x = x + self.attention(self.attn_norm(x), cos, sin, mask)
        h = self.mlp_norm(x)
        return x + self.wdown(F.silu(self.wgate(h)) * self.wup(h))


class Llama(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.emb = torch.nn.Embedding(a.vocab, a.hidden)
        self.blocks = torch.nn.ModuleList(Block(a) for _ in range(a.layers))
        self.final_norm = RMSNorm(a.hidden, a.norm_eps)
        self.head = torch.nn.Linear(a.hidden, a.vocab, bias=False)  # untied
        self.D, self.theta = a.hidden // a.heads, a.rope_theta
        with torch.no_grad():  # params.hpp's init
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    p.normal_(0.0, 0.02)
                    if name.endswith("wo.weight") or name.endswith("wdown.weight"):
                        p.mul_(1.0 / math.sqrt(2.0 * a.layers))

    def forward(self, tokens, targets):
        T = tokens.shape[1]
        cos, sin = rope_tables(T, self.D, self.theta)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)  # True above the diagonal: masked
        x = self.emb(tokens)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        logits = self.head(self.final_norm(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--kv-heads", type=int, default=12)
    p.add_argument("--ffn", type=int, default=2048)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--norm-eps", type=float, default=1e-5)
    p.add_argument("--lbs", type=int, default=4, help="sequences per step (B)")
    p.add_argument("--seq", type=int, default=64, help="tokens per sequence (T)")
    p.add_argument("--steps", type=int, default=10, help="timed steps, after the warm-up")
    p.add_argument("--warmup", type=int, default=2, help="steps run first and left out of the figure")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: OMP_NUM_THREADS, else all cores)")
    p.add_argument("--attention", choices=("auto", "masked", "sdpa"), default="auto")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if a.hidden % a.heads or a.heads % a.kv_heads or (a.hidden // a.heads) % 2:
        p.error("hidden must split into heads of even size, and heads into kv-heads")
    if min(a.lbs, a.seq, a.steps) < 1 or a.warmup < 0:
        p.error("--lbs, --seq and --steps must be at least 1, --warmup at least 0")
    has_sdpa = hasattr(F, "scaled_dot_product_attention")
    if a.attention == "sdpa" and not has_sdpa:
        p.error(f"--attention sdpa: torch {torch.__version__} has no scaled_dot_product_attention (PyTorch >= 2.0)")
    a.use_sdpa = a.attention == "sdpa" or (a.attention == "auto" and has_sdpa)

    threads = a.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(a.seed)
    model = Llama(a)
    params = [q for q in model.parameters()]
    n_params = sum(q.numel() for q in params)
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    total = a.warmup + a.steps
    lr_warmup = 10

    times, loss = [], float("nan")
    for s in range(total):
        lr = (a.lr * (s + 1) / lr_warmup if s < lr_warmup else
              0.1 * a.lr + 0.45 * a.lr * (1 + math.cos(math.pi * (s - lr_warmup) / max(1, total - lr_warmup))))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = torch.randint(0, a.vocab, (a.lbs, a.seq + 1))
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(batch[:, :-1], batch[:, 1:])
        out.backward()
        torch.nn.utils.clip_grad_norm_(params, a.clip)
        opt.step()
        loss = out.item()
        dt = time.perf_counter() - t0
        if s >= a.warmup:
            times.append(dt)
        print(f"step {s + 1}/{total}{' (warm-up)' if s < a.warmup else ''}: loss {loss:.4f}, {dt * 1e3:.1f} ms",
              flush=True)
    tokens = a.lbs * a.seq * len(times)
    print(f"llama_torch: tokens_per_s={tokens / sum(times):.2f} ms_per_step={sum(times) / len(times) * 1e3:.1f} "
          f"B={a.lbs} T={a.seq} steps={len(times)} warmup={a.warmup} threads={torch.get_num_threads()} "
          f"torch={torch.__version__} attention={'sdpa' if a.use_sdpa else 'masked'} params={n_params} "
          f"loss={loss:.4f}")


if __name__ == "__main__":
    main()
