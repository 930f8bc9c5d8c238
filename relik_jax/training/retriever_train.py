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
from collections.abc import Iterator, Sequence
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
from relik_jax.evaluation.retrieval import evaluate_retrieval
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
from relik_jax.training import trainer as training

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


# -------------------- optimizer


def make_optimizer(params: Any, config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """RAdamW + linear schedule (reference `configure_optimizers`): lr `config.lr`, the pooling
    `layer_norm_layer` at `config.layer_norm_lr`, no weight decay on biases/LayerNorms (the reference also
    decays `layer_norm_layer`; at lr 1e-4 x wd 0.01 that is negligible)."""
    ratio = config.layer_norm_lr / config.lr
    return training.make_optimizer(
        params,
        learning_rate=config.lr,
        total_steps=config.max_steps,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        clip_norm=config.get("grad_clip", 0.0) or None,
        optimizer="radamw",
        lr_multipliers=lambda key: ratio if "layer_norm_layer" in key else 1.0,
    )


# -------------------- trainer


class RetrieverTrainer:
    """Holds the model (split into graphdef / params / rest), optimizer state and the training data."""

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
        model.train()  # dropout on in the training graph
        self.graphdef, self.params, self.rest = nnx.split(model, nnx.Param, ...)
        model.eval()
        self.tx = make_optimizer(self.params, config)
        self.opt_state = self.tx.init(self.params)
        self.step = 0
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
        self._step_fn = jax.jit(self._train_step, donate_argnums=(0, 1, 2))

    def _train_step(
        self,
        params,
        opt_state,
        rest,
        q_ids,
        q_mask,
        q_types,
        p_ids,
        p_mask,
        p_types,
        labels,
        q_valid,
        p_valid,
    ):
        # Merge at the jit level and differentiate with nnx.value_and_grad: dropout's RNG counters are then
        # updated in the trace that owns them (a plain jax.grad over `rest` would mutate them from inside).
        model = nnx.merge(self.graphdef, params, rest)

        def loss_fn(model: GoldenRetrieverModel) -> jax.Array:
            q = model(q_ids, q_mask, q_types)
            p = model(p_ids, p_mask, p_types)
            return multi_label_nce_loss(jnp.einsum("qh,ph->qp", q, p), labels, p_valid, q_valid)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, nnx.state(model, nnx.Not(nnx.Param)), loss

    def _arrays(self, batch: Batch) -> tuple[np.ndarray, ...]:
        qb, pb = self.config.question_batch_size, self.config.passage_batch_size
        q = pad_encodings([self.question_tokens[i] for i in batch.questions], qb, self.buckets)
        p = pad_encodings([self.passage_tokens[r] for r in batch.passages], pb, self.buckets)
        labels = np.zeros((qb, pb), np.int32)
        labels[: len(batch.questions), : len(batch.passages)] = batch.labels
        q_valid = np.arange(qb) < len(batch.questions)
        p_valid = np.arange(pb) < len(batch.passages)
        return (*q, *p, labels, q_valid, p_valid)

    def train_step(self, batch: Batch) -> float:
        arrays = [jnp.asarray(a) for a in self._arrays(batch)]
        self.params, self.opt_state, self.rest, loss = self._step_fn(self.params, self.opt_state, self.rest, *arrays)
        self.step += 1
        return loss

    def model(self) -> GoldenRetrieverModel:
        """Current weights as an eval-mode module."""
        model = nnx.merge(self.graphdef, self.params, self.rest)
        model.eval()
        return model

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
        index = index or self.build_index()
        topics = [s.doc_topic for s in samples] if self.config.use_topics else None
        queries = self.retriever.encode_questions([s.question for s in samples], topics, progress="Evaluating")
        _, rows = index.search(queries, max(ks))
        return evaluate_retrieval([list(r) for r in rows.tolist()], [s.positives for s in samples], ks)

    # -------------------- checkpoints

    def save_checkpoint(self, manager: Any) -> None:
        import orbax.checkpoint as ocp

        state = {"params": nnx.to_pure_dict(self.params), "opt_state": self.opt_state}
        manager.save(self.step, args=ocp.args.StandardSave(state))

    def restore_checkpoint(self, manager: Any) -> bool:
        import orbax.checkpoint as ocp

        step = manager.latest_step()
        if step is None:
            return False
        template = {"params": nnx.to_pure_dict(self.params), "opt_state": self.opt_state}
        restored = manager.restore(step, args=ocp.args.StandardRestore(template))
        nnx.replace_by_pure_dict(self.params, restored["params"])
        self.opt_state = restored["opt_state"]
        self.step = int(step)
        return True

    def fit(self, log: Any = print, checkpoint_manager: Any = None) -> list[dict[str, float]]:
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
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
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
                if checkpoint_manager is not None and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint(checkpoint_manager)
                if self.step >= cfg.max_steps:
                    break
            epoch += 1
        if checkpoint_manager is not None:
            self.save_checkpoint(checkpoint_manager)
            checkpoint_manager.wait_until_finished()
        return history


# -------------------- data for the configs


def train_retriever(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Fine-tune a retriever per `config` (see configs/retriever_*.py); writes into `workdir`:
    `metrics.json` (recall@K before/after per eval split), `encoder/` (reference-loadable encoder folder),
    `index/` (reference-format index of the KB), `checkpoints/` (orbax)."""
    import orbax.checkpoint as ocp

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
    manager = ocp.CheckpointManager(
        workdir / "checkpoints", options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
    )
    if trainer.restore_checkpoint(manager):
        console.print(f"resumed from step {trainer.step}")
    t0 = time.perf_counter()
    metrics["history"] = trainer.fit(log=console.print, checkpoint_manager=manager)
    metrics["train_s"] = time.perf_counter() - t0
    index = trainer.build_index()
    metrics["after"] = {name: trainer.evaluate(s, ks, index) for name, s in evals.items()}
    console.print({"after": metrics["after"]})
    save_encoder(trainer.model(), retriever.config, workdir / "encoder", tokenizer_folder=encoder_folder)
    index.to_reference(workdir / "index")
    (workdir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return metrics


def steps_per_epoch(num_samples: int, question_batch_size: int) -> int:
    return math.ceil(num_samples / question_batch_size)
