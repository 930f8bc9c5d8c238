"""One reader training step on one device, data-parallel over N devices, or over several processes
(`jax.distributed`), and checkpoints across device counts; run in subprocesses by test_data_parallel.py (the device
count is fixed when JAX starts).

    python tests/training/data_parallel_run.py step OUT.pkl                                  # one device
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python ... step OUT.pkl --devices 4 [--save WORKDIR]
    python ... restore OUT.pkl --workdir WORKDIR [--devices 2]                                 # another count
    python ... step OUT.pkl --coordinator 127.0.0.1:PORT --num-processes 2 --process-id I      # one per process

The model (toy EL reader on the toy tokenizer, seeded) and the global batch (8 toy windows, L = 256) are the same
in every process; dropout is on (JAX's partitionable threefry draws the same masks however the batch is split).
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from relik_jax.engine import distributed, sharding
from relik_jax.engine.buckets import Buckets
from relik_jax.reader.inputs import TokenizerInfo, span_symbols
from relik_jax.reader.losses import loss_fn
from relik_jax.reader.model import ReaderConfig, build_reader
from relik_jax.training.reader_batching import collate, epoch_examples
from relik_jax.training.reader_data import load_splits
from relik_jax.training.reader_model import TINY_BACKBONES, add_symbols
from relik_jax.training.trainer import Trainer, make_optimizer

ROWS, LENGTH = 8, 256


def setup(mesh) -> tuple[Trainer, dict]:
    from configs.default import get_config
    from relik_jax.data import toy as toy_data
    from relik_jax.models.backbones import backbone_config_from_dict

    c = get_config()
    c.update(dict(toy_train=24, toy_eval=6, seq_lens=(LENGTH,), verbose=False))
    tok = toy_data.toy_tokenizer()
    cfg = ReaderConfig(architecture="RelikReaderSpanModel", additional_special_symbols=c.candidates_per_forward + 1,
                       linears_hidden_size=32)
    add_symbols(tok, span_symbols(c.candidates_per_forward))
    bb = dict(TINY_BACKBONES["tiny-bert"], vocab_size=tok.get_vocab_size())
    model = build_reader(cfg, backbone_config_from_dict(bb), rngs=nnx.Rngs(0))
    info = TokenizerInfo.from_tokenizer(tok)
    exs = epoch_examples(load_splits(c)["train"][:ROWS], cfg, c, tok, info, None)[:ROWS]
    batch = collate(exs, LENGTH, ROWS, Buckets(seq_lens=(LENGTH,)), info.pad_id, span=True)
    tx = make_optimizer(nnx.state(model, nnx.Param), learning_rate=1e-3, total_steps=100, warmup_steps=0)
    return Trainer(model, tx, loss_fn, mesh=mesh), batch


def params_of(trainer: Trainer) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_leaves_with_path(trainer.params)
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["step", "restore"])
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=None)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--save", help="workdir to checkpoint into after the steps")
    parser.add_argument("--workdir", help="restore: the checkpoint's workdir")
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    args = parser.parse_args()
    shard = distributed.ProcessShard()
    mesh = None if args.devices is None else sharding.data_mesh(args.devices)
    if args.coordinator:
        shard = distributed.initialize(args.coordinator, args.num_processes, args.process_id)
        mesh = sharding.data_mesh()  # every process's devices
    trainer, batch = setup(mesh)
    out: dict = {"devices": jax.device_count(), "processes": jax.process_count(), "before": params_of(trainer)}
    if args.action == "restore":
        assert trainer.restore_latest(args.workdir)
        out.update(step=trainer.step, after=params_of(trainer),
                   placed=sorted({len(x.sharding.device_set) for x in jax.tree.leaves(trainer.params)}))
    else:
        local = sharding.process_rows(batch, shard.index, shard.count) if shard.count > 1 else batch
        out["metrics"] = [{k: float(np.asarray(v)) for k, v in trainer.train_step(local).items()}
                          for _ in range(args.steps)]
        out["after"] = params_of(trainer)
        if args.save:
            trainer.save(args.save)
    if shard.index == 0:
        with Path(args.out).open("wb") as f:
            pickle.dump(out, f)


if __name__ == "__main__":
    main()
