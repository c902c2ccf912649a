"""RecBole's SASRec on Amazon Beauty, per-epoch training time (run in RecBole's own virtualenv).

    /tmp/recbole-venv/bin/python benchmarks/recbole_sasrec.py --epochs 3 [--work /tmp/recbole-beauty]

This file imports neither shoprec nor anything of this repository: ``benchmarks/sasrec_speed.py``
runs it as a subprocess with the interpreter of a separate virtualenv holding RecBole (RecBole pins
old numpy/scipy/ray releases that shoprec's environment does not want). It

1. converts ``Beauty.txt`` (one line per user ``user item item …`` in time order) to RecBole's atomic
   ``beauty.inter`` (``user_id:token item_id:token timestamp:float``, the timestamp being the position
   in the user's sequence) under ``--work`` (never into the repository);
2. configures RecBole's SASRec like shoprec's defaults (2 blocks, 2 heads, hidden 64, feed-forward
   width 64 with ReLU, dropout 0.5, LayerNorm ε 1e-8, the last 50 items, batch 128, lr 2e-3, full
   softmax cross-entropy over all items, no negative sampling) on RecBole's leave-one-out split
   (``LS: valid_and_test``, time order), which is the same split as shoprec's;
3. trains ``--epochs`` epochs with ``Trainer._train_epoch`` (RecBole's own epoch, without the
   evaluation pass), timing each (wall and this process's CPU seconds), and prints one JSON line
   ``{"epoch_seconds": [...], "epoch_cpu_seconds": [...], ...}``. With ``--batches N`` each epoch
   stops after its first N mini-batches (the same steps as ``_train_epoch``: zero_grad, loss,
   backward, step) and its times are scaled to the whole epoch; RecBole's batches are all alike
   (128 samples, each padded to 50 items, in random order), so the scaling is a fair estimate.

RecBole's epoch is one pass over every (prefix → next item) pair of the training sequences, each
pair a separate sample of up to 50 items; shoprec's epoch is one pass over the training sequences
with a loss at every position: the same prediction targets, so per-epoch times compare like for like.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-beauty" / "Beauty.txt"


def convert(src: Path, work: Path) -> Path:
    """Write ``work/beauty/beauty.inter`` from ``Beauty.txt`` (once); returns the data folder."""
    out = work / "beauty" / "beauty.inter"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with open(src) as f, open(tmp, "w") as g:
            g.write("user_id:token\titem_id:token\ttimestamp:float\n")
            for line in f:
                user, *items = line.split()
                for t, item in enumerate(items):
                    g.write(f"{user}\t{item}\t{t}\n")
        tmp.replace(out)
    return work


def config_dict(work: Path, args: argparse.Namespace) -> dict:
    return {
        "data_path": str(work), "checkpoint_dir": str(work / "saved"), "save_dataset": False,
        "save_dataloaders": False, "show_progress": False, "state": "WARNING",
        "device": "cpu", "use_gpu": False, "worker": 0, "seed": 0, "reproducibility": True,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 64,
        "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "hidden_act": "relu",
        "layer_norm_eps": 1e-8, "loss_type": "CE", "train_neg_sample_args": None,
        "train_batch_size": args.batch_size, "learning_rate": args.lr, "epochs": args.epochs,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "eval_batch_size": 4096,
    }


def partial_epoch(trainer, train_data, n: int) -> tuple[float, int]:
    """The first ``n`` mini-batches of an epoch, as ``Trainer._train_epoch`` trains them."""
    trainer.model.train()
    total, done = 0.0, 0
    for interaction in train_data:
        if done == n:
            break
        interaction = interaction.to(trainer.device)
        trainer.optimizer.zero_grad()
        loss = trainer.model.calculate_loss(interaction)
        loss.backward()
        trainer.optimizer.step()
        total += loss.item()
        done += 1
    return total, done


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=0,
                    help="train only the first N mini-batches of each epoch and scale the times (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--data", type=Path, default=DATA, help="Beauty.txt")
    ap.add_argument("--work", type=Path, default=Path("/tmp/recbole-beauty"),
                    help="folder for the converted .inter file and RecBole's logs (outside the repo)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as shoprec does: the cores are shared
    work = convert(args.data, args.work)
    os.chdir(work)  # RecBole writes log/ and log_tensorboard/ into the working folder

    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    t0 = time.perf_counter()
    config = Config(model="SASRec", dataset="beauty", config_dict=config_dict(work, args))
    config["seed"] = args.seed
    init_seed(config["seed"], config["reproducibility"])
    torch.set_num_threads(args.threads)
    dataset = create_dataset(config)
    train_data, _valid, _test = data_preparation(config, dataset)
    model = SASRec(config, train_data._dataset).to("cpu")
    trainer = Trainer(config, model)
    prep = time.perf_counter() - t0
    seconds, cpu, losses = [], [], []
    n_batches = len(train_data)
    for epoch in range(args.epochs):
        t, c = time.perf_counter(), time.process_time()
        if args.batches and args.batches < n_batches:
            loss, done = partial_epoch(trainer, train_data, args.batches)
        else:
            loss, done = trainer._train_epoch(train_data, epoch), n_batches
        scale = n_batches / done
        seconds.append((time.perf_counter() - t) * scale)
        cpu.append((time.process_time() - c) * scale)
        losses.append(float(loss) / max(done, 1))
        print(f"recbole epoch {epoch + 1}: {seconds[-1]:.1f} s ({done} of {n_batches} batches), "
              f"mean batch loss {losses[-1]:.4f}", file=sys.stderr, flush=True)
    import recbole

    print(json.dumps({
        "epoch_seconds": seconds, "epoch_cpu_seconds": cpu, "batches_timed": args.batches or n_batches,
        "mean_batch_loss": losses, "prepare_seconds": prep,
        "train_samples": len(train_data.dataset) if hasattr(train_data, "dataset") else None,
        "batches_per_epoch": len(train_data), "n_items": int(dataset.item_num - 1),
        "n_users": int(dataset.user_num - 1), "threads": torch.get_num_threads(),
        "recbole": recbole.__version__, "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
