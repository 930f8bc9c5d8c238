"""Retriever training (reference `relik retriever train`, paper §3.1 / Table 3): multi-label NCE with in-batch
negatives and mined hard negatives, RAdamW with linear decay, orbax checkpoints.

Batches (reference `InBatchNegativesDataset`): shuffled questions are added to a batch until it holds
`question_batch_size` questions or its passage pool (gold passages of its questions + their mined hard
negatives, de-duplicated) would exceed `passage_batch_size`. Every pool passage that is gold for question b is
a positive of b, every other one a negative (so other questions' gold passages are in-batch negatives).

Hard negatives (reference `NegativeAugmentationCallback`): every `mine_every` steps (0 → at each epoch start
after the first) the KB is re-encoded with the current weights, each training question retrieves its top
`mine_top_k`, and with probability `hard_negative_probability` the sample gets the first `max_hard_negatives`
non-gold passages (replacing the previous ones).

Optimizer (reference `configure_optimizers`): RAdam with decoupled weight decay; `layer_norm_layer` at lr 1e-4
(wd 0.01), biases and LayerNorms without decay, linear decay to 0 after `warmup_steps`.

Shapes in the jitted step: questions [Qb, Lq], passages [Pb, Lp] (length buckets), labels [Qb, Pb].
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from rich.console import Console

from relik_jax.data.retrieval import RetrievalSample, aida_kb_and_samples, relation_kb_and_samples
from relik_jax.engine.host_memory import reuse_freed_memory
from relik_jax.evaluation.retrieval import retrieval_metrics
from relik_jax.retriever.encoder import (
    LENGTH_BUCKETS,
    GoldenRetrieverModel,
    Retriever,
    pad_encodings,
    resolve_encoder,
    save_encoder,
)
from relik_jax.retriever.index import Document, DocumentIndex, passage_text
from relik_jax.retriever.loss import multi_label_nce_loss
from relik_jax.training.trainer import Trainer, itstime, make_optimizer

# -------------------- batching


@dataclasses.dataclass
class Batch:
    questions: list[int]  # sample indices
    passages: list[int]  # KB rows (the pool)
    labels: np.ndarray  # [len(questions), len(passages)] int


def make_batches(
    samples: Sequence[RetrievalSample],
    hard_negatives: dict[int, list[int]],
    question_batch_size: int,
    passage_batch_size: int,
    rng: np.random.Generator,
) -> Iterator[Batch]:
    """One epoch of in-batch-negative batches (see module docstring)."""
    order = rng.permutation(len(samples))

    def close(qs: list[int], pool: list[int]) -> Batch:
        col = {row: j for j, row in enumerate(pool)}
        labels = np.zeros((len(qs), len(pool)), np.int32)
        for i, q in enumerate(qs):
            for row in samples[q].positives:
                labels[i, col[row]] = 1
        return Batch(qs, pool, labels)

    qs: list[int] = []
    pool: list[int] = []
    seen: set[int] = set()
    for q in order:
        wanted = list(dict.fromkeys(samples[q].positives + hard_negatives.get(q, [])))
        new = [r for r in wanted if r not in seen]
        if qs and (len(qs) == question_batch_size or len(pool) + len(new) > passage_batch_size):
            yield close(qs, pool)
            qs, pool, seen = [], [], set()
            new = wanted
        # A single sample larger than the pool keeps its positives first, then as many negatives as fit.
        new = new[:passage_batch_size]
        qs.append(int(q))
        pool.extend(new)
        seen.update(new)
    if qs:
        yield close(qs, pool)


# -------------------- optimizer, loss


def retriever_optimizer(config: ml_collections.ConfigDict, model: GoldenRetrieverModel
                        ) -> optax.GradientTransformation:
    """RAdamW + linear schedule (reference `configure_optimizers`): lr `config.lr`, the pooling
    `layer_norm_layer` at `config.layer_norm_lr`, no weight decay on biases/LayerNorms (the reference also
    decays `layer_norm_layer`; at lr 1e-4 x wd 0.01 that is negligible)."""
    ratio = config.layer_norm_lr / config.lr
    return make_optimizer(
        nnx.state(model, nnx.Param),
        learning_rate=config.lr,
        total_steps=config.max_steps,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        clip_norm=config.get("grad_clip", 0.0) or None,
        optimizer="radamw",
        lr_multipliers=lambda key: ratio if "layer_norm_layer" in key else 1.0,
    )


def retrieval_loss(model: GoldenRetrieverModel, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict]:
    """Multi-label NCE of the questions against the batch's passage pool (padding rows / columns masked)."""
    q = model(batch["q_ids"], batch["q_mask"], batch["q_types"])
    p = model(batch["p_ids"], batch["p_mask"], batch["p_types"])
    scores = jnp.einsum("qh,ph->qp", q, p)
    return multi_label_nce_loss(scores, batch["labels"], batch["p_valid"], batch["q_valid"]), {}


# -------------------- trainer


class RetrieverTrainer:
    """The retriever's training state: a `Trainer` (jitted step, optimizer, checkpoints) over the encoder, the KB and
    training questions (tokenized once), and the mined hard negatives."""

    def __init__(
        self,
        retriever: Retriever,
        kb: Sequence[Document],
        train: Sequence[RetrievalSample],
        config: ml_collections.ConfigDict,
        metadata_fields: Sequence[str] = (),
        separator: str | None = None,
    ):
        self.retriever = retriever
        self.kb = list(kb)
        self.train = list(train)
        self.config = config
        self.metadata_fields, self.separator = list(metadata_fields), separator
        self.rng = np.random.default_rng(config.seed)
        model = retriever.encoder
        self.trainer = Trainer(model, retriever_optimizer(config, model), retrieval_loss)
        self.hard_negatives: dict[int, list[int]] = {}
        self.buckets = LENGTH_BUCKETS
        lq, lp = config.max_question_length, config.max_passage_length
        self.question_tokens = retriever.tokenize(
            [s.question for s in self.train],
            [s.doc_topic or "" for s in self.train] if config.use_topics else None,
            lq,
        )
        passages = [passage_text(d, metadata_fields, separator) for d in self.kb]
        self.passage_tokens = retriever.tokenize(passages, None, lp)

    @property
    def step(self) -> int:
        return self.trainer.step

    def arrays(self, batch: Batch) -> dict[str, np.ndarray]:
        """A batch padded to the configured question / passage counts and length buckets (the jitted step's input)."""
        qb, pb = self.config.question_batch_size, self.config.passage_batch_size
        q_ids, q_mask, q_types = pad_encodings([self.question_tokens[i] for i in batch.questions], qb, self.buckets)
        p_ids, p_mask, p_types = pad_encodings([self.passage_tokens[r] for r in batch.passages], pb, self.buckets)
        labels = np.zeros((qb, pb), np.int32)
        labels[: len(batch.questions), : len(batch.passages)] = batch.labels
        return {"q_ids": q_ids, "q_mask": q_mask, "q_types": q_types, "p_ids": p_ids, "p_mask": p_mask,
                "p_types": p_types, "labels": labels, "q_valid": np.arange(qb) < len(batch.questions),
                "p_valid": np.arange(pb) < len(batch.passages)}

    def train_step(self, batch: Batch) -> jax.Array:
        """One optimizer step on `batch`; returns its loss (on device)."""
        return self.trainer.train_step(self.arrays(batch))["loss"]

    def model(self) -> GoldenRetrieverModel:
        """Current weights as an eval-mode module."""
        return self.trainer.model()

    def restore_latest(self, workdir: str | Path) -> bool:
        """Resume from the newest checkpoint in `workdir`, if any (weights, optimizer state, step)."""
        return self.trainer.restore_latest(workdir)

    def sync_retriever(self) -> Retriever:
        self.retriever.update_encoder(self.model())
        return self.retriever

    def build_index(self) -> DocumentIndex:
        return self.sync_retriever().build_index(self.kb, self.metadata_fields, self.separator, progress="Encoding KB")

    def mine_hard_negatives(self) -> dict[str, float]:
        """Re-encode the KB, retrieve for every training question, keep the first non-gold passages."""
        index = self.build_index()
        cfg = self.config
        topics = [s.doc_topic for s in self.train] if cfg.use_topics else None
        queries = self.retriever.encode_questions(
            [s.question for s in self.train], topics, progress="Mining hard negatives"
        )
        _, rows = index.search(queries, cfg.mine_top_k)
        self.hard_negatives = {}
        for i, (sample, top) in enumerate(zip(self.train, rows, strict=True)):
            if self.rng.random() < 1 - cfg.hard_negative_probability:
                continue
            gold = set(sample.positives)
            self.hard_negatives[i] = [int(r) for r in top if r not in gold][: cfg.max_hard_negatives]
        return {"mined_samples": len(self.hard_negatives)}

    def evaluate(
        self, samples: Sequence[RetrievalSample], ks: Sequence[int], index: DocumentIndex | None = None
    ) -> dict[str, float]:
        """Recall@K of the current weights on `samples` (over `index`, else a fresh index of the KB)."""
        index = index or self.build_index()
        return retrieval_metrics(self.retriever, index, samples, ks, use_topics=bool(self.config.use_topics))

    def fit(self, log: Callable[..., None] = print, workdir: str | Path | None = None) -> list[dict[str, float]]:
        """Train to `config.max_steps`; with `workdir`, orbax checkpoints every `checkpoint_every` steps and at the
        end (`Trainer.save`). Returns the logged rows."""
        cfg = self.config
        history = []
        epoch = 0
        mine_every = int(cfg.mine_every)
        start = time.perf_counter()
        while self.step < cfg.max_steps:
            if mine_every == 0 and epoch > 0 and cfg.max_hard_negatives > 0:
                log(self.mine_hard_negatives())
            for batch in make_batches(
                self.train, self.hard_negatives, cfg.question_batch_size, cfg.passage_batch_size, self.rng
            ):
                if (
                    mine_every
                    and self.step % mine_every == 0
                    and cfg.max_hard_negatives > 0
                    and (self.step > 0 or cfg.mine_at_start)
                ):
                    log(self.mine_hard_negatives())
                loss = float(self.train_step(batch))
                if itstime(self.step, cfg.log_every, cfg.max_steps):
                    row = {
                        "step": self.step,
                        "epoch": epoch,
                        "loss": loss,
                        "questions": len(batch.questions),
                        "passages": len(batch.passages),
                        "elapsed_s": round(time.perf_counter() - start, 1),
                    }
                    history.append(row)
                    log(row)
                if workdir is not None and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.trainer.save(workdir)
                if self.step >= cfg.max_steps:
                    break
            epoch += 1
        if workdir is not None:
            self.trainer.save(workdir)
        return history


# -------------------- data for the configs


def train_retriever(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Fine-tune a retriever per `config` (see configs/retriever_*.py); writes into `workdir`:
    `metrics.json` (recall@K before/after per eval split), `encoder/` (reference-loadable encoder folder),
    `index/` (reference-format index of the KB), `checkpoints/` (orbax, resumable)."""
    reuse_freed_memory()  # before JAX's CPU backend starts (engine/host_memory.py)
    console = Console()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if config.dataset == "aida":
        kb, splits = aida_kb_and_samples(config)
    else:
        kb, splits = relation_kb_and_samples(config)
    train = splits["train"]
    if config.get("max_train_samples"):
        keep = np.random.default_rng(config.seed).permutation(len(train))[: config.max_train_samples]
        train = [train[i] for i in sorted(keep)]
    evals = {name: splits[name] for name in config.eval_splits}
    if config.get("max_eval_samples"):
        evals = {k: v[: config.max_eval_samples] for k, v in evals.items()}
    console.print(
        f"KB {len(kb)} passages; train {len(train)} samples; " + ", ".join(f"{k} {len(v)}" for k, v in evals.items())
    )

    encoder_folder = resolve_encoder(config.encoder)
    retriever = Retriever.from_pretrained(
        encoder_folder,
        batch_size=config.eval_batch_size,
        passage_batch_size=config.eval_batch_size,
        question_max_length=config.max_question_length,
        passage_max_length=config.max_passage_length,
    )
    trainer = RetrieverTrainer(retriever, kb, train, config, config.metadata_fields, config.separator)
    ks = tuple(config.eval_ks)
    metrics: dict[str, Any] = {"config": config.to_dict(), "kb_size": len(kb), "train_samples": len(train)}
    t0 = time.perf_counter()
    if config.eval_before:
        index = trainer.build_index()
        metrics["before"] = {name: trainer.evaluate(s, ks, index) for name, s in evals.items()}
        console.print({"before": metrics["before"]})
    metrics["eval_before_s"] = time.perf_counter() - t0
    if trainer.restore_latest(workdir):
        console.print(f"resumed from step {trainer.step}")
    t0 = time.perf_counter()
    metrics["history"] = trainer.fit(log=console.print, workdir=workdir)
    metrics["train_s"] = time.perf_counter() - t0
    index = trainer.build_index()
    metrics["after"] = {name: trainer.evaluate(s, ks, index) for name, s in evals.items()}
    console.print({"after": metrics["after"]})
    save_encoder(trainer.model(), retriever.config, workdir / "encoder", tokenizer_folder=encoder_folder)
    index.to_reference(workdir / "index")
    (workdir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return metrics


def steps_per_epoch(num_samples: int, question_batch_size: int) -> int:
    """Batches in one epoch when every batch is full of questions (the passage cap can make more)."""
    return math.ceil(num_samples / question_batch_size)
