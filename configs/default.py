"""The reader trainer's default config: every option of `relik_jax.training.reader_train.train_reader` with its
default (toy EL on a random tiny BERT). The other reader configs import it and override fields:

    python train.py --config configs/default.py --workdir runs/default
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """Every reader-training option with its default."""
    c = ml_collections.ConfigDict()
    c.task = "el"  # el | re | cie
    c.dataset = "toy"  # toy | conll04 | nyt | rebel | aida | windows
    # model: init random (named tiny backbone or encoder folder's config) | pretrained (HF encoder folder as the
    # backbone, fresh heads) | reader (continue from a reference / our reader folder given as `backbone`)
    c.init = "random"
    c.backbone = "tiny-bert"
    c.linears_hidden_size = 512
    # fresh heads: 'reference' = torch.nn.Linear's default U(+-1/sqrt(fan_in)) as the reference's heads keep;
    # 'normal' = N(0, 0.02) weights, zero biases (HF-style)
    c.head_init = "reference"
    c.dropout = -1.0  # < 0: the backbone's and heads' own dropout rates; >= 0: every dropout at this rate
    c.candidates_per_forward = 100  # EL symbols [E-0]..[E-(n-1)] (+ NME)
    c.max_relations = 24  # RE symbols [R-i] and relation candidates per row
    c.entity_types = 0  # cIE: number of entity-type candidates (symbols NME + [E-i]); 0 = plain RE
    c.num_candidates = 25  # toy / rebel: entity candidates per window (gold + random others); aida: retriever top-k
    c.use_nme = True
    c.threshold = 0.5
    c.max_length = 1024
    # data
    c.window_size = 32
    c.window_stride = 16
    c.use_dataset_words = False
    # aida: candidates from a retriever (encoder folder; index folder or "" = index the closed AIDA KB here)
    c.retriever = ""
    c.retriever_index = ""
    c.use_doc_topics = True
    c.candidates_cache = ""  # folder for the windows with candidates (written once, then read back)
    c.toy_train = 400
    c.toy_eval = 60
    c.max_train_windows = 0
    c.max_dev_windows = 0
    c.max_test_windows = 0
    c.skip_empty = False
    c.data_format = "jsonl"  # jsonl: parse the original files | tfds: prepared array_record (relik_jax.data.tfds)
    c.tfds_data_dir = ""  # tfds: prepared datasets' root ("" = ~/.cache/relik-jax/tfds; prepared there when missing)
    # augmentation (reference defaults: EL shuffle 0.5 + drop gold 0.05; RE flip 1.0)
    c.shuffle_candidates = 0.5
    c.random_drop_gold_candidates = 0.05
    c.flip_candidates = 0.0
    # optimisation (paper Table 4 style)
    c.learning_rate = 1e-5
    c.layer_lr_decay = 0.9
    c.head_lr_multiplier = 1.0  # > 1: heads learn faster than the backbone (not in the reference)
    c.weight_decay = 0.01
    c.grad_clip = 1.0
    c.num_steps = 50_000
    c.warmup_steps = 5_000
    c.token_batch_size = 2048
    c.eval_token_batch_size = 8192
    c.max_rows = 32
    c.train_min_mentions = 16  # training S = M floor (one train-step shape per L bucket)
    c.train_pad_multiple = 0  # > 0: pad a batch to its longest row rounded up to this, not to its L bucket
    c.seq_lens = (64, 128, 256, 512, 768, 1024)
    # loop
    c.devices = 0  # data-parallel training and evaluation: 0 = one device, N = the first N local devices, -1 = all
    c.seed = 0
    c.prefetch = 2  # training batches prepared ahead in a background thread (0: none)
    c.log_every = 50
    c.eval_every = 1000
    c.checkpoint_every = 1000
    c.select_metric = "f1"
    c.tune_threshold = False  # RE / cIE: pick the dev-optimal relation threshold before testing (reference
    # predict_re.py --compute-threshold); stored in the best reader's config
    c.final_test = True  # evaluate the best model on test at the end (results.json, test_predictions.jsonl)
    c.verbose = True
    return c
