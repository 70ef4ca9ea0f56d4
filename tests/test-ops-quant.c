/* Quantized types: CPU codecs against hand-built blocks, and get_rows and mat-vec on
 * the GPU against the CPU reference, for every weight type. */
#include <math.h>

#include "at-test.h"
#include "ops/at-ops-quant.h"
#include "ref/at-ref.h"
#include "ref/at-ref-quant.h"

static const AtType quant_types[] = {
  AT_TYPE_Q4_0, AT_TYPE_Q4_1, AT_TYPE_Q5_0, AT_TYPE_Q5_1, AT_TYPE_Q8_0,
  AT_TYPE_Q2_K, AT_TYPE_Q3_K, AT_TYPE_Q4_K, AT_TYPE_Q5_K, AT_TYPE_Q6_K,
};

static const AtType weight_types[] = {
  AT_TYPE_F32,  AT_TYPE_F16,  AT_TYPE_BF16, AT_TYPE_Q4_0, AT_TYPE_Q4_1, AT_TYPE_Q5_0, AT_TYPE_Q5_1,
  AT_TYPE_Q8_0, AT_TYPE_Q2_K, AT_TYPE_Q3_K, AT_TYPE_Q4_K, AT_TYPE_Q5_K, AT_TYPE_Q6_K,
};

/* Quantizes values to type's bytes (free with g_free). */
static guint8 *
quantize (AtType type, const float *values, gint64 ne0, gint64 rows)
{
  gsize row_bytes = at_type_row_size (type, ne0);
  guint8 *bytes = g_malloc0 (row_bytes * (gsize)rows);

  for (gint64 r = 0; r < rows; r++)
    g_assert_true (at_ref_quantize_row (type, values + r * ne0, bytes + r * row_bytes, ne0));
  return bytes;
}

static float *
dequantize (AtType type, const guint8 *bytes, gint64 ne0, gint64 rows)
{
  gsize row_bytes = at_type_row_size (type, ne0);
  float *values = g_new (float, ne0 *rows);

  for (gint64 r = 0; r < rows; r++)
    g_assert_true (at_ref_dequantize_row (type, bytes + r * row_bytes, values + r * ne0, ne0));
  return values;
}

/* --- CPU codecs --------------------------------------------------------------- */

static void
test_round_trip (void)
{
  /* Relative L2 error of uniform [-1, 1) data: about the quantization step over
   * sqrt(12) over the data's RMS (0.58), with room for the simple scale search. */
  static const struct
  {
    AtType type;
    double tolerance;
  } cases[] = {
    { AT_TYPE_Q4_0, 0.12 }, { AT_TYPE_Q4_1, 0.08 },  { AT_TYPE_Q5_0, 0.06 }, { AT_TYPE_Q5_1, 0.04 },
    { AT_TYPE_Q8_0, 0.01 }, { AT_TYPE_Q2_K, 0.35 },  { AT_TYPE_Q3_K, 0.2 },  { AT_TYPE_Q4_K, 0.1 },
    { AT_TYPE_Q5_K, 0.05 }, { AT_TYPE_Q6_K, 0.025 },
  };
  const gint64 n = 4096;
  g_autofree float *values = at_test_random_floats (n, -1, 1);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree guint8 *bytes = quantize (cases[i].type, values, n, 1);
      g_autofree float *back = dequantize (cases[i].type, bytes, n, 1);
      double error = at_test_rel_l2 (back, values, n);

      g_test_message ("%s round trip: relative L2 %.4f", at_type_name (cases[i].type), error);
      at_test_assert_close (at_type_name (cases[i].type), back, values, n, cases[i].tolerance);
    }
}

/* A block of all zeros and one of a constant must survive exactly or nearly. */
static void
test_degenerate_blocks (void)
{
  float zeros[256] = { 0 }, ones[256];

  for (int i = 0; i < 256; i++)
    ones[i] = 0.75f;
  for (guint t = 0; t < G_N_ELEMENTS (quant_types); t++)
    {
      g_autofree guint8 *zb = quantize (quant_types[t], zeros, 256, 1);
      g_autofree float *z = dequantize (quant_types[t], zb, 256, 1);
      g_autofree guint8 *ob = quantize (quant_types[t], ones, 256, 1);
      g_autofree float *o = dequantize (quant_types[t], ob, 256, 1);

      for (int i = 0; i < 256; i++)
        g_assert_cmpfloat (z[i], ==, 0.0f);
      at_test_assert_close (at_type_name (quant_types[t]), o, ones, 256, 0.02);
    }
}

static void
put_half (guint8 *p, float f)
{
  guint16 h = at_fp32_to_fp16 (f);
  p[0] = (guint8)h;
  p[1] = (guint8)(h >> 8);
}

static void
check_block (AtType type, const guint8 *block, const float *want)
{
  gint64 n = at_type_info (type)->block_size;
  float got[256];

  g_assert_true (at_ref_dequantize_row (type, block, got, n));
  for (gint64 e = 0; e < n; e++)
    if (got[e] != want[e])
      g_error ("%s: element %" G_GINT64_FORMAT " is %g, want %g", at_type_name (type), e, got[e],
               want[e]);
}

/* Blocks built byte by byte from ggml's block structs, with the values ggml's
 * dequantize_row_* gives for them. */
static void
test_known_blocks_32 (void)
{
  guint8 b[34] = { 0 };
  float want[32];

  /* q4_0: nibble j of qs[j] low, 15 - j high; d = 0.5. */
  put_half (b, 0.5f);
  for (int j = 0; j < 16; j++)
    {
      b[2 + j] = (guint8)(j | (15 - j) << 4);
      want[j] = (j - 8) * 0.5f;
      want[j + 16] = (15 - j - 8) * 0.5f;
    }
  check_block (AT_TYPE_Q4_0, b, want);

  /* q4_1: the same nibbles, d = 0.5, m = -1. */
  memset (b, 0, sizeof b);
  put_half (b, 0.5f);
  put_half (b + 2, -1.0f);
  for (int j = 0; j < 16; j++)
    {
      b[4 + j] = (guint8)(j | (15 - j) << 4);
      want[j] = j * 0.5f - 1;
      want[j + 16] = (15 - j) * 0.5f - 1;
    }
  check_block (AT_TYPE_Q4_1, b, want);

  /* q5_0: qh = 0x8000ff01 sets the fifth bit of elements 0, 8..15 and 31; d = 1. */
  memset (b, 0, sizeof b);
  put_half (b, 1.0f);
  b[2] = 0x01, b[3] = 0xff, b[4] = 0x00, b[5] = 0x80;
  for (int j = 0; j < 16; j++)
    b[6 + j] = (guint8)(j | (15 - j) << 4);
  for (int j = 0; j < 32; j++)
    {
      int high = j == 0 || (j >= 8 && j < 16) || j == 31 ? 16 : 0;
      int low = j < 16 ? j : 31 - j;
      want[j] = (float)(low + high - 16);
    }
  check_block (AT_TYPE_Q5_0, b, want);

  /* q5_1: the same quants, d = 0.25, m = 0.5. */
  memset (b, 0, sizeof b);
  put_half (b, 0.25f);
  put_half (b + 2, 0.5f);
  b[4] = 0x01, b[5] = 0xff, b[6] = 0x00, b[7] = 0x80;
  for (int j = 0; j < 16; j++)
    b[8 + j] = (guint8)(j | (15 - j) << 4);
  for (int j = 0; j < 32; j++)
    {
      int high = j == 0 || (j >= 8 && j < 16) || j == 31 ? 16 : 0;
      int low = j < 16 ? j : 31 - j;
      want[j] = (float)(low + high) * 0.25f + 0.5f;
    }
  check_block (AT_TYPE_Q5_1, b, want);

  /* q8_0: qs[j] = j - 16, d = 0.25. */
  memset (b, 0, sizeof b);
  put_half (b, 0.25f);
  for (int j = 0; j < 32; j++)
    {
      b[2 + j] = (guint8)(gint8)(j - 16);
      want[j] = (j - 16) * 0.25f;
    }
  check_block (AT_TYPE_Q8_0, b, want);
}

/* 2-bit fields of q2_K/q3_K qs: bytes 0..31 hold 0xe4 (fields 0, 1, 2, 3 from the
 * low bits up), bytes 32..63 0x1b (3, 2, 1, 0), so element e decodes to its 32-group
 * index g = (e % 128) / 32 in the first half of the block and 3 - g in the second. */
static void
fill_2bit (guint8 *qs)
{
  memset (qs, 0xe4, 32);
  memset (qs + 32, 0x1b, 32);
}

static int
expected_2bit (int e)
{
  int g = (e % 128) / 32;
  return e < 128 ? g : 3 - g;
}

static void
test_known_blocks_k (void)
{
  guint8 b[210];
  float want[256];
  /* q4_K/q5_K sub-block scales and mins, packed by hand below as in ggml's
   * get_scale_min_k4: j < 4 in the low six bits of bytes j and j + 4; j >= 4 as
   * nibbles of byte j + 4 with the top two bits in bytes j - 4 and j. */
  static const int sc[8] = { 1, 2, 3, 4, 17, 33, 49, 63 };
  static const int mn[8] = { 0, 5, 10, 63, 16, 32, 48, 7 };
  static const guint8 k4_scales[12] = {
    0x41, 0x82, 0xc3, 0xc4, 0x40, 0x85, 0xca, 0x3f, 0x01, 0x01, 0x01, 0x7f,
  };
  /* q3_K scales s_i = 4 i + 1 (stored biased by 32): low nibbles of s_i and s_(i+8)
   * in byte i < 8; the top bit pairs of s_j, s_(j+4), s_(j+8), s_(j+12) in byte
   * 8 + j, from the low bits up. */
  static const guint8 q3_scales[12] = {
    0x11, 0x55, 0x99, 0xdd, 0x11, 0x55, 0x99, 0xdd, 0xe4, 0xe4, 0xe4, 0xe4,
  };

  /* q2_K: scales[s] = s | (15 - s) << 4, d = 1, dmin = 0.25. */
  memset (b, 0, sizeof b);
  for (int s = 0; s < 16; s++)
    b[s] = (guint8)(s | (15 - s) << 4);
  fill_2bit (b + 16);
  put_half (b + 80, 1.0f);
  put_half (b + 82, 0.25f);
  for (int e = 0; e < 256; e++)
    want[e] = (float)(e / 16) * (float)expected_2bit (e) - 0.25f * (float)(15 - e / 16);
  check_block (AT_TYPE_Q2_K, b, want);

  /* q3_K: hmask bytes 0x55 (bits 0, 2, 4, 6) keep the 32-groups of even index from
   * having 4 subtracted; d = 0.5. */
  memset (b, 0, sizeof b);
  memset (b, 0x55, 32);
  fill_2bit (b + 32);
  memcpy (b + 96, q3_scales, 12);
  put_half (b + 108, 0.5f);
  for (int e = 0; e < 256; e++)
    {
      int q = expected_2bit (e) - ((e / 32) % 2 == 0 ? 0 : 4);
      want[e] = 0.5f * (float)(4 * (e / 16) + 1 - 32) * (float)q;
    }
  check_block (AT_TYPE_Q3_K, b, want);

  /* q4_K: qs byte i = (i % 16) | (15 - i % 16) << 4; the low nibbles are the even
   * sub-blocks of each 64, the high ones the odd; d = 1, dmin = 0.5. */
  memset (b, 0, sizeof b);
  put_half (b, 1.0f);
  put_half (b + 2, 0.5f);
  memcpy (b + 4, k4_scales, 12);
  for (int i = 0; i < 128; i++)
    b[16 + i] = (guint8)(i % 16 | (15 - i % 16) << 4);
  for (int e = 0; e < 256; e++)
    {
      int s = e / 32, q = s % 2 == 0 ? e % 16 : 15 - e % 16;
      want[e] = (float)sc[s] * (float)q - 0.5f * (float)mn[s];
    }
  check_block (AT_TYPE_Q4_K, b, want);

  /* q5_K: the same plus qh[l] = 1 << (l % 8): bit s of qh[l] is the fifth bit of
   * element 32 s + l. */
  memset (b, 0, sizeof b);
  put_half (b, 1.0f);
  put_half (b + 2, 0.5f);
  memcpy (b + 4, k4_scales, 12);
  for (int l = 0; l < 32; l++)
    b[16 + l] = (guint8)(1 << (l % 8));
  for (int i = 0; i < 128; i++)
    b[48 + i] = (guint8)(i % 16 | (15 - i % 16) << 4);
  for (int e = 0; e < 256; e++)
    {
      int s = e / 32, q = s % 2 == 0 ? e % 16 : 15 - e % 16;
      q += (e % 32) % 8 == s ? 16 : 0;
      want[e] = (float)sc[s] * (float)q - 0.5f * (float)mn[s];
    }
  check_block (AT_TYPE_Q5_K, b, want);

  /* q6_K: in each 128-half h, ql bytes 0..31 hold low nibbles of 32-group 0 (low
   * bits) and 2 (high bits), bytes 32..63 of groups 1 and 3; qh bytes hold the top
   * bit pairs of groups 0..3 from the low bits up. Here the low nibble of group g is
   * g + 1 + 4 h and its top pair g (h = 0) or 3 - g (h = 1); scales[s] = s - 8;
   * d = 0.25. */
  memset (b, 0, sizeof b);
  memset (b, 0x31, 32);
  memset (b + 32, 0x42, 32);
  memset (b + 64, 0x75, 32);
  memset (b + 96, 0x86, 32);
  fill_2bit (b + 128);
  for (int s = 0; s < 16; s++)
    b[192 + s] = (guint8)(gint8)(s - 8);
  put_half (b + 208, 0.25f);
  for (int e = 0; e < 256; e++)
    {
      int h = e / 128, g = (e % 128) / 32;
      int q = (g + 1 + 4 * h) | expected_2bit (e) << 4;
      want[e] = 0.25f * (float)(e / 16 - 8) * (float)(q - 32);
    }
  check_block (AT_TYPE_Q6_K, b, want);
}

/* --- get_rows ------------------------------------------------------------------ */

static void
check_get_rows (AtType type, gint64 ne0, gint64 n_rows, guint64 max_range)
{
  static const gint32 ids[] = { 3, 0, -1, 6, 3, 7, 1, 100, 5 };
  const gint64 n = G_N_ELEMENTS (ids);
  g_autofree float *values = at_test_random_floats (ne0 * n_rows, -1, 1);
  g_autofree guint8 *bytes = quantize (type, values, ne0, n_rows);
  g_autoptr (AtTestTensor) table = at_test_tensor_new (type, ne0, n_rows, 1, 1);
  g_autoptr (AtTestTensor) ids_t = at_test_tensor_new (AT_TYPE_I32, n, 1, 1, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, ne0, n, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *want = g_new (float, ne0 *n);
  g_autofree float *got = NULL;
  g_autofree char *what
      = g_strdup_printf ("get_rows %s [%ld, %ld] (bindings <= %lu bytes)", at_type_name (type),
                         (long)ne0, (long)n_rows, (unsigned long)max_range);

  at_test_tensor_upload_raw (table, bytes, at_type_row_size (type, ne0) * n_rows);
  at_test_tensor_upload_raw (ids_t, ids, sizeof ids);
  at_test_tensor_poison (dst);
  at_op_get_rows_ext (batch, &table->t, &ids_t->t, &dst->t, max_range);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_get_rows (type, bytes, at_type_row_size (type, ne0), ne0, n_rows, ids, n, want);
  /* The same bits dequantized with the same formulas: only the rounding of a fused
   * multiply-add can differ. */
  at_test_assert_close (what, got, want, ne0 * n, 1e-6);
}

static void
test_get_rows (void)
{
  for (guint t = 0; t < G_N_ELEMENTS (weight_types); t++)
    {
      AtType type = weight_types[t];
      gint64 ne0 = at_type_info (type)->block_size == 1 ? 37 : 512;

      check_get_rows (type, ne0, 7, G_MAXUINT64);
      /* Bindings of about two rows: the gather runs in several ranges. */
      check_get_rows (type, ne0, 7, 2 * at_type_row_size (type, ne0) + 256);
    }
}

static void
test_get_rows_bad (void)
{
  g_autoptr (AtTestTensor) table = at_test_tensor_new (AT_TYPE_Q4_0, 64, 4, 1, 1);
  g_autoptr (AtTestTensor) ids = at_test_tensor_new (AT_TYPE_F32, 3, 1, 1, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, 64, 3, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autoptr (GError) error = NULL;

  at_op_get_rows (batch, &table->t, &ids->t, &dst->t);
  g_assert_false (at_batch_run (batch, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
}

/* --- mat-vec ------------------------------------------------------------------- */

/* How much smaller the results are than random-sign sums of the same terms would
 * typically be (>= 1): rounding errors scale with the terms, not with the sums. */
static double
cancellation (const float *w, const float *x, const float *want, gint64 k, gint64 m, gint64 n)
{
  double terms = 0, sums = 0;

  for (gint64 j = 0; j < n; j++)
    for (gint64 i = 0; i < m; i++)
      {
        for (gint64 l = 0; l < k; l++)
          terms += (double)w[i * k + l] * w[i * k + l] * x[j * k + l] * x[j * k + l];
        sums += (double)want[j * m + i] * want[j * m + i];
      }
  return MAX (1.0, sqrt (terms / sums));
}

static void
check_mul_mat_vec (AtType type, AtType x_type, gint64 k, gint64 m, gint64 n,
                   guint64 max_range, gboolean use_subgroups, gboolean misalign)
{
  /* w sits 3 rows into its buffer, so that its binding starts before it. misalign moves
   * w 2 bytes further (4 for F32) and x one element, off the word and vec4 boundaries
   * that the shader's fast loads need. */
  const gint64 skip = 3;
  const gsize x_size = at_type_info (x_type)->type_size;
  const gsize x_offset = misalign ? x_size : 0;
  gsize row_bytes = at_type_row_size (type, k);
  g_autofree float *w_values = at_test_random_floats (k * m, -1, 1);
  g_autofree float *x_random = at_test_random_floats (k * n, -1, 1);
  g_autofree guint8 *bytes = quantize (type, w_values, k, m);
  g_autofree guint8 *x_bytes = quantize (x_type, x_random, k * n, 1);
  /* The reference reads x as the GPU does: F16 activations rounded to F16. */
  g_autofree float *x_values = dequantize (x_type, x_bytes, k * n, 1);
  g_autofree float *w_ref = dequantize (type, bytes, k, m);
  g_autoptr (AtTestTensor) w_buffer = at_test_tensor_new (type, k, m + skip + 1, 1, 1);
  g_autoptr (AtTestTensor) x_buffer = at_test_tensor_new (x_type, k * n + 2, 1, 1, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, m, n, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *want = g_new (float, m *n);
  g_autofree float *got = NULL;
  g_autofree char *what
      = g_strdup_printf ("mul_mat_vec %s x %s k=%ld m=%ld n=%ld%s%s%s", at_type_name (type),
                         at_type_name (x_type), (long)k,
                         (long)m, (long)n, max_range != G_MAXUINT64 ? " split" : "",
                         use_subgroups ? "" : " no-subgroup", misalign ? " misaligned" : "");
  AtTensor w = at_tensor_make (w_buffer->buffer, skip * row_bytes, type, k, m, 1, 1);
  AtTensor x = at_tensor_make (x_buffer->buffer, x_offset, x_type, k, n, 1, 1);

  if (row_bytes % 2 != 0 || (type == AT_TYPE_F32 && row_bytes % 4 != 0))
    w.offset = 0;
  else if (misalign)
    w.offset += type == AT_TYPE_F32 ? 4 : 2;
  g_assert_true (
      at_gpu_upload (at_test_gpu (), w_buffer->buffer, w.offset, bytes, row_bytes * m, NULL));
  g_assert_true (
      at_gpu_upload (at_test_gpu (), x_buffer->buffer, x_offset, x_bytes, k * n * x_size, NULL));
  at_test_tensor_poison (dst);
  at_op_mul_mat_vec_ext (batch, &w, &x, &dst->t, max_range, use_subgroups);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_mul_mat (w_ref, x_values, want, k, m, n);
  /* Same weights bit for bit; only float accumulation order differs: 1e-5 of the
   * result, or of its typical size where the sums cancel out (few outputs). */
  at_test_assert_close (what, got, want, m * n,
                        1e-5 * cancellation (w_ref, x_values, want, k, m, n));
}

static void
test_mul_mat_vec_type (gconstpointer data)
{
  AtType type = GPOINTER_TO_INT (data);
  static const gint64 shapes[][2] = { { 256, 1 }, { 4096, 37 }, { 768, 1000 } };
  static const gint64 cols[] = { 1, 3, 8 };

  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (guint c = 0; c < G_N_ELEMENTS (cols); c++)
      check_mul_mat_vec (type, AT_TYPE_F32, shapes[s][0], shapes[s][1], cols[c], G_MAXUINT64, TRUE, FALSE);
  if (at_type_info (type)->block_size == 1)
    {
      check_mul_mat_vec (type, AT_TYPE_F32, 100, 13, 2, G_MAXUINT64, TRUE, FALSE);
      check_mul_mat_vec (type, AT_TYPE_F32, 1, 5, 1, G_MAXUINT64, TRUE, FALSE);
    }
  /* The shared-memory reduction, weights split into row ranges, and the loads for
   * weights and x off word and vec4 boundaries. */
  check_mul_mat_vec (type, AT_TYPE_F32, 512, 37, 3, G_MAXUINT64, FALSE, FALSE);
  check_mul_mat_vec (type, AT_TYPE_F32, 512, 37, 3, 5 * at_type_row_size (type, 512) + 300, TRUE, FALSE);
  check_mul_mat_vec (type, AT_TYPE_F32, 512, 37, 1, G_MAXUINT64, TRUE, TRUE);
  /* F16 activations: aligned (f16vec4 loads), misaligned, several columns. */
  check_mul_mat_vec (type, AT_TYPE_F16, 4096, 37, 1, G_MAXUINT64, TRUE, FALSE);
  check_mul_mat_vec (type, AT_TYPE_F16, 512, 37, 3, G_MAXUINT64, TRUE, TRUE);
  check_mul_mat_vec (type, AT_TYPE_F16, 512, 37, 8, G_MAXUINT64, FALSE, FALSE);
}

static void
expect_mul_mat_vec_error (AtType w_type, gint64 k, gint64 m, AtType x_type, gint64 x_k, gint64 n)
{
  g_autoptr (AtTestTensor) w = at_test_tensor_new (w_type, k, m, 1, 1);
  g_autoptr (AtTestTensor) x = at_test_tensor_new (x_type, x_k, n, 1, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, m, n, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autoptr (GError) error = NULL;

  at_op_mul_mat_vec (batch, &w->t, &x->t, &dst->t);
  g_assert_false (at_batch_run (batch, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
}

static void
test_mul_mat_vec_bad (void)
{
  expect_mul_mat_vec_error (AT_TYPE_F32, 64, 4, AT_TYPE_F32, 32, 1);  /* k mismatch */
  expect_mul_mat_vec_error (AT_TYPE_Q4_0, 64, 4, AT_TYPE_F32, 64, 9); /* n > 8 */
  expect_mul_mat_vec_error (AT_TYPE_F16, 64, 4, AT_TYPE_I32, 64, 1);  /* x type */
  expect_mul_mat_vec_error (AT_TYPE_F16, 64, 4, AT_TYPE_BF16, 64, 1); /* x type */
  expect_mul_mat_vec_error (AT_TYPE_I32, 64, 4, AT_TYPE_F32, 64, 1);  /* w type */
  {
    /* k = 48 is no multiple of q4_0's 32: the tensor itself cannot be made, so a
     * view of a valid one lies about its ne[0]. */
    g_autoptr (AtTestTensor) w = at_test_tensor_new (AT_TYPE_Q4_0, 64, 4, 1, 1);
    g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, 48, 1, 1, 1);
    g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, 4, 1, 1, 1);
    g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
    g_autoptr (GError) error = NULL;
    AtTensor view = w->t;

    view.ne[0] = 48;
    at_op_mul_mat_vec (batch, &view, &x->t, &dst->t);
    g_assert_false (at_batch_run (batch, &error));
    g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  }
  g_assert_true (at_op_mul_mat_vec_supports (AT_TYPE_Q6_K));
  g_assert_false (at_op_mul_mat_vec_supports (AT_TYPE_I32));
}

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  g_test_add_func ("/ops/quant/round-trip", test_round_trip);
  g_test_add_func ("/ops/quant/degenerate-blocks", test_degenerate_blocks);
  g_test_add_func ("/ops/quant/known-blocks-32", test_known_blocks_32);
  g_test_add_func ("/ops/quant/known-blocks-k", test_known_blocks_k);
  g_test_add_func ("/ops/get-rows/all-types", test_get_rows);
  g_test_add_func ("/ops/get-rows/bad", test_get_rows_bad);
  for (guint t = 0; t < G_N_ELEMENTS (weight_types); t++)
    {
      g_autofree char *path
          = g_strdup_printf ("/ops/mul-mat-vec/%s", at_type_name (weight_types[t]));
      g_test_add_data_func (path, GINT_TO_POINTER (weight_types[t]), test_mul_mat_vec_type);
    }
  g_test_add_func ("/ops/mul-mat-vec/bad", test_mul_mat_vec_bad);
  return at_test_run ();
}
