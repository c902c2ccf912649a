"""SASRec: a causal self-attention transformer over a user's last items (Kang & McAuley, ICDM 2018).

The model is the reference one (the authors' TensorFlow code, ported to PyTorch by pmixer/SASRec.pytorch):
item embeddings (scaled by √hidden, shared with the output layer) plus learned positional embeddings,
``blocks`` layers of

    q = LN(x);  x = q + MultiHeadAttention(q, x, x, causal);  x = LN(x);  x = x + FFN(x)

(FFN = two position-wise linear layers of width ``hidden`` with ReLU and dropout) and a final
LayerNorm. Each position's output ``h_t`` scores every item ``j`` by ``h_t · e_j``.

Changes from the paper:

* **Training loss.** Full softmax cross-entropy over *all* items at every position (predict item
  ``t + 1`` from items ``≤ t``), not the paper's binary cross-entropy with one sampled negative. Under
  full ranking on Amazon Beauty this is the difference between HR@10 ≈ .06 (paper) and ≈ .09 (see
  Klenitskiy & Vasilev, "Turning dross into gold loss: is BERT4Rec really better than SASRec?",
  RecSys 2023; Petrov & Macdonald, gSASRec, RecSys 2023). The loss is computed in chunks of 256
  positions whose logits become their gradient in place while in cache (``FullSoftmaxCE``); this is
  1.8× faster on CPU than materialising the (positions × items) logits. Its three products are most
  of the training time; on a CPU with bf16 dot products they run in bfloat16 (``ce_dtype``).
* **Padding.** Sequences are left-padded and padded keys are masked out of the attention (the
  reference code lets real items attend to padding, whose keys are only the projection biases).
  Positions count back from the most recent item (0 = last), which is what the original code's
  positional table over a left-padded window of ``max_len`` amounts to. With both, a batch can be cut
  to its longest sequence without changing any output; batching sequences of similar length
  (``bucket_by_length``) then spends almost no compute on padding (Beauty: 2.5× faster epochs).
* **Schedule.** AdamW (β = 0.9, 0.98 as in the reference; torch's fused CPU kernel) with a cosine
  decay of the learning rate to 0 over ``epochs`` (or over ``time_budget_seconds`` when that ends
  first).

Measured on Amazon Beauty (leave-one-out, full ranking, history excluded), defaults, 2 threads,
2026-12-01: 30 epochs, 13–15 s per epoch alone on the 2 cores (fit ≈ 7 min; 444 s measured for the
validation run), test HR@10 / NDCG@10 = .1083 / .0659; validation (second-to-last item, trained
without it) .1181 / .0721. For comparison: ``sequential`` .0937 / .0608, published SASRec with sampled
softmax .0921 / .0531, best published (BSARec) .1008 / .0611. The previous defaults (one head, constant
lr 1e-3, up to 200 epochs) were not measured to the end: at equal epochs their training loss trailed
(epoch 15: 6.97 against 6.71), and 200 epochs would take ≈ 45 min.

With the fused softmax, the fused AdamW and bf16 loss products (2026-12-08, AMD EPYC Zen 4, 2 threads,
other jobs keeping about 1.2 of the 2 cores busy; ``benchmarks/sasrec_speed.py``): 18.6 s per epoch
against 348 s for RecBole 1.2.1's SASRec with the same model and loss, measured alternately (18.8×;
CPU seconds 12.3 against 247); with ``validation_users=2000`` the fit stopped early after 27 epochs
(best 22) in 361 s, test HR@10 / NDCG@10 = .1078 / .0649.

Serving: a query's sequence is the known user's training sequence followed by the query's own items
(``queries.items``, oldest first, then ``current_item`` when it is not already last); an unknown user
with a session uses the session alone; the last ``max_len`` items are encoded and the output at the
most recent position scores all items. Queries with **no items at all** get global popularity (the
number of training events per item), since no position of the model was trained to predict the first
item of a sequence.

torch is imported lazily: ``import shoprec.strategies.sasrec`` works without it, ``fit`` and the
scoring raise :class:`~shoprec.exceptions.ConfigError` with the install command when it is missing.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator, Literal, Mapping

import numpy as np
from pydantic import Field, model_validator

from .. import progress
from ..data import Ragged, ShopData
from ..exceptions import ConfigError
from .base import Queries, Strategy, StrategyConfig, register
from .session_knn import query_sequences

__all__ = ["SASRecConfig", "SASRecStrategy"]

log = logging.getLogger(__name__)

TORCH_HINT = ('the sasrec strategy needs PyTorch; install its CPU build first with '
              '`pip install torch==2.13.0`, then `pip install "shoprec[neural]"` '
              '(an unpinned torch pulls a multi-GB CUDA build)')

#: queries encoded per forward pass when scoring
SCORE_BATCH = 1024
#: positions per chunk of the full-softmax loss (a chunk's logits stay in cache)
CE_CHUNK = 256


def _torch():
    """Import torch, or raise ConfigError with the install command.

    When torch is not imported yet, ``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` (an explicit setting
    wins): with OpenMP's default spin-waiting, two training threads on a machine whose cores another
    job also uses ran an epoch of Amazon Beauty in 320 s instead of 24 s (2 cores, 2026-12-01), since
    a spinning thread burns the core its descheduled partner needs."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        raise ConfigError(TORCH_HINT) from None
    return torch


@contextmanager
def _threads(torch, n: int) -> Iterator[None]:
    """Run with ``torch.set_num_threads(n)`` and restore the previous setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------ config
class SASRecConfig(StrategyConfig):
    """Parameters of :class:`SASRecStrategy` (defaults tuned on the validation split of Amazon Beauty,
    leave-one-out, for a training budget of about 10 minutes on 2 CPU cores)."""

    max_len: int = Field(default=50, ge=1, description="Most recent items the model sees per sequence.")
    hidden: int = Field(default=64, ge=1, description="Embedding and hidden size.")
    blocks: int = Field(default=2, ge=1, description="Number of self-attention blocks.")
    heads: int = Field(default=2, ge=1, description="Attention heads (must divide hidden).")
    dropout: float = Field(default=0.5, ge=0, lt=1,
                           description="Dropout on embeddings, attention weights and feed-forward layers.")
    lr: float = Field(default=2e-3, gt=0, description="AdamW learning rate (the peak of the schedule).")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW decoupled weight decay.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        default="cosine",
        description="constant, or cosine decay from lr to 0 per step over `epochs` (or over the time "
                    "budget when that ends sooner).")
    batch_size: int = Field(default=128, ge=1, description="Training sequences per step.")
    bucket_by_length: bool = Field(
        default=True,
        description="Batch sequences of similar length (sorted within shuffled groups of 64 batches), "
                    "about batch_size × mean length positions per batch, so that little compute goes "
                    "to padding; false = random batches of batch_size sequences as in the reference.")
    epochs: int = Field(default=30, ge=1,
                        description="Passes over the training sequences (30 ≈ 10 min on Amazon Beauty, "
                                    "2 cores).")
    time_budget_seconds: float | None = Field(
        default=None, gt=0,
        description="Bound on the whole fit in seconds, data preparation and early-stopping passes "
                    "included: training stops at the first mini-batch (or validation chunk) that "
                    "finds the budget spent, after at least one mini-batch (None = no limit).")
    validation_users: int = Field(
        default=0, ge=0,
        description="Early stopping: hold out the last item of this many training users (drawn with "
                    "the seed; those items are then not trained on), measure HR@10 on them after "
                    "each epoch and keep the best epoch; 0 = off.")
    patience: int = Field(default=5, ge=1,
                          description="Early stopping: epochs without a better HR@10 before stopping.")
    seed: int = Field(default=0, description="Seed of initialisation, dropout and batch order.")
    num_threads: int = Field(default=2, ge=1, description="torch.set_num_threads during fit and scoring.")
    ce_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Precision of the three (positions × items) products of the training loss, most of "
                    "the training time: bfloat16 (bf16 operands and products, float32 softmax "
                    "accumulation and gradients) runs them 3–8× faster on a CPU with bf16 dot "
                    "products (AVX512-BF16 or AMX; measured alone on AMD EPYC Zen 4, 2026-12-08) and "
                    "moves the gradients by ≈ 0.2 %; auto = bfloat16 on such a CPU, float32 elsewhere. "
                    "Scoring is float32 either way.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> "SASRecConfig":
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        return self


# ------------------------------------------------------------------------------ module
_MODULE_CLASS = None


def _module_class():
    """The SASRec ``nn.Module`` class, defined on first use so that torch is imported lazily."""
    global _MODULE_CLASS
    if _MODULE_CLASS is not None:
        return _MODULE_CLASS
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class Attention(nn.Module):
        """Multi-head attention with a boolean mask (True = may attend), dropout on the weights."""

        def __init__(self, hidden: int, heads: int, dropout: float) -> None:
            super().__init__()
            self.heads, self.dropout = heads, dropout
            self.q = nn.Linear(hidden, hidden)
            self.kv = nn.Linear(hidden, 2 * hidden)
            self.out = nn.Linear(hidden, hidden)

        def forward(self, query, keys, mask):
            b, n, d = query.shape
            h = self.heads
            q = self.q(query).view(b, n, h, d // h).transpose(1, 2)
            k, v = self.kv(keys).view(b, n, 2, h, d // h).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               dropout_p=self.dropout if self.training else 0.0)
            return self.out(y.transpose(1, 2).reshape(b, n, d))

    class FeedForward(nn.Module):
        """Position-wise feed-forward of the reference: linear, dropout, ReLU, linear, dropout."""

        def __init__(self, hidden: int, dropout: float) -> None:
            super().__init__()
            self.fc1 = nn.Linear(hidden, hidden)
            self.fc2 = nn.Linear(hidden, hidden)
            self.drop1 = nn.Dropout(dropout)
            self.drop2 = nn.Dropout(dropout)

        def forward(self, x):
            return self.drop2(self.fc2(F.relu(self.drop1(self.fc1(x)))))

    class SASRecModule(nn.Module):
        """Item + positional embeddings, ``blocks`` attention blocks, final LayerNorm.

        Input: (B, L) item ids shifted by one (0 = padding), left-padded. Output: (B, L, hidden).
        """

        def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
            super().__init__()
            d = cfg.hidden
            self.scale = math.sqrt(d)
            self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
            self.pos_emb = nn.Embedding(cfg.max_len, d)
            self.emb_drop = nn.Dropout(cfg.dropout)
            self.attn_norms = nn.ModuleList(nn.LayerNorm(d, eps=1e-8) for _ in range(cfg.blocks))
            self.attns = nn.ModuleList(Attention(d, cfg.heads, cfg.dropout) for _ in range(cfg.blocks))
            self.ffn_norms = nn.ModuleList(nn.LayerNorm(d, eps=1e-8) for _ in range(cfg.blocks))
            self.ffns = nn.ModuleList(FeedForward(d, cfg.dropout) for _ in range(cfg.blocks))
            self.last_norm = nn.LayerNorm(d, eps=1e-8)
            for name, p in self.named_parameters():  # the reference's initialisation
                if p.dim() > 1:
                    nn.init.xavier_normal_(p)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()

        def forward(self, seq):
            b, n = seq.shape
            real = seq > 0
            pos = torch.arange(n - 1, -1, -1, device=seq.device)  # 0 = the most recent item
            x = self.item_emb(seq) * self.scale + self.pos_emb(pos)
            x = self.emb_drop(x) * real.unsqueeze(-1)
            eye = torch.eye(n, dtype=torch.bool, device=seq.device)
            causal = torch.ones(n, n, dtype=torch.bool, device=seq.device).tril()
            # key j is visible to query i when j <= i and j is an item; padding sees itself only
            mask = (causal & (real.unsqueeze(1) | eye)).unsqueeze(1)
            for norm_a, attn, norm_f, ffn in zip(self.attn_norms, self.attns, self.ffn_norms, self.ffns):
                q = norm_a(x)
                x = q + attn(q, x, mask)
                x = norm_f(x)
                x = x + ffn(x)
                x = x * real.unsqueeze(-1)
            return self.last_norm(x)

        def item_weights(self):
            """(n_items, hidden) output embeddings (the input table without the padding row)."""
            return self.item_emb.weight[1:]

    class FullSoftmaxCE(torch.autograd.Function):
        """Mean cross-entropy of ``softmax(h · wᵀ)`` against ``target``, over all items, computed in
        row chunks: each chunk's logits are turned into their gradient in place (softmax minus the
        one-hot target) while they are still in cache, so the (positions × items) logits never exist
        as a whole. The gradients are computed in the forward pass and scaled in the backward.

        The softmax is torch's fused row kernel, in place: one pass per row held in cache, 4–10× faster
        on CPU than max, subtract, ``exp_``, sum and divide as separate passes (``exp_`` alone costs
        more than the whole kernel). Each position's loss is ``−log p(target)``; a probability below
        float32's smallest normal (a logit more than ≈ 87 below the row's largest) counts as that
        smallest one, which caps the reported loss at ≈ 87.3 there and leaves the gradient exact.

        With ``dtype`` (bfloat16; see ``SASRecConfig.ce_dtype``) the three products take ``h`` and
        ``w`` in that dtype and give it back (the softmax accumulates in float32); the loss and the
        gradients returned are float32."""

        @staticmethod
        def forward(ctx, h, w, target, chunk: int, dtype=None):
            n = h.shape[0]
            low = dtype is not None and dtype != h.dtype  # bf16 products, float32 gradients
            wl = w.to(dtype) if low else w
            grad_h = torch.empty_like(h)
            grad_w = torch.zeros_like(w)
            total = torch.zeros((), dtype=torch.float64)
            buf = torch.empty(min(chunk, n), w.shape[0], dtype=wl.dtype)
            tiny = torch.finfo(torch.float32).tiny
            for s in range(0, n, chunk):
                hc, tc = h[s:s + chunk], target[s:s + chunk]
                m = len(hc)
                rows = torch.arange(m)
                hl = hc.to(dtype) if low else hc
                logits = torch.mm(hl, wl.T, out=buf[:m])
                probs = torch.softmax(logits, dim=1, out=logits)
                total -= probs[rows, tc].float().clamp_min(tiny).log().sum(dtype=torch.float64)
                probs[rows, tc] -= 1.0
                if low:
                    grad_h[s:s + m] = torch.mm(probs, wl)
                    grad_w.add_(torch.mm(probs.T, hl))
                else:
                    torch.mm(probs, w, out=grad_h[s:s + m])
                    grad_w.addmm_(probs.T, hc)
            ctx.save_for_backward(grad_h / max(n, 1), grad_w / max(n, 1))
            return (total / max(n, 1)).to(h.dtype)

        @staticmethod
        def backward(ctx, grad):
            grad_h, grad_w = ctx.saved_tensors
            return grad_h * grad, grad_w * grad, None, None, None

    SASRecModule.full_softmax_ce = staticmethod(FullSoftmaxCE.apply)
    _MODULE_CLASS = SASRecModule
    return SASRecModule


# ------------------------------------------------------------------------------ helpers
def _has_bf16_dot(torch) -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX); False when torch cannot tell."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # a private torch API: absent or renamed in another release
        return False


def _ce_dtype(torch, setting: str):
    """The dtype of the loss's products for the ``ce_dtype`` setting (None = float32, as the model)."""
    if setting == "bfloat16" or (setting == "auto" and _has_bf16_dot(torch)):
        return torch.bfloat16
    return None


def _left_padded(seqs: Ragged, width: int | None = None) -> np.ndarray:
    """(n, width) int64 matrix of the rows' items + 1, left-padded with 0 (the last ``width`` items)."""
    lengths = seqs.lengths
    if width is None:
        width = int(lengths.max(initial=0))
    if (lengths > width).any():
        seqs = seqs.tail(width)
        lengths = seqs.lengths
    out = np.zeros((len(seqs), width), dtype=np.int64)
    rows = seqs.rows()
    cols = width - lengths[rows] + (np.arange(len(rows)) - seqs.indptr[rows])
    out[rows, cols] = seqs.values.astype(np.int64) + 1
    return out


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
             bucket: bool) -> list[np.ndarray]:
    """One epoch of training batches (row numbers), in random order.

    Without ``bucket``: a random permutation cut into batches of ``batch_size`` sequences. With it:
    the permutation is cut into groups of 64 batches, each group is sorted by length and cut into
    batches of about ``batch_size × mean length`` positions (so short sequences come many to a batch
    and little of a batch is padding), and the batches are shuffled.
    """
    n = len(lengths)
    order = rng.permutation(n)
    if not bucket:
        return [b for b in np.array_split(order, max(1, math.ceil(n / batch_size))) if len(b)]
    target = batch_size * max(float(lengths.mean()), 1.0) if n else 1.0
    batches: list[np.ndarray] = []
    group = 64 * batch_size
    for g in range(0, n, group):
        idx = order[g:g + group]
        idx = idx[np.argsort(lengths[idx], kind="stable")]
        before = np.cumsum(lengths[idx]) - lengths[idx]
        cuts = np.flatnonzero(np.diff((before // target).astype(np.int64))) + 1
        batches.extend(np.split(idx, cuts))
    return [batches[i] for i in rng.permutation(len(batches))]


def _drop_last(seqs: Ragged, which: np.ndarray) -> Ragged:
    """``seqs`` with the last item of the rows ``which`` (bool mask) removed."""
    keep = np.ones(len(seqs.values), dtype=bool)
    keep[seqs.indptr[1:][which] - 1] = False
    lengths = seqs.lengths - which.astype(np.int64)
    indptr = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return Ragged(indptr, seqs.values[keep])


# ------------------------------------------------------------------------------ strategy
@register
class SASRecStrategy(Strategy):
    """SASRec next-item transformer trained with full softmax cross-entropy; see the module doc.

    Attributes after ``fit``: ``model_`` (the torch module, eval mode), ``user_seqs_`` (each user's
    last ``max_len`` training items), ``popularity_`` (scores of empty queries), ``epochs_done_``,
    ``epoch_seconds_`` (mean, validation passes included), ``train_seconds_`` (each epoch's training
    pass alone), ``losses_`` (mean training loss per epoch, the last one partial when the
    time budget stopped it), ``batches_done_`` (mini-batches trained), ``stopped_by_budget_`` and,
    with early stopping, ``best_epoch_`` and ``val_hr_`` (HR@10 per epoch).
    """

    name = "sasrec"
    Config = SASRecConfig

    def unusable(self, data: ShopData) -> str | None:
        return self._needs_order(data)

    # ----------------------------------------------------------------- fit
    def _fit(self, data: ShopData) -> None:
        cfg: SASRecConfig = self.config
        torch = _torch()
        self.stopped_by_budget_ = False
        seqs = data.sequences(by="user")
        self.user_seqs_ = seqs.tail(cfg.max_len)
        self.popularity_ = self._popularity(seqs.values, data.n_items)
        rng = np.random.default_rng(cfg.seed)
        validation = None
        if cfg.validation_users > 0:
            seqs, validation = self._hold_out(seqs, rng)
        # training pairs: input = items[:-1], target = items[1:], the last max_len of each
        seqs = seqs.take(np.flatnonzero(seqs.lengths >= 2)).tail(cfg.max_len + 1)
        pairs = _left_padded(seqs, cfg.max_len + 1)
        with _threads(torch, cfg.num_threads):
            torch.manual_seed(cfg.seed)
            self.model_ = _module_class()(data.n_items, cfg)
            self._train(pairs[:, :-1], pairs[:, 1:], seqs.lengths - 1, rng, validation, torch)
        self.model_.eval()

    def _hold_out(self, seqs: Ragged, rng: np.random.Generator) -> tuple[Ragged, tuple[np.ndarray, np.ndarray]]:
        """Remove the last item of ``validation_users`` random users (with ≥ 3 items) from ``seqs``;
        returns the shortened sequences and (left-padded inputs, held-out items) for early stopping."""
        cand = np.flatnonzero(seqs.lengths >= 3)
        users = np.sort(rng.choice(cand, min(self.config.validation_users, len(cand)), replace=False))
        held = np.zeros(len(seqs), dtype=bool)
        held[users] = True
        target = seqs.last()[users].astype(np.int64)
        seqs = _drop_last(seqs, held)
        return seqs, (_left_padded(seqs.take(users), self.config.max_len), target)

    def _over_budget(self) -> bool:
        """Whether the time budget (counted from the start of :meth:`fit`) is spent."""
        budget = self.config.time_budget_seconds
        return budget is not None and self._fit_elapsed() >= budget

    def _train(self, inputs: np.ndarray, targets: np.ndarray, lengths: np.ndarray,
               rng: np.random.Generator, validation: tuple[np.ndarray, np.ndarray] | None, torch) -> None:
        """AdamW on the full-softmax loss of every position, epoch by epoch, until ``epochs``, the
        time budget (checked before every mini-batch and validation chunk, so that a long epoch or
        validation pass cannot overrun it by more than one of those), or (with validation)
        ``patience`` epochs without a better HR@10."""
        cfg: SASRecConfig = self.config
        model = self.model_
        # fused: one vectorised pass per parameter instead of a dozen (the default on CPU is a Python
        # loop of elementwise ops); the same update
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98),
                                weight_decay=cfg.weight_decay, fused=True)
        budget = cfg.time_budget_seconds
        ce_dtype = _ce_dtype(torch, cfg.ce_dtype)
        self.losses_, self.val_hr_, self.best_epoch_ = [], [], 0
        self.train_seconds_: list[float] = []
        best_hr, best_state = -1.0, None
        start = time.perf_counter()
        step = epoch = 0
        total_steps = None
        with progress.step("sasrec: training", total=cfg.epochs, unit="epoch") as bar:
            for epoch in range(1, cfg.epochs + 1):
                model.train()
                loss_sum, positions = 0.0, 0
                epoch_start = time.perf_counter()
                batches = _batches(lengths, cfg.batch_size, rng, cfg.bucket_by_length)
                total_steps = total_steps or max(1, cfg.epochs * len(batches))
                for i, batch in enumerate(batches):
                    if step and self._over_budget():  # at least one step, whatever the budget
                        self.stopped_by_budget_ = True
                        break
                    if cfg.lr_schedule == "cosine":
                        # progress through the schedule: steps, or the time budget when that ends sooner
                        done = step / total_steps
                        if budget is not None:
                            done = max(done, self._fit_elapsed() / budget)
                        for group in opt.param_groups:
                            group["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))
                    step += 1
                    width = int(lengths[batch].max())
                    y = torch.from_numpy(targets[batch, -width:])
                    h = model(torch.from_numpy(inputs[batch, -width:]))
                    keep = y > 0
                    loss = model.full_softmax_ce(h[keep], model.item_weights(), y[keep] - 1, CE_CHUNK, ce_dtype)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    n_pos = int(keep.sum())
                    loss_sum += loss.item() * n_pos
                    positions += n_pos
                    bar.advance(1.0 / len(batches))
                self.batches_done_ = step
                self.train_seconds_.append(time.perf_counter() - epoch_start)
                self.losses_.append(loss_sum / max(positions, 1))
                elapsed = time.perf_counter() - start
                msg = f"sasrec epoch {epoch}: loss {self.losses_[-1]:.4f}, {elapsed:.0f} s"
                if self.stopped_by_budget_:
                    # a partial epoch: no validation pass (the budget is spent); the best full epoch
                    # so far is kept when there is one
                    log.info("%s (stopped after %d of %d mini-batches: time budget of %.0f s)", msg, i,
                             len(batches), budget)
                    break
                bar.advance(epoch - bar.done, description=f"sasrec: training, loss {self.losses_[-1]:.3f}")
                if validation is not None:
                    hr = self._hit_rate(model, *validation, torch)
                    if hr is None:  # the budget ran out during the validation pass
                        self.stopped_by_budget_ = True
                        log.info("%s (time budget of %.0f s reached during validation)", msg, budget)
                        break
                    self.val_hr_.append(hr)
                    msg += f", validation HR@10 {hr:.4f}"
                    if hr > best_hr:
                        best_hr, self.best_epoch_ = hr, epoch
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                log.info(msg)
                if validation is not None and epoch - self.best_epoch_ >= cfg.patience:
                    break
                if self._over_budget():
                    self.stopped_by_budget_ = True
                    log.info("sasrec: time budget of %.0f s reached after %d epochs", budget, epoch)
                    break
        self.epochs_done_ = epoch
        self.epoch_seconds_ = (time.perf_counter() - start) / max(epoch, 1)
        if best_state is not None:
            model.load_state_dict(best_state)

    @staticmethod
    def _popularity(values: np.ndarray, n_items: int) -> np.ndarray:
        counts = np.bincount(values.astype(np.int64), minlength=n_items).astype(np.float32)
        return counts / max(float(counts.max(initial=0.0)), 1.0)

    def _hit_rate(self, model, inputs: np.ndarray, target: np.ndarray, torch, k: int = 10) -> float | None:
        """HR@k of the held-out items, ranking all items except each input's own; None when the time
        budget runs out before the pass is done."""
        model.eval()
        hits = 0
        with torch.inference_mode():
            for s in range(0, len(inputs), SCORE_BATCH):
                if self._over_budget():
                    return None
                x = inputs[s:s + SCORE_BATCH]
                scores = self._encode_and_score(model, x, torch)
                rows = np.repeat(np.arange(len(x)), x.shape[1])
                seen = x.ravel()
                scores[rows[seen > 0], seen[seen > 0] - 1] = -np.inf
                t = target[s:s + SCORE_BATCH]
                better = (scores > scores[np.arange(len(x)), t][:, None]).sum(axis=1)
                hits += int((better < k).sum())
        return hits / max(len(inputs), 1)

    @staticmethod
    def _encode_and_score(model, x: np.ndarray, torch) -> np.ndarray:
        """(n, n_items) scores of the last position of the left-padded input ``x`` (no empty rows)."""
        width = int((x > 0).sum(axis=1).max(initial=1))
        h = model(torch.from_numpy(np.ascontiguousarray(x[:, -max(width, 1):])))[:, -1]
        return (h @ model.item_weights().T).numpy()

    # --------------------------------------------------------------- score
    def _score(self, queries: Queries) -> np.ndarray:
        cfg: SASRecConfig = self.config
        n = len(queries)
        seq = query_sequences(queries, self.user_seqs_, cfg.max_len)
        out = np.empty((n, self.n_items_), dtype=np.float32)
        out[:] = self.popularity_
        has = np.flatnonzero(seq.lengths > 0)
        if len(has) == 0:
            return out
        torch = _torch()
        x = _left_padded(seq.take(has), cfg.max_len)
        self.model_.eval()
        with _threads(torch, cfg.num_threads), torch.inference_mode():
            for s in range(0, len(has), SCORE_BATCH):
                out[has[s:s + SCORE_BATCH]] = self._encode_and_score(self.model_, x[s:s + SCORE_BATCH], torch)
        return out

    # ----------------------------------------------------------- save/load
    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {f"w.{k}": v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}
        state.update({"user_seqs.indptr": self.user_seqs_.indptr, "user_seqs.values": self.user_seqs_.values,
                      "popularity_": self.popularity_, "epochs_done_": int(self.epochs_done_)})
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        torch = _torch()
        model = _module_class()(self.n_items_, self.config)
        weights = {k[2:]: torch.from_numpy(np.asarray(v)) for k, v in state.items() if k.startswith("w.")}
        model.load_state_dict(weights)
        model.eval()
        self.model_ = model
        self.user_seqs_ = Ragged(np.asarray(state["user_seqs.indptr"]), np.asarray(state["user_seqs.values"]))
        self.popularity_ = np.asarray(state["popularity_"], dtype=np.float32)
        self.epochs_done_ = int(state["epochs_done_"])
