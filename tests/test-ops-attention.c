/* GPU vs CPU reference: fused attention. */
#include <math.h>

#include "at-test.h"
#include "ops/at-ops-attention.h"
#include "ref/at-ref-attention.h"
#include "ref/at-ref.h"

typedef enum {
  MASK_NONE,
  MASK_F32,
  MASK_F16,
} MaskKind;

typedef struct {
  gint64 head_dim, n_q, n_kv, n_head, n_head_kv;
  AtType kv_type;
  gboolean causal;
  gint64 causal_offset;
  MaskKind mask;
  /* K and V as views of a llama.cpp-style cache [head_dim * n_head_kv, n_ctx] (a row
   * per token holding every KV head) starting at token cache_start, so that a row of
   * one head is followed by the other heads' rows, not its next token; and Q as the
   * permuted view [head_dim, n_q, n_head] of the projection's [head_dim, n_head, n_q]. */
  gboolean strided;
  /* With strided: K and V start 2 elements into a row of the cache, so that they cannot
   * be read 4 elements at a time. */
  gboolean unaligned;
} Case;

static float
round_to (AtType type, float x)
{
  return type == AT_TYPE_F16 ? at_fp16_to_fp32 (at_fp32_to_fp16 (x)) : x;
}

/* A K or V input: the GPU tensor (a view when the case is strided) and the values the
 * reference reads, contiguous [head_dim, n_kv, n_head_kv] and rounded to the type. */
static AtTestTensor *
make_kv (const Case *c, AtTensor *view, float **ref_values)
{
  const gint64 d_k = c->head_dim, cache_start = 3, n_ctx = c->n_kv + cache_start + 2;
  const gint64 shift = c->unaligned ? 2 : 0;
  AtTestTensor *cache;
  float *ref = g_new (float, d_k * c->n_kv * c->n_head_kv);
  g_autofree float *values = NULL;

  if (!c->strided)
    {
      cache = at_test_tensor_new (c->kv_type, d_k, c->n_kv, c->n_head_kv, 1);
      values = at_test_random_floats (d_k * c->n_kv * c->n_head_kv, -1, 1);
      for (gint64 i = 0; i < d_k * c->n_kv * c->n_head_kv; i++)
        ref[i] = round_to (c->kv_type, values[i]);
      *view = cache->t;
    }
  else
    {
      gsize size = at_type_info (c->kv_type)->type_size;

      cache = at_test_tensor_new (c->kv_type, d_k * c->n_head_kv, n_ctx, 1, 1);
      values = at_test_random_floats (d_k * c->n_head_kv * n_ctx, -1, 1);
      for (gint64 hk = 0; hk < c->n_head_kv; hk++)
        for (gint64 j = 0; j < c->n_kv; j++)
          for (gint64 d = 0; d < d_k; d++)
            ref[(hk * c->n_kv + j) * d_k + d] =
              round_to (c->kv_type,
                        values[((cache_start + j) * c->n_head_kv + hk) * d_k + d + shift]);
      *view = cache->t;
      view->offset = cache->t.nb[1] * cache_start + shift * size;
      view->ne[0] = d_k;
      view->ne[1] = c->n_kv;
      view->ne[2] = c->n_head_kv;
      view->nb[1] = cache->t.nb[1];
      view->nb[2] = d_k * size;
      view->nb[3] = view->nb[2] * c->n_head_kv;
    }
  at_test_tensor_upload (cache, values);
  *ref_values = ref;
  return cache;
}

static void
check_case (const Case *c)
{
  const gint64 d_k = c->head_dim;
  const gsize n_q_values = d_k * c->n_q * c->n_head;
  g_autoptr (AtTestTensor) q = NULL;
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, d_k, c->n_head, c->n_q, 1);
  g_autoptr (AtTestTensor) k = NULL;
  g_autoptr (AtTestTensor) v = NULL;
  g_autoptr (AtTestTensor) mask = NULL;
  g_autofree float *q_values = at_test_random_floats (n_q_values, -2, 2);
  g_autofree float *k_ref = NULL;
  g_autofree float *v_ref = NULL;
  g_autofree float *mask_ref = NULL;
  g_autofree float *want = g_new (float, n_q_values);
  g_autofree float *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  AtTensor q_view, k_view, v_view;
  AtFlashAttnParams params = { 1.0f / sqrtf ((float) d_k), c->causal, c->causal_offset };
  AtRefAttnShape shape = { d_k, c->n_q, c->n_kv, c->n_head, c->n_head_kv, params.scale,
                           c->causal, c->causal_offset };
  g_autofree char *what = g_strdup_printf (
    "flash_attn head_dim %ld n_q %ld n_kv %ld heads %ld/%ld %s%s%s offset %ld%s%s",
    (long) d_k, (long) c->n_q, (long) c->n_kv, (long) c->n_head, (long) c->n_head_kv,
    at_type_name (c->kv_type), c->strided ? " strided" : "", c->causal ? " causal" : "",
    (long) c->causal_offset, c->mask == MASK_F32 ? " mask f32" : "",
    c->mask == MASK_F16 ? " mask f16" : "");

  k = make_kv (c, &k_view, &k_ref);
  v = make_kv (c, &v_view, &v_ref);
  if (c->mask != MASK_NONE)
    {
      AtType type = c->mask == MASK_F16 ? AT_TYPE_F16 : AT_TYPE_F32;

      mask = at_test_tensor_new (type, c->n_kv, c->n_q, 1, 1);
      mask_ref = at_test_random_floats (c->n_kv * c->n_q, -3, 1);
      for (gint64 i = 0; i < c->n_kv * c->n_q; i++)
        mask_ref[i] = g_rand_int_range (at_test_rand (), 0, 4) == 0
                        ? -INFINITY : round_to (type, mask_ref[i]);
      /* A query that sees no key at all must come out as zeros, not NaN. */
      if (c->n_q > 2)
        for (gint64 j = 0; j < c->n_kv; j++)
          mask_ref[c->n_kv + j] = -INFINITY;
      at_test_tensor_upload (mask, mask_ref);
    }
  if (!c->strided)
    {
      q = at_test_tensor_new (AT_TYPE_F32, d_k, c->n_q, c->n_head, 1);
      at_test_tensor_upload (q, q_values);
      q_view = q->t;
    }
  else
    {
      g_autofree float *projected = g_new (float, n_q_values);

      q = at_test_tensor_new (AT_TYPE_F32, d_k, c->n_head, c->n_q, 1);
      for (gint64 h = 0; h < c->n_head; h++)
        for (gint64 i = 0; i < c->n_q; i++)
          memcpy (projected + (i * c->n_head + h) * d_k, q_values + (h * c->n_q + i) * d_k,
                  d_k * sizeof (float));
      at_test_tensor_upload (q, projected);
      q_view = q->t;
      q_view.ne[1] = c->n_q;
      q_view.ne[2] = c->n_head;
      q_view.nb[1] = q->t.nb[2];
      q_view.nb[2] = q->t.nb[1];
    }
  at_test_tensor_poison (dst);
  at_op_flash_attn (batch, &q_view, &k_view, &v_view, mask ? &mask->t : NULL, &dst->t, &params);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_flash_attn (&shape, q_values, k_ref, v_ref, mask_ref, want);
  /* F32 arithmetic throughout (the F16 inputs are exact in F32, and the reference reads
   * the same rounded values), so only the accumulation order differs from the double
   * reference: a few ulp of F32 over the head_dim and n_kv sums. */
  at_test_assert_close (what, got, want, n_q_values, 1e-5);
}

static void
test_decode (void)
{
  static const gint64 n_kvs[] = { 1, 3, 7, 31, 33, 63, 65, 127, 129, 255, 299 };

  for (guint i = 0; i < G_N_ELEMENTS (n_kvs); i++)
    {
      Case c = { 64, 1, n_kvs[i], 4, 4, AT_TYPE_F16, TRUE, n_kvs[i] - 1 };
      check_case (&c);
    }
}

static void
check_cases (const Case *cases, guint n_cases)
{
  for (guint i = 0; i < n_cases; i++)
    check_case (&cases[i]);
}

static void
test_decode_long (void)
{
  static const Case cases[] = {
    { 128, 1, 4095, 8, 2, AT_TYPE_F16, TRUE, 4094, MASK_NONE, TRUE },
  };
  check_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_prefill (void)
{
  static const Case cases[] = {
    { 128, 37, 37, 2, 2, AT_TYPE_F32, TRUE, 0 },
    { 128, 37, 37, 2, 2, AT_TYPE_F16, TRUE, 0 },
  };
  check_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_prefill_past (void)
{
  static const Case cases[] = {
    { 64, 5, 21, 3, 3, AT_TYPE_F16, TRUE, 16 },
    { 64, 5, 21, 4, 2, AT_TYPE_F16, TRUE, 16, MASK_NONE, TRUE },
  };
  check_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_gqa (void)
{
  static const Case cases[] = {
    { 64, 37, 37, 8, 2, AT_TYPE_F16, TRUE, 0 },                  /* prefill */
    { 64, 1, 101, 8, 2, AT_TYPE_F32, TRUE, 100 },                /* decode */
    { 96, 7, 53, 8, 2, AT_TYPE_F16, TRUE, 46, MASK_NONE, TRUE }, /* a batch with a past */
  };
  check_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_cross (void)
{
  static const Case cases[] = {
    { 40, 200, 77, 8, 8, AT_TYPE_F32, FALSE, 0 }, /* SD 1.x cross-attention, 77 tokens */
    { 40, 200, 77, 8, 8, AT_TYPE_F16, FALSE, 0 },
    { 40, 256, 256, 2, 2, AT_TYPE_F16, FALSE, 0 }, /* self-attention */
  };
  check_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_head_dims (void)
{
  static const gint64 head_dims[] = { 8, 40, 64, 80, 96, 128, 160, 256 };

  for (guint i = 0; i < G_N_ELEMENTS (head_dims); i++)
    {
      Case prefill = { head_dims[i], 19, 45, 2, 1, AT_TYPE_F16, FALSE, 0 };
      Case few = { head_dims[i], 3, 45, 2, 2, AT_TYPE_F32, TRUE, 42 };
      Case decode = { head_dims[i], 1, 45, 2, 2, AT_TYPE_F32, TRUE, 44 };

      check_case (&prefill);
      check_case (&few);
      check_case (&decode);
    }
}

static void
test_mask (void)
{
  static const Case cases[] = {
    { 64, 23, 50, 2, 2, AT_TYPE_F32, FALSE, 0, MASK_F32 },
    { 64, 23, 50, 2, 2, AT_TYPE_F16, FALSE, 0, MASK_F16 },
    { 80, 9, 30, 4, 2, AT_TYPE_F16, TRUE, 21, MASK_F32, TRUE },
    { 64, 1, 77, 2, 2, AT_TYPE_F16, TRUE, 76, MASK_F16 },
  };
  check_cases (cases, G_N_ELEMENTS (cases));
}

/* Keys split over several workgroups (decode-long too), including
 * splits that the causal limit leaves empty and a split count that does not divide n_kv. */
static void
test_split (void)
{
  static const Case cases[] = {
    { 64, 2, 1000, 4, 1, AT_TYPE_F16, TRUE, 500 },
    { 64, 1, 1500, 2, 1, AT_TYPE_F32, FALSE, 0, MASK_F16 },
    { 96, 3, 777, 2, 1, AT_TYPE_F16, TRUE, 770, MASK_NONE, TRUE, TRUE },
  };
  check_cases (cases, G_N_ELEMENTS (cases));
}

/* The few-rows launch sums its lanes' partial scores with subgroupAdd where the device
 * has subgroup arithmetic; this runs its shared-memory fallback. */
static void
test_shared_sums (void)
{
  static const Case cases[] = {
    { 128, 1, 1027, 8, 2, AT_TYPE_F16, TRUE, 1026, MASK_NONE, TRUE },
    { 40, 3, 77, 2, 2, AT_TYPE_F32, FALSE, 0, MASK_F32 },
  };

  g_setenv ("ATELIER_DISABLE_SUBGROUP_ARITHMETIC", "1", TRUE);
  check_cases (cases, G_N_ELEMENTS (cases));
  g_unsetenv ("ATELIER_DISABLE_SUBGROUP_ARITHMETIC");
}

static void
test_unaligned (void)
{
  static const Case cases[] = {
    { 64, 1, 45, 4, 2, AT_TYPE_F16, TRUE, 44, MASK_NONE, TRUE, TRUE }, /* few rows */
    { 40, 20, 30, 2, 2, AT_TYPE_F32, FALSE, 0, MASK_NONE, TRUE, TRUE }, /* many rows */
  };
  check_cases (cases, G_N_ELEMENTS (cases));
}

static void
expect_invalid (const AtTensor *q, const AtTensor *k, const AtTensor *v,
                const AtTensor *mask, const AtTensor *dst, gint64 causal_offset)
{
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autoptr (GError) error = NULL;
  AtFlashAttnParams params = { 0.125f, TRUE, causal_offset };

  at_op_flash_attn (batch, q, k, v, mask, dst, &params);
  g_assert_false (at_batch_run (batch, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "flash_attn"));
}

static void
test_bad_shapes (void)
{
  g_autoptr (AtTestTensor) q = at_test_tensor_new (AT_TYPE_F32, 64, 5, 6, 1);
  g_autoptr (AtTestTensor) q_f16 = at_test_tensor_new (AT_TYPE_F16, 64, 5, 6, 1);
  g_autoptr (AtTestTensor) q_dim = at_test_tensor_new (AT_TYPE_F32, 36, 5, 6, 1);
  g_autoptr (AtTestTensor) k = at_test_tensor_new (AT_TYPE_F16, 64, 9, 3, 1);
  g_autoptr (AtTestTensor) k_4 = at_test_tensor_new (AT_TYPE_F16, 64, 9, 4, 1);
  g_autoptr (AtTestTensor) k_dim = at_test_tensor_new (AT_TYPE_F16, 36, 9, 3, 1);
  g_autoptr (AtTestTensor) k_q8 = at_test_tensor_new (AT_TYPE_Q8_0, 64, 9, 3, 1);
  g_autoptr (AtTestTensor) v = at_test_tensor_new (AT_TYPE_F16, 64, 9, 3, 1);
  g_autoptr (AtTestTensor) v_f32 = at_test_tensor_new (AT_TYPE_F32, 64, 9, 3, 1);
  g_autoptr (AtTestTensor) v_short = at_test_tensor_new (AT_TYPE_F16, 64, 8, 3, 1);
  g_autoptr (AtTestTensor) mask = at_test_tensor_new (AT_TYPE_F32, 9, 5, 1, 1);
  g_autoptr (AtTestTensor) mask_short = at_test_tensor_new (AT_TYPE_F32, 8, 5, 1, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, 64, 6, 5, 1);
  g_autoptr (AtTestTensor) dst_order = at_test_tensor_new (AT_TYPE_F32, 64, 5, 6, 1);
  g_autoptr (AtTestTensor) dst_dim = at_test_tensor_new (AT_TYPE_F32, 36, 6, 5, 1);
  AtTensor k_gapped = k->t;

  /* The good call first, so that the failures below are the shapes' doing. */
  {
    g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
    AtFlashAttnParams params = { 0.125f, TRUE, 4 };

    at_op_flash_attn (batch, &q->t, &k->t, &v->t, &mask->t, &dst->t, &params);
    at_test_run_batch (batch);
  }
  k_gapped.nb[0] = 4;
  expect_invalid (&q_f16->t, &k->t, &v->t, NULL, &dst->t, 0);
  expect_invalid (&q->t, &k_q8->t, &v->t, NULL, &dst->t, 0);
  expect_invalid (&q->t, &k->t, &v_f32->t, NULL, &dst->t, 0);
  expect_invalid (&q->t, &k->t, &v_short->t, NULL, &dst->t, 0);
  expect_invalid (&q->t, &k_dim->t, &v->t, NULL, &dst->t, 0);
  expect_invalid (&q_dim->t, &k_dim->t, &k_dim->t, NULL, &dst_dim->t, 0); /* 36 % 8 */
  expect_invalid (&q->t, &k_4->t, &k_4->t, NULL, &dst->t, 0);             /* 6 % 4 */
  expect_invalid (&q->t, &k_gapped, &v->t, NULL, &dst->t, 0);
  expect_invalid (&q->t, &k->t, &v->t, &mask_short->t, &dst->t, 0);
  expect_invalid (&q->t, &k->t, &v->t, NULL, &dst_order->t, 0);
  expect_invalid (&q->t, &k->t, &v->t, NULL, &dst->t, -1);
}

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  g_test_add_func ("/ops/flash-attn/decode", test_decode);
  g_test_add_func ("/ops/flash-attn/decode-long", test_decode_long);
  g_test_add_func ("/ops/flash-attn/prefill", test_prefill);
  g_test_add_func ("/ops/flash-attn/prefill-past", test_prefill_past);
  g_test_add_func ("/ops/flash-attn/gqa", test_gqa);
  g_test_add_func ("/ops/flash-attn/cross", test_cross);
  g_test_add_func ("/ops/flash-attn/head-dims", test_head_dims);
  g_test_add_func ("/ops/flash-attn/mask", test_mask);
  g_test_add_func ("/ops/flash-attn/split", test_split);
  g_test_add_func ("/ops/flash-attn/shared-sums", test_shared_sums);
  g_test_add_func ("/ops/flash-attn/unaligned", test_unaligned);
  g_test_add_func ("/ops/flash-attn/bad-shapes", test_bad_shapes);
  return at_test_run ();
}
