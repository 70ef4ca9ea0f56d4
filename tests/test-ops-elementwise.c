/* GPU vs CPU reference: element-wise ops. */
#include "at-test.h"
#include "ops/at-ops-elementwise.h"
#include "ref/at-ref.h"
#include "ref/at-ref-elementwise.h"

#include <math.h>

typedef void (*GpuBinary) (AtBatch *, const AtTensor *, const AtTensor *, const AtTensor *);
typedef void (*RefBinary) (const float *, const gint64 *, const float *, const gint64 *, float *);

static void
check_binary (const char *name, GpuBinary gpu_op, RefBinary ref_op, const gint64 ne[4],
              const gint64 b_ne[4])
{
  gsize n = ne[0] * ne[1] * ne[2] * ne[3];
  gsize b_n = b_ne[0] * b_ne[1] * b_ne[2] * b_ne[3];
  g_autoptr (AtTestTensor) a = at_test_tensor_new (AT_TYPE_F32, ne[0], ne[1], ne[2], ne[3]);
  g_autoptr (AtTestTensor) b = at_test_tensor_new (AT_TYPE_F32, b_ne[0], b_ne[1], b_ne[2], b_ne[3]);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, ne[0], ne[1], ne[2], ne[3]);
  g_autofree float *a_values = at_test_random_floats (n, -2, 2);
  g_autofree float *b_values = at_test_random_floats (b_n, -2, 2);
  g_autofree float *want = g_new (float, n);
  g_autofree float *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree char *what = g_strdup_printf ("%s [%ld,%ld,%ld,%ld] by [%ld,%ld,%ld,%ld]", name,
                                           (long) ne[0], (long) ne[1], (long) ne[2],
                                           (long) ne[3], (long) b_ne[0], (long) b_ne[1],
                                           (long) b_ne[2], (long) b_ne[3]);

  at_test_tensor_upload (a, a_values);
  at_test_tensor_upload (b, b_values);
  at_test_tensor_poison (dst);
  gpu_op (batch, &a->t, &b->t, &dst->t);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  ref_op (a_values, ne, b_values, b_ne, want);
  /* F32 in and out, one operation per element: only rounding of the result. */
  at_test_assert_close (what, got, want, n, 1e-6);
}

static const gint64 shapes[][2][4] = {
  { { 1, 1, 1, 1 }, { 1, 1, 1, 1 } },
  { { 1000, 3, 1, 1 }, { 1000, 3, 1, 1 } },
  { { 4096, 7, 1, 1 }, { 4096, 1, 1, 1 } },   /* bias over rows */
  { { 33, 17, 5, 2 }, { 1, 17, 5, 1 } },      /* per-row scale */
  { { 65, 64, 9, 1 }, { 65, 1, 9, 1 } },
  { { 257, 3, 3, 3 }, { 1, 1, 1, 1 } },       /* scalar */
};

static void
test_add (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
    check_binary ("add", at_op_add, at_ref_add, shapes[i][0], shapes[i][1]);
}

static void
test_mul (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
    check_binary ("mul", at_op_mul, at_ref_mul, shapes[i][0], shapes[i][1]);
}

/* A per-channel bias on [w, h, c, n] activations (a convolution's) is b [1, 1, c, 1]. */
static void
test_add_channel_bias (void)
{
  static const gint64 cases[][2][4] = {
    { { 9, 7, 5, 2 }, { 1, 1, 5, 1 } },
    { { 33, 17, 40, 2 }, { 1, 1, 40, 1 } },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_binary ("add", at_op_add, at_ref_add, cases[i][0], cases[i][1]);
}

static void
test_bad_broadcast (void)
{
  g_autoptr (AtTestTensor) a = at_test_tensor_new (AT_TYPE_F32, 8, 4, 1, 1);
  g_autoptr (AtTestTensor) b = at_test_tensor_new (AT_TYPE_F32, 3, 1, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autoptr (GError) error = NULL;

  at_op_add (batch, &a->t, &b->t, &a->t);
  g_assert_false (at_batch_run (batch, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "broadcast"));
}

/* Fails unless the run of an op refused its arguments with a message holding what. */
static void
assert_refused (AtBatch *batch, const char *what)
{
  g_autoptr (GError) error = NULL;

  g_assert_false (at_batch_run (batch, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  if (strstr (error->message, what) == NULL)
    g_error ("\"%s\" does not say \"%s\"", error->message, what);
}

static guint8 *
download_raw (AtTestTensor *tensor, gsize size)
{
  g_autoptr (GError) error = NULL;
  guint8 *bytes = g_malloc (size);

  at_gpu_download (at_test_gpu (), tensor->buffer, 0, bytes, size, &error);
  g_assert_no_error (error);
  return bytes;
}

/* Bit-exact comparison; the message points at the first element that differs. */
static void
assert_same_bytes (const char *what, const guint8 *got, const guint8 *want, gsize size,
                   guint element_size)
{
  for (gsize i = 0; i < size; i++)
    if (got[i] != want[i])
      {
        gsize e = i / element_size * element_size;
        guint32 got_bits = 0, want_bits = 0;

        memcpy (&got_bits, got + e, element_size);
        memcpy (&want_bits, want + e, element_size);
        g_test_message ("%s: element %" G_GSIZE_FORMAT " is %#x, want %#x", what,
                        e / element_size, got_bits, want_bits);
        g_test_fail ();
        return;
      }
}

/* The values as the type stores them (rounded), back in floats. */
static void
round_to_type (AtType type, float *values, gsize n)
{
  g_autofree guint8 *bytes = g_malloc (at_type_row_size (type, (gint64) n));

  g_assert_true (at_ref_quantize_row (type, values, bytes, (gint64) n));
  g_assert_true (at_ref_dequantize_row (type, bytes, values, (gint64) n));
}

static const int identity[4] = { 0, 1, 2, 3 };

/* cpy from permute (src [src_ne], src_axes) into permute (dst [dst_ne], dst_axes), with
 * the given src values (or random ones when NULL). */
static void
check_cpy (AtType src_type, AtType dst_type, const gint64 src_ne[4], const int src_axes[4],
           const gint64 dst_ne[4], const int dst_axes[4], const float *values)
{
  gsize n = src_ne[0] * src_ne[1] * src_ne[2] * src_ne[3];
  gsize src_size = at_type_row_size (src_type, (gint64) n);
  gsize dst_size = at_type_row_size (dst_type, (gint64) n);
  g_autoptr (AtTestTensor) src = at_test_tensor_new (src_type, src_ne[0], src_ne[1], src_ne[2],
                                                     src_ne[3]);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (dst_type, dst_ne[0], dst_ne[1], dst_ne[2],
                                                     dst_ne[3]);
  AtTensor src_view = at_tensor_permute (&src->t, src_axes[0], src_axes[1], src_axes[2],
                                         src_axes[3]);
  AtTensor dst_view = at_tensor_permute (&dst->t, dst_axes[0], dst_axes[1], dst_axes[2],
                                         dst_axes[3]);
  g_autofree float *random = values ? NULL : at_test_random_floats (n, -3, 3);
  g_autofree guint8 *src_bytes = g_malloc (src_size);
  g_autofree guint8 *want = g_malloc (dst_size);
  g_autofree guint8 *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree char *from = at_tensor_describe (&src_view);
  g_autofree char *to = at_tensor_describe (&dst_view);
  g_autofree char *what = g_strdup_printf ("cpy %s to %s", from, to);

  g_assert_true (at_ref_quantize_row (src_type, values ? values : random, src_bytes,
                                      (gint64) n));
  at_test_tensor_upload_raw (src, src_bytes, src_size);
  at_test_tensor_poison (dst);
  at_op_cpy (batch, &src_view, &dst_view);
  at_test_run_batch (batch);
  got = download_raw (dst, dst_size);
  at_ref_cpy (src_bytes, src_type, src_view.ne, src_view.nb, want, dst_type, dst_view.ne,
              dst_view.nb);
  /* A copy rounds once, to nearest even, exactly as the reference conversion: every
   * bit must agree. */
  assert_same_bytes (what, got, want, dst_size, at_type_info (dst_type)->type_size);
}

static const AtType plain_types[] = { AT_TYPE_F32, AT_TYPE_F16, AT_TYPE_BF16 };

static void
test_cpy (void)
{
  static const struct {
    gint64 src_ne[4];
    int src_axes[4];
    gint64 dst_ne[4];
    int dst_axes[4];
  } cases[] = {
    { { 1, 1, 1, 1 }, { 0, 1, 2, 3 }, { 1, 1, 1, 1 }, { 0, 1, 2, 3 } },
    { { 1000, 3, 1, 1 }, { 0, 1, 2, 3 }, { 1000, 3, 1, 1 }, { 0, 1, 2, 3 } },
    /* permute + cont of attention heads: [64, 7, 5, 2] seen as [64, 5, 7, 2] */
    { { 64, 7, 5, 2 }, { 0, 2, 1, 3 }, { 64, 5, 7, 2 }, { 0, 1, 2, 3 } },
    /* a transpose */
    { { 33, 17, 3, 1 }, { 1, 0, 2, 3 }, { 17, 33, 3, 1 }, { 0, 1, 2, 3 } },
    /* all four dimensions moved */
    { { 5, 6, 7, 3 }, { 3, 2, 0, 1 }, { 7, 3, 6, 5 }, { 0, 1, 2, 3 } },
    /* a reshape: same elements, another shape */
    { { 6, 35, 1, 1 }, { 0, 1, 2, 3 }, { 5, 7, 6, 1 }, { 0, 1, 2, 3 } },
    /* into a strided dst: a contiguous tensor written through a permuted view */
    { { 17, 9, 4, 1 }, { 0, 1, 2, 3 }, { 9, 4, 17, 1 }, { 2, 0, 1, 3 } },
  };

  for (guint s = 0; s < G_N_ELEMENTS (plain_types); s++)
    for (guint d = 0; d < G_N_ELEMENTS (plain_types); d++)
      for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
        check_cpy (plain_types[s], plain_types[d], cases[i].src_ne, cases[i].src_axes,
                   cases[i].dst_ne, cases[i].dst_axes, NULL);
}

/* Rounding edges: ties to even, half subnormals, overflow, infinities, NaN, f32
 * denormals. */
static void
test_cpy_special_values (void)
{
  const float values[] = {
    0.0f, -0.0f, 1.0f, -1.0f,
    1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-11f + 0x1p-20f, /* f16 ties */
    1.0f + 0x1p-8f, -(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-8f + 0x1p-20f, /* bf16 ties */
    65504.0f, 65519.0f, 65520.0f, -70000.0f, 1e30f, 3e38f,
    INFINITY, -INFINITY, NAN, -NAN,
    0x1p-14f, 0x1p-14f - 0x1p-26f, 0x1p-24f, 0x1p-25f, -0x1p-25f, 1.5f * 0x1p-24f,
    2.5f * 0x1p-24f, 0x1p-25f + 0x1p-40f, 3e-8f, 1e-40f, -1e-40f, 6.1e-5f, 1234.567f,
  };
  const gint64 ne[4] = { G_N_ELEMENTS (values), 1, 1, 1 };

  for (guint s = 0; s < G_N_ELEMENTS (plain_types); s++)
    for (guint d = 0; d < G_N_ELEMENTS (plain_types); d++)
      check_cpy (plain_types[s], plain_types[d], ne, identity, ne, identity, values);
}

/* F32 (a view of src [src_ne] through src_axes) to a contiguous Q8_0 dst [dst_ne]. */
static void
check_cpy_q8_0 (const gint64 src_ne[4], const int src_axes[4], const gint64 dst_ne[4])
{
  gsize n = src_ne[0] * src_ne[1] * src_ne[2] * src_ne[3];
  gsize n_blocks = n / 32;
  gsize dst_size = at_type_row_size (AT_TYPE_Q8_0, (gint64) n);
  g_autoptr (AtTestTensor) src = at_test_tensor_new (AT_TYPE_F32, src_ne[0], src_ne[1],
                                                     src_ne[2], src_ne[3]);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_Q8_0, dst_ne[0], dst_ne[1],
                                                     dst_ne[2], dst_ne[3]);
  AtTensor src_view = at_tensor_permute (&src->t, src_axes[0], src_axes[1], src_axes[2],
                                         src_axes[3]);
  g_autofree float *values = at_test_random_floats (n, -3, 3);
  g_autofree guint8 *want = g_malloc (dst_size);
  g_autofree guint8 *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  gsize n_off = 0;

  /* a block of zeros, whose scale is 0 */
  memset (values, 0, 32 * sizeof (float));
  at_test_tensor_upload (src, values);
  at_test_tensor_poison (dst);
  at_op_cpy (batch, &src_view, &dst->t);
  at_test_run_batch (batch);
  got = download_raw (dst, dst_size);
  at_ref_cpy (values, AT_TYPE_F32, src_view.ne, src_view.nb, want, AT_TYPE_Q8_0, dst->t.ne,
              dst->t.nb);

  /* Vulkan does not round division correctly, so max|x| / 127 and x / d may land one
   * float ulp away from the CPU's: a scale may then be one f16 ulp off and a quant one
   * step off, rarely. */
  for (gsize b = 0; b < n_blocks; b++)
    {
      const guint8 *g = got + b * 34, *w = want + b * 34;
      guint16 got_d, want_d;

      memcpy (&got_d, g, 2);
      memcpy (&want_d, w, 2);
      g_assert_cmpint (ABS ((int) got_d - (int) want_d), <=, 1);
      for (int j = 0; j < 32; j++)
        {
          int q = (gint8) g[2 + j], q_want = (gint8) w[2 + j];
          g_assert_cmpint (ABS (q - q_want), <=, 1);
          n_off += q != q_want;
        }
    }
  g_test_message ("cpy to q8_0 [%ld,%ld,%ld,%ld]: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                  " quants one step off", (long) dst_ne[0], (long) dst_ne[1], (long) dst_ne[2],
                  (long) dst_ne[3], n_off, n);
  g_assert_cmpuint (n_off, <=, n / 100);
}

static void
test_cpy_q8_0 (void)
{
  check_cpy_q8_0 ((const gint64[4]) { 32, 1, 1, 1 }, identity, (const gint64[4]) { 32, 1, 1, 1 });
  check_cpy_q8_0 ((const gint64[4]) { 4096, 3, 1, 1 }, identity,
                  (const gint64[4]) { 4096, 3, 1, 1 });
  /* K of attention heads, permuted, quantized into a cache */
  check_cpy_q8_0 ((const gint64[4]) { 64, 7, 5, 2 }, (const int[4]) { 0, 2, 1, 3 },
                  (const gint64[4]) { 64, 5, 7, 2 });
  /* rows of the source need not be whole blocks; dst's are */
  check_cpy_q8_0 ((const gint64[4]) { 96, 5, 1, 1 }, identity,
                  (const gint64[4]) { 160, 3, 1, 1 });
}

/* A contiguous same-type cpy is a transfer copy; the dispatch after it in the same batch
 * must see its result. */
static void
test_cpy_chain (void)
{
  gsize n = 999 * 7;
  g_autoptr (AtTestTensor) a = at_test_tensor_new (AT_TYPE_F32, 999, 7, 1, 1);
  g_autoptr (AtTestTensor) b = at_test_tensor_new (AT_TYPE_F32, 7, 999, 1, 1);
  g_autoptr (AtTestTensor) c = at_test_tensor_new (AT_TYPE_F16, 999, 7, 1, 1);
  g_autofree float *values = at_test_random_floats (n, -2, 2);
  g_autofree float *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());

  at_test_tensor_upload (a, values);
  at_test_tensor_poison (b);
  at_test_tensor_poison (c);
  at_op_cpy (batch, &a->t, &b->t);
  at_op_cpy (batch, &b->t, &c->t);
  at_test_run_batch (batch);
  got = at_test_tensor_download (c);
  round_to_type (AT_TYPE_F16, values, n);
  /* the one rounding to f16 is the reference's: exact */
  at_test_assert_close ("cpy then cpy to f16", got, values, n, 0.0);
}

static void
test_cpy_bad (void)
{
  g_autoptr (AtTestTensor) a = at_test_tensor_new (AT_TYPE_F32, 8, 4, 1, 1);
  g_autoptr (AtTestTensor) b = at_test_tensor_new (AT_TYPE_F16, 8, 3, 1, 1);
  g_autoptr (AtTestTensor) q = at_test_tensor_new (AT_TYPE_Q4_0, 32, 1, 1, 1);
  g_autoptr (AtTestTensor) e = at_test_tensor_new (AT_TYPE_F32, 2, 4, 1, 1);
  g_autoptr (AtTestTensor) q8_tensor = at_test_tensor_new (AT_TYPE_Q8_0, 32, 1, 1, 1);
  AtTensor q8 = q8_tensor->t;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  AtTensor odd_view = a->t;

  at_op_cpy (batch, &a->t, &b->t);
  assert_refused (batch, "elements");
  at_op_cpy (batch, &a->t, &q->t);
  assert_refused (batch, "not supported");
  at_op_cpy (batch, &b->t, &q->t);
  assert_refused (batch, "not supported");
  q8.ne[0] = 16;
  q8.ne[1] = 2;
  at_op_cpy (batch, &a->t, &q8);
  assert_refused (batch, "whole Q8_0 blocks");
  /* a stride of one and a half floats */
  odd_view.ne[0] = 2;
  odd_view.nb[0] = 6;
  at_op_cpy (batch, &odd_view, &e->t);
  assert_refused (batch, "whole elements");
}

/* concat of a (or, with a_axes, a permuted view of a tensor) and c along dim. */
static void
check_concat (AtType type, const gint64 a_ne[4], const int a_axes[4], const gint64 c_ne[4],
              int dim)
{
  gint64 ne[4] = { c_ne[0], c_ne[1], c_ne[2], c_ne[3] };
  gint64 a_in[4];
  gsize a_n = a_ne[0] * a_ne[1] * a_ne[2] * a_ne[3];
  gsize c_n = c_ne[0] * c_ne[1] * c_ne[2] * c_ne[3];
  g_autoptr (AtTestTensor) a = NULL;
  g_autoptr (AtTestTensor) c = at_test_tensor_new (type, c_ne[0], c_ne[1], c_ne[2], c_ne[3]);
  g_autoptr (AtTestTensor) dst = NULL;
  AtTensor a_view, host, host_view, host_seen;
  g_autofree float *a_values = at_test_random_floats (a_n, -2, 2);
  g_autofree float *a_seen = g_new (float, a_n);
  g_autofree float *c_values = at_test_random_floats (c_n, -2, 2);
  g_autofree float *want = NULL;
  g_autofree float *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree char *what = NULL;

  /* a is stored with the shape that a_axes permutes into a_ne */
  for (int d = 0; d < 4; d++)
    a_in[d] = a_ne[a_axes[d]];
  a = at_test_tensor_new (type, a_in[0], a_in[1], a_in[2], a_in[3]);
  a_view = at_tensor_permute (&a->t, a_axes[0], a_axes[1], a_axes[2], a_axes[3]);
  g_assert_true (at_tensor_same_shape (&a_view, &(AtTensor) { .ne = { a_ne[0], a_ne[1],
                                                                     a_ne[2], a_ne[3] } }));
  ne[dim] += a_ne[dim];
  dst = at_test_tensor_new (type, ne[0], ne[1], ne[2], ne[3]);
  what = g_strdup_printf ("concat %s [%ld,%ld,%ld,%ld] and [%ld,%ld,%ld,%ld] along %d",
                          at_type_name (type), (long) a_ne[0], (long) a_ne[1], (long) a_ne[2],
                          (long) a_ne[3], (long) c_ne[0], (long) c_ne[1], (long) c_ne[2],
                          (long) c_ne[3], dim);

  round_to_type (type, a_values, a_n);
  round_to_type (type, c_values, c_n);
  at_test_tensor_upload (a, a_values);
  at_test_tensor_upload (c, c_values);
  at_test_tensor_poison (dst);
  at_op_concat (batch, &a_view, &c->t, &dst->t, dim);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);

  /* the reference takes a as the view shows it: the same permutation of host floats */
  host = at_tensor_make (NULL, 0, AT_TYPE_F32, a_in[0], a_in[1], a_in[2], a_in[3]);
  host_view = at_tensor_permute (&host, a_axes[0], a_axes[1], a_axes[2], a_axes[3]);
  host_seen = at_tensor_make (NULL, 0, AT_TYPE_F32, a_ne[0], a_ne[1], a_ne[2], a_ne[3]);
  at_ref_cpy (a_values, AT_TYPE_F32, host_view.ne, host_view.nb, a_seen, AT_TYPE_F32,
              host_seen.ne, host_seen.nb);
  want = g_new (float, ne[0] * ne[1] * ne[2] * ne[3]);
  at_ref_concat (a_seen, a_ne, c_values, c_ne, dim, want);
  /* a pure move of elements: exact */
  at_test_assert_close (what, got, want, ne[0] * ne[1] * ne[2] * ne[3], 0.0);
}

static void
test_concat (void)
{
  static const gint64 a_ne[4] = { 7, 5, 3, 2 };

  for (guint t = 0; t < G_N_ELEMENTS (plain_types); t++)
    for (int dim = 0; dim < 4; dim++)
      {
        gint64 c_ne[4] = { 7, 5, 3, 2 };
        c_ne[dim] = 4;
        check_concat (plain_types[t], a_ne, identity, c_ne, dim);
      }
  /* a UNet skip connection: [w, h, c, n] joined along the channels */
  check_concat (AT_TYPE_F32, (const gint64[4]) { 16, 16, 40, 1 }, identity,
                (const gint64[4]) { 16, 16, 24, 1 }, 2);
  check_concat (AT_TYPE_F32, (const gint64[4]) { 33, 9, 5, 1 }, identity,
                (const gint64[4]) { 130, 9, 5, 1 }, 0);
  /* a strided (transposed) a */
  check_concat (AT_TYPE_F32, (const gint64[4]) { 9, 13, 3, 1 }, (const int[4]) { 1, 0, 2, 3 },
                (const gint64[4]) { 9, 6, 3, 1 }, 1);
  check_concat (AT_TYPE_F16, (const gint64[4]) { 9, 13, 3, 1 }, (const int[4]) { 1, 0, 2, 3 },
                (const gint64[4]) { 11, 13, 3, 1 }, 0);
}

static void
test_concat_bad (void)
{
  g_autoptr (AtTestTensor) a = at_test_tensor_new (AT_TYPE_F32, 8, 4, 2, 1);
  g_autoptr (AtTestTensor) c = at_test_tensor_new (AT_TYPE_F32, 8, 3, 2, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, 8, 7, 2, 1);
  g_autoptr (AtTestTensor) h = at_test_tensor_new (AT_TYPE_F16, 8, 3, 2, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());

  at_op_concat (batch, &a->t, &c->t, &dst->t, 0);
  assert_refused (batch, "do not join");
  at_op_concat (batch, &a->t, &c->t, &dst->t, 2);
  assert_refused (batch, "do not join");
  at_op_concat (batch, &a->t, &c->t, &dst->t, 4);
  assert_refused (batch, "dimension 4");
  at_op_concat (batch, &a->t, &h->t, &dst->t, 1);
  assert_refused (batch, "types");
  /* the right call still works after the refusals */
  at_op_concat (batch, &a->t, &c->t, &dst->t, 1);
  at_test_run_batch (batch);
}

static void
check_upscale (const gint64 ne[4], int factor)
{
  gsize n = ne[0] * ne[1] * ne[2] * ne[3];
  gsize dst_n = n * factor * factor;
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, ne[0], ne[1], ne[2], ne[3]);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, ne[0] * factor,
                                                     ne[1] * factor, ne[2], ne[3]);
  g_autofree float *values = at_test_random_floats (n, -2, 2);
  g_autofree float *want = g_new (float, dst_n);
  g_autofree float *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree char *what = g_strdup_printf ("upscale [%ld,%ld,%ld,%ld] by %d", (long) ne[0],
                                           (long) ne[1], (long) ne[2], (long) ne[3], factor);

  at_test_tensor_upload (x, values);
  at_test_tensor_poison (dst);
  at_op_upscale_nearest (batch, &x->t, &dst->t, factor);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_upscale_nearest (values, ne, factor, want);
  /* a pure move of elements: exact */
  at_test_assert_close (what, got, want, dst_n, 0.0);
}

static void
test_upscale_nearest (void)
{
  check_upscale ((const gint64[4]) { 1, 1, 1, 1 }, 2);
  check_upscale ((const gint64[4]) { 7, 5, 3, 2 }, 2);
  check_upscale ((const gint64[4]) { 16, 16, 20, 1 }, 2);
  check_upscale ((const gint64[4]) { 3, 5, 2, 1 }, 3);
  check_upscale ((const gint64[4]) { 9, 4, 3, 1 }, 1);
}

/* To a size that is no multiple of x's: the UNet's Upsample meeting an odd skip tensor
 * (ceil (9 / 2) = 5 back up to 9), and a shrink, which the same rule covers. */
static void
check_upscale_to (const gint64 ne[4], gint64 w, gint64 h)
{
  gsize n = ne[0] * ne[1] * ne[2] * ne[3], dst_n = w * h * ne[2] * ne[3];
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, ne[0], ne[1], ne[2], ne[3]);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, w, h, ne[2], ne[3]);
  g_autofree float *values = at_test_random_floats (n, -2, 2);
  g_autofree float *want = g_new (float, dst_n);
  g_autofree float *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree char *what = g_strdup_printf ("upscale [%ld,%ld] to [%ld,%ld]", (long) ne[0],
                                           (long) ne[1], (long) w, (long) h);

  at_test_tensor_upload (x, values);
  at_test_tensor_poison (dst);
  at_op_upscale_nearest_to (batch, &x->t, &dst->t);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_upscale_nearest_to (values, ne, w, h, want);
  at_test_assert_close (what, got, want, dst_n, 0.0);
}

static void
test_upscale_nearest_to (void)
{
  /* PyTorch's nearest from 5 to 9: sources 0 0 1 1 2 2 3 3 4. */
  const float row[5] = { 10, 11, 12, 13, 14 };
  const float expected[9] = { 10, 10, 11, 11, 12, 12, 13, 13, 14 };
  float got[9];

  at_ref_upscale_nearest_to (row, (const gint64[4]) { 5, 1, 1, 1 }, 9, 1, got);
  g_assert_cmpmem (got, sizeof got, expected, sizeof expected);
  check_upscale_to ((const gint64[4]) { 5, 4, 3, 2 }, 9, 7);
  check_upscale_to ((const gint64[4]) { 3, 2, 5, 1 }, 5, 4);
  check_upscale_to ((const gint64[4]) { 7, 6, 2, 1 }, 3, 13);
}

static void
test_upscale_bad (void)
{
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, 4, 3, 2, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, 8, 6, 2, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());

  at_op_upscale_nearest (batch, &x->t, &dst->t, 3);
  assert_refused (batch, "does not give");
  at_op_upscale_nearest (batch, &x->t, &dst->t, 0);
  assert_refused (batch, "factor");
}

static void
check_timestep_embedding (const float *timesteps, gint64 n, int dim, int max_period,
                          double tolerance)
{
  g_autoptr (AtTestTensor) t = at_test_tensor_new (AT_TYPE_F32, n, 1, 1, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, dim, n, 1, 1);
  g_autofree float *want = g_new (float, dim * n);
  g_autofree float *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree char *what = g_strdup_printf ("timestep_embedding of %ld timesteps, dim %d, "
                                           "max_period %d", (long) n, dim, max_period);

  at_test_tensor_upload (t, timesteps);
  at_test_tensor_poison (dst);
  at_op_timestep_embedding (batch, &t->t, &dst->t, dim, max_period);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_timestep_embedding (timesteps, n, dim, max_period, want);
  at_test_assert_close (what, got, want, dim * n, tolerance);
  if (dim % 2 != 0)
    for (gint64 i = 0; i < n; i++)
      g_assert_cmpfloat (got[i * dim + dim - 1], ==, 0.0f);
}

static void
test_timestep_embedding (void)
{
  const float sd_steps[] = { 999, 979, 500.5f, 1, 0 };
  g_autofree float *small = at_test_random_floats (3, 0, 1);
  g_autofree float *large = at_test_random_floats (7, 0, 1000);

  /* Timesteps below 1: angles below 1 rad, where float sin/cos and exp lose only a few
   * ulps. */
  check_timestep_embedding (small, 3, 320, 10000, 1e-6);
  check_timestep_embedding (small, 3, 7, 10000, 1e-6);
  /* SD's range (t up to 999): the angle t * freq in f32 -- as PyTorch and ggml compute
   * it -- is off by up to t * 2^-24 (6e-5 rad at 999) from the exact one of the double
   * reference, plus a few ulps of exp2 magnified by t; that bounds the error. */
  check_timestep_embedding (sd_steps, G_N_ELEMENTS (sd_steps), 320, 10000, 1e-4);
  check_timestep_embedding (large, 7, 256, 10000, 1e-4);
  check_timestep_embedding (large, 7, 33, 100, 1e-4);
}

static void
test_timestep_embedding_bad (void)
{
  g_autoptr (AtTestTensor) t = at_test_tensor_new (AT_TYPE_F32, 3, 1, 1, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, 8, 3, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());

  at_op_timestep_embedding (batch, &t->t, &dst->t, 9, 10000);
  assert_refused (batch, "do not fill");
  at_op_timestep_embedding (batch, &t->t, &dst->t, 8, 0);
  assert_refused (batch, "out of range");
}

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  g_test_add_func ("/ops/binary/add", test_add);
  g_test_add_func ("/ops/binary/mul", test_mul);
  g_test_add_func ("/ops/binary/add-channel-bias", test_add_channel_bias);
  g_test_add_func ("/ops/binary/bad-broadcast", test_bad_broadcast);
  g_test_add_func ("/ops/cpy/types-and-views", test_cpy);
  g_test_add_func ("/ops/cpy/special-values", test_cpy_special_values);
  g_test_add_func ("/ops/cpy/q8_0", test_cpy_q8_0);
  g_test_add_func ("/ops/cpy/chain", test_cpy_chain);
  g_test_add_func ("/ops/cpy/bad", test_cpy_bad);
  g_test_add_func ("/ops/concat/dims", test_concat);
  g_test_add_func ("/ops/concat/bad", test_concat_bad);
  g_test_add_func ("/ops/upscale-nearest/factors", test_upscale_nearest);
  g_test_add_func ("/ops/upscale-nearest/to-size", test_upscale_nearest_to);
  g_test_add_func ("/ops/upscale-nearest/bad", test_upscale_bad);
  g_test_add_func ("/ops/timestep-embedding/sd", test_timestep_embedding);
  g_test_add_func ("/ops/timestep-embedding/bad", test_timestep_embedding_bad);
  return at_test_run ();
}
