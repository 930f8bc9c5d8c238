"""FLOP formulas against counts done by hand for tiny configs (every product written out below)."""

from relik_jax.engine import flops
from relik_jax.models.bert import BertConfig
from relik_jax.models.deberta import DebertaV2Config

# One layer, H = 4, FFN = 8, batch 1, length 3 (2 heads: the head split does not change the count).
#   Q, K, V, output projections: 4 products [3, 4] x [4, 4]    = 4 * 2*3*4*4 = 384
#   scores: 2 heads x [3, 2] x [2, 3]                            = 2 * 2*3*3*2 = 72
#   context: 2 heads x [3, 3] x [3, 2]                           = 72
#   FFN: [3, 4] x [4, 8] and [3, 8] x [8, 4]                     = 192 + 192 = 384
BERT_HAND = 384 + 72 + 72 + 384  # 912
# DeBERTa, same shape: i - j takes the 5 values -2..2, so P = 5 relative rows are used.
#   key_proj and query_proj of the 5 rows: 2 * 2*5*4*4          = 320
#   c2p: 2 heads x [3, 2] x [2, 5], p2c the same                 = 2 * (2 * 2*3*5*2) = 240
DEBERTA_HAND = BERT_HAND + 320 + 240  # 1472


def test_bert_layer_matches_hand_count():
    cfg = BertConfig(vocab_size=10, hidden_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    assert flops.encoder_flops(flops.EncoderShape.of(cfg), batch=1, length=3) == BERT_HAND
    cfg2 = BertConfig(vocab_size=10, hidden_size=4, num_hidden_layers=3, num_attention_heads=2, intermediate_size=8)
    # Layers and batch rows scale the count linearly.
    assert flops.encoder_flops(flops.EncoderShape.of(cfg2), batch=2, length=3) == 6 * BERT_HAND


def test_deberta_layer_matches_hand_count():
    cfg = DebertaV2Config(vocab_size=10, hidden_size=4, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=8)
    shape = flops.EncoderShape.of(cfg)
    assert shape.deberta
    assert flops.deberta_relative_rows(3) == 5
    assert flops.encoder_flops(shape, batch=1, length=3) == DEBERTA_HAND


def test_deberta_relative_rows_saturate_with_log_buckets():
    # Up to |i - j| = 128 buckets are exact (2L - 1 rows); beyond, log buckets cap the rows at 2 * 256.
    assert flops.deberta_relative_rows(100) == 199
    assert flops.deberta_relative_rows(129) == 257
    rows_512 = flops.deberta_relative_rows(512)
    assert 257 < rows_512 <= 512
    assert flops.deberta_relative_rows(1024) <= 512


def test_span_head_hand_count():
    # H = 4, D = 2, one row of 3 tokens, 1 mention, 2 candidate columns.
    #   start MLP 4 -> 2 -> 2 on 3 tokens: 2*3*4*2 + 2*3*2*2          = 48 + 24 = 72
    #   end: W_a on 3 tokens 2*3*4*4 = 96; W_b on 1 start 2*1*4*4 = 32; dense_1 on 3 positions 2*3*4*1 = 24 -> 152
    #   ED projectors (2 of them) 4 -> 2 -> 2 on 1 + 2 vectors: 2 * (2*3*4*2 + 2*3*2*2) = 144
    #   ED logits [1, 4] x [4, 2]: 2*1*2*4                             = 16
    assert flops.span_head_flops(4, rows=1, length=3, mentions=1, candidates=2, d=2) == 72 + 152 + 144 + 16


def test_re_head_hand_count():
    # H = 4, D = 2, one row of 3 tokens, S = 2 entities (2 starts), R = 1 relation, no types.
    #   start MLP: 72 (as above)
    #   end (binary): 96 + 2*2*4*4 = 64, dense_1 [6 (start, pos) pairs] x 4 -> 2: 2*6*4*2 = 96  -> 256
    #   re_projector 8 -> 4 -> 4 on 2 entities: 2*2*8*4 + 2*2*4*4      = 128 + 64 = 192
    #   re_relation_projector 4 -> 2 -> 2 on 1 relation: 16 + 8        = 24
    #   Hadamard on 2*2*1 pairs x D = 2: 2*4*2                          = 16
    #   re_classifier 2 -> 2 -> 2 on 4 pairs: 2*4*2*2 * 2              = 64
    assert flops.re_head_flops(4, rows=1, length=3, entities=2, relations=1, d=2) == 72 + 256 + 192 + 24 + 16 + 64


def test_search_flops():
    assert flops.search_flops(queries=2, passages=5, dim=3) == 60


def test_encoder_flops_agree_with_xla_cost_analysis():
    # XLA's own count of the compiled forward also includes element-wise work (softmax, LayerNorm, GELU, ...),
    # so the matmul-only formula must land a few percent below it, never above.
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from relik_jax.models.bert import BertModel
    from relik_jax.models.deberta import DebertaV2Model

    for cfg, cls in [(DebertaV2Config(vocab_size=100, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=1024), DebertaV2Model),
                     (BertConfig(vocab_size=100, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=1024), BertModel)]:
        graphdef, state = nnx.split(cls(cfg, rngs=nnx.Rngs(0)))
        fwd = jax.jit(lambda s, ids, g=graphdef: nnx.merge(g, s)(ids))
        for batch, length in [(2, 64), (1, 300)]:
            cost = fwd.lower(state, jnp.ones((batch, length), jnp.int32)).compile().cost_analysis()
            cost = cost[0] if isinstance(cost, list) else cost
            ratio = flops.encoder_flops(flops.EncoderShape.of(cfg), batch, length) / cost["flops"]
            assert 0.9 < ratio <= 1.0, (cls.__name__, batch, length, ratio)
