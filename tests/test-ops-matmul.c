/* GPU vs CPU reference: mat-mul and conv2d. */
#include "at-test.h"
#include "ops/at-ops-matmul.h"
#include "ref/at-ref.h"
#include "ref/at-ref-matmul.h"

/* The GPU and the reference see the same inputs (weights after the codec's round trip,
 * activations after rounding to F16 where x is F16) and both accumulate products of
 * floats, the GPU in F32: what is left is F32 rounding of sums of up to a few thousand
 * terms, ~1e-7 per term, relative. */
#define TOLERANCE 1e-5

/* Whether the CPU codec (and so the test's upload) knows the type yet. */
static gboolean
has_codec (AtType type)
{
  float zeros[256] = { 0 };
  guint8 bytes[sizeof zeros];

  return at_ref_quantize_row (type, zeros, bytes, at_type_info (type)->block_size);
}

/* Uploads random values in [-1, 1) and returns what the GPU sees: the values after the
 * round trip through the tensor's type. */
static float *
upload_random (AtTestTensor *tensor)
{
  g_autofree float *values = at_test_random_floats (at_tensor_n_elements (&tensor->t), -1, 1);

  at_test_tensor_upload (tensor, values);
  return at_test_tensor_download (tensor);
}

static void
expect_invalid (AtBatch *batch, const char *message_part)
{
  g_autoptr (GError) error = NULL;

  g_assert_false (at_batch_run (batch, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, message_part));
}

/* --- mul_mat -------------------------------------------------------------------------- */

static void
check_mul_mat (AtType w_type, AtType x_type, const gint64 w_ne[4], const gint64 x_ne[4])
{
  const gint64 d_ne[4] = { w_ne[1], x_ne[1], x_ne[2], x_ne[3] };
  const gsize d_n = d_ne[0] * d_ne[1] * d_ne[2] * d_ne[3];
  g_autoptr (AtTestTensor) w = at_test_tensor_new (w_type, w_ne[0], w_ne[1], w_ne[2], w_ne[3]);
  g_autoptr (AtTestTensor) x = at_test_tensor_new (x_type, x_ne[0], x_ne[1], x_ne[2], x_ne[3]);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, d_ne[0], d_ne[1], d_ne[2],
                                                     d_ne[3]);
  g_autofree float *w_values = upload_random (w);
  g_autofree float *x_values = upload_random (x);
  g_autofree float *want = g_new (float, d_n);
  g_autofree float *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree char *w_text = at_tensor_describe (&w->t);
  g_autofree char *x_text = at_tensor_describe (&x->t);
  g_autofree char *what = g_strdup_printf ("mul_mat %s by %s", w_text, x_text);

  at_test_tensor_poison (dst);
  at_op_mul_mat (batch, &w->t, &x->t, &dst->t);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_mul_mat_batched (w_values, w_ne, x_values, x_ne, want);
  at_test_assert_close (what, got, want, d_n, TOLERANCE);
}

/* [k, m, n]; k a multiple of 256 so that every weight type takes them. */
static const gint64 block_shapes[][3] = {
  { 256, 64, 17 },
  { 512, 100, 33 },
};

/* For plain types: sizes that are neither multiples of the tiles nor of 4. */
static const gint64 plain_shapes[][3] = {
  { 96, 7, 130 },
  { 37, 9, 11 },
  { 1, 1, 1 },
};

/* One test per weight type: every shape with F32 and F16 activations. */
static void
test_mul_mat_type (gconstpointer data)
{
  const AtType type = GPOINTER_TO_INT (data);
  const AtType x_types[] = { AT_TYPE_F32, AT_TYPE_F16 };

  if (!at_op_mul_mat_supports (type))
    {
      g_test_skip ("no mul_mat shader for this type");
      return;
    }
  if (!has_codec (type))
    {
      g_test_skip ("no CPU codec for this type");
      return;
    }
  for (guint t = 0; t < G_N_ELEMENTS (x_types); t++)
    {
      for (guint i = 0; i < G_N_ELEMENTS (block_shapes); i++)
        {
          const gint64 *s = block_shapes[i];
          check_mul_mat (type, x_types[t], (gint64[]) { s[0], s[1], 1, 1 },
                         (gint64[]) { s[0], s[2], 1, 1 });
        }
      for (guint i = 0; i < G_N_ELEMENTS (plain_shapes) && !at_type_is_quantized (type); i++)
        {
          const gint64 *s = plain_shapes[i];
          check_mul_mat (type, x_types[t], (gint64[]) { s[0], s[1], 1, 1 },
                         (gint64[]) { s[0], s[2], 1, 1 });
        }
    }
}

/* Attention-style batched products: w's batches broadcast over x's. */
static void
test_mul_mat_broadcast (void)
{
  const AtType types[] = { AT_TYPE_F32, AT_TYPE_F16 };

  for (guint w = 0; w < G_N_ELEMENTS (types); w++)
    for (guint x = 0; x < G_N_ELEMENTS (types); x++)
      {
        check_mul_mat (types[w], types[x], (gint64[]) { 64, 33, 4, 1 },
                       (gint64[]) { 64, 20, 8, 1 });
        check_mul_mat (types[w], types[x], (gint64[]) { 30, 5, 1, 2 },
                       (gint64[]) { 30, 9, 3, 4 });
      }
}

/* Shapes large enough for the bigger tile sizes. */
static void
test_mul_mat_tiles (void)
{
  check_mul_mat (AT_TYPE_F32, AT_TYPE_F32, (gint64[]) { 32, 700, 1, 1 },
                 (gint64[]) { 32, 720, 1, 1 });
  check_mul_mat (AT_TYPE_F16, AT_TYPE_F32, (gint64[]) { 32, 1501, 1, 1 },
                 (gint64[]) { 32, 1500, 1, 1 });
}

/* Views: x and dst rows inside wider rows, x starting off a 4-element boundary. */
static void
test_mul_mat_strided (void)
{
  const gint64 k = 64, m = 33, n = 20;
  g_autoptr (AtTestTensor) w = at_test_tensor_new (AT_TYPE_F32, k, m, 1, 1);
  g_autoptr (AtTestTensor) x_wide = at_test_tensor_new (AT_TYPE_F32, k + 3, n, 1, 1);
  g_autoptr (AtTestTensor) d_wide = at_test_tensor_new (AT_TYPE_F32, m + 7, n, 1, 1);
  g_autofree float *w_values = upload_random (w);
  g_autofree float *x_wide_values = upload_random (x_wide);
  g_autofree float *x_values = g_new (float, k * n);
  g_autofree float *want = g_new (float, m * n);
  g_autofree float *got = g_new (float, m * n);
  g_autofree float *d_wide_values = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  AtTensor x = x_wide->t, dst = d_wide->t;

  x.offset = 4;
  x.ne[0] = k;
  dst.ne[0] = m;
  for (gint64 j = 0; j < n; j++)
    memcpy (x_values + j * k, x_wide_values + j * (k + 3) + 1, k * sizeof (float));

  at_test_tensor_poison (d_wide);
  at_op_mul_mat (batch, &w->t, &x, &dst);
  at_test_run_batch (batch);
  d_wide_values = at_test_tensor_download (d_wide);
  for (gint64 j = 0; j < n; j++)
    memcpy (got + j * m, d_wide_values + j * (m + 7), m * sizeof (float));
  at_ref_mul_mat_batched (w_values, w->t.ne, x_values, (gint64[]) { k, n, 1, 1 }, want);
  at_test_assert_close ("mul_mat strided views", got, want, m * n, TOLERANCE);
}

/* A weight matrix past the device's storage buffer range is bound in row ranges. Its
 * rows repeat a band of a prime number of random rows, so that a misplaced range shows
 * (and the CPU only quantizes and multiplies the band). */
static void
test_mul_mat_split (void)
{
  const gint64 k = 1024, n = 3, band = 61;
  const guint64 range = at_gpu_get_info (at_test_gpu ())->max_storage_buffer_range;
  const gint64 m = (gint64) (range / (k * sizeof (float))) + 100;
  const gsize row_size = k * sizeof (float);
  g_autoptr (AtTestTensor) w = at_test_tensor_new (AT_TYPE_F32, k, m, 1, 1);
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, k, n, 1, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, m, n, 1, 1);
  g_autofree float *w_band = at_test_random_floats (k * band, -1, 1);
  g_autofree float *x_values = upload_random (x);
  g_autofree guint8 *w_bytes = g_malloc (row_size * m);
  g_autofree float *band_want = g_new (float, band * n);
  g_autofree float *want = g_new (float, m * n);
  g_autofree float *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());

  g_assert_cmpuint (at_tensor_extent (&w->t), >, range);
  for (gint64 r = 0; r < m; r++)
    memcpy (w_bytes + r * row_size, w_band + (r % band) * k, row_size);
  at_test_tensor_upload_raw (w, w_bytes, row_size * m);
  at_test_tensor_poison (dst);
  at_op_mul_mat (batch, &w->t, &x->t, &dst->t);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_mul_mat_batched (w_band, (gint64[]) { k, band, 1, 1 }, x_values,
                          (gint64[]) { k, n, 1, 1 }, band_want);
  for (gint64 j = 0; j < n; j++)
    for (gint64 i = 0; i < m; i++)
      want[j * m + i] = band_want[j * band + i % band];
  at_test_assert_close ("mul_mat split weights", got, want, m * n, TOLERANCE);
}

static void
test_mul_mat_bad (void)
{
  g_autoptr (AtTestTensor) w = at_test_tensor_new (AT_TYPE_F32, 64, 8, 2, 1);
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, 64, 5, 3, 1);
  g_autoptr (AtTestTensor) x2 = at_test_tensor_new (AT_TYPE_F32, 64, 5, 4, 1);
  g_autoptr (AtTestTensor) x_short = at_test_tensor_new (AT_TYPE_F32, 32, 5, 4, 1);
  g_autoptr (AtTestTensor) x_int = at_test_tensor_new (AT_TYPE_I32, 64, 5, 4, 1);
  g_autoptr (AtTestTensor) w_int = at_test_tensor_new (AT_TYPE_I32, 64, 8, 2, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, 8, 5, 4, 1);
  g_autoptr (AtTestTensor) dst_wrong = at_test_tensor_new (AT_TYPE_F32, 5, 8, 4, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());

  at_op_mul_mat (batch, &w->t, &x->t, &dst->t); /* 3 batches over 2 */
  expect_invalid (batch, "do not match");
  at_op_mul_mat (batch, &w->t, &x_short->t, &dst->t);
  expect_invalid (batch, "do not match");
  at_op_mul_mat (batch, &w->t, &x2->t, &dst_wrong->t);
  expect_invalid (batch, "dst");
  at_op_mul_mat (batch, &w->t, &x_int->t, &dst->t);
  expect_invalid (batch, "F32 or F16");
  at_op_mul_mat (batch, &w_int->t, &x2->t, &dst->t);
  expect_invalid (batch, "not supported");
  at_op_mul_mat (batch, &w->t, &x2->t, &dst->t);
  at_test_run_batch (batch);
}

/* --- conv2d --------------------------------------------------------------------------- */

typedef struct {
  gint64 w, h, c_in, n;
  gint64 c_out, kernel;
  int stride, padding;
  AtType weight_type;
  gboolean bias;
} ConvCase;

/* pad_end: the padding after each inner dimension (c->padding before it). */
static void
check_conv2d (const ConvCase *c, int pad_end)
{
  const gint64 w_out = (c->w + c->padding + pad_end - c->kernel) / c->stride + 1;
  const gint64 h_out = (c->h + c->padding + pad_end - c->kernel) / c->stride + 1;
  const gint64 weight_ne[4] = { c->kernel, c->kernel, c->c_in, c->c_out };
  const gint64 x_ne[4] = { c->w, c->h, c->c_in, c->n };
  const gsize d_n = w_out * h_out * c->c_out * c->n;
  g_autoptr (AtTestTensor) weight = at_test_tensor_new (c->weight_type, c->kernel, c->kernel,
                                                        c->c_in, c->c_out);
  g_autoptr (AtTestTensor) bias = at_test_tensor_new (AT_TYPE_F32, c->c_out, 1, 1, 1);
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, c->w, c->h, c->c_in, c->n);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, w_out, h_out, c->c_out,
                                                     c->n);
  g_autofree float *weight_values = upload_random (weight);
  g_autofree float *bias_values = upload_random (bias);
  g_autofree float *x_values = upload_random (x);
  g_autofree float *want = g_new (float, d_n);
  g_autofree float *got = NULL;
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree char *what = g_strdup_printf (
    "conv2d %s %ldx%ld stride %d padding %d, %d, x [%ld, %ld, %ld, %ld] to %ld channels%s",
    at_type_name (c->weight_type), (long) c->kernel, (long) c->kernel, c->stride, c->padding,
    pad_end, (long) c->w, (long) c->h, (long) c->c_in, (long) c->n, (long) c->c_out,
    c->bias ? " + bias" : "");

  at_test_tensor_poison (dst);
  if (pad_end == c->padding)
    at_op_conv2d (batch, &weight->t, c->bias ? &bias->t : NULL, &x->t, &dst->t, c->stride,
                  c->padding);
  else
    at_op_conv2d_padded (batch, &weight->t, c->bias ? &bias->t : NULL, &x->t, &dst->t,
                         c->stride, c->padding, pad_end);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_conv2d_padded (weight_values, weight_ne, c->bias ? bias_values : NULL, x_values, x_ne,
                        want, c->stride, c->padding, pad_end);
  at_test_assert_close (what, got, want, d_n, TOLERANCE);
}

static void
test_conv2d (void)
{
  /* Stable-diffusion-like layers at lavapipe sizes, odd sizes where it matters. */
  static const ConvCase cases[] = {
    { 16, 16, 4, 1, 32, 3, 1, 1, AT_TYPE_F32, TRUE },   /* conv_in */
    { 15, 9, 5, 2, 7, 3, 2, 1, AT_TYPE_F16, TRUE },     /* downsample, odd sizes */
    { 9, 9, 6, 1, 10, 3, 2, 0, AT_TYPE_F32, FALSE },
    { 10, 6, 8, 2, 12, 1, 1, 0, AT_TYPE_F16, FALSE },   /* 1x1 projection */
    { 7, 5, 3, 1, 4, 1, 2, 1, AT_TYPE_F32, TRUE },      /* 1x1, padded, strided */
    { 8, 8, 320, 1, 320, 3, 1, 1, AT_TYPE_F16, TRUE },  /* a UNet block's channels */
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_conv2d (&cases[i], cases[i].padding);
}

/* The LDM VAE's downsample: no padding before, one after. The reference itself is checked
 * against a convolution of the input with its zero row and column written out. */
static void
test_conv2d_padded (void)
{
  static const ConvCase cases[] = {
    { 16, 10, 8, 1, 8, 3, 2, 0, AT_TYPE_F32, TRUE },
    { 15, 9, 5, 2, 7, 3, 2, 0, AT_TYPE_F16, FALSE }, /* odd sizes */
    { 6, 7, 4, 1, 4, 3, 1, 2, AT_TYPE_F32, TRUE },   /* more before than after */
  };
  const gint64 weight_ne[4] = { 3, 3, 2, 3 }, x_ne[4] = { 5, 4, 2, 1 };
  const gint64 padded_ne[4] = { 6, 5, 2, 1 };
  g_autofree float *weight = at_test_random_floats (3 * 3 * 2 * 3, -1, 1);
  g_autofree float *x = at_test_random_floats (5 * 4 * 2, -1, 1);
  float padded[6 * 5 * 2] = { 0 }, got[2 * 2 * 3], want[2 * 2 * 3];

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    check_conv2d (&cases[i], cases[i].padding == 0 ? 1 : 0);

  for (gint64 c = 0; c < 2; c++)
    for (gint64 y = 0; y < 4; y++)
      memcpy (padded + (c * 5 + y) * 6, x + (c * 4 + y) * 5, 5 * sizeof (float));
  at_ref_conv2d_padded (weight, weight_ne, NULL, x, x_ne, got, 2, 0, 1);
  at_ref_conv2d (weight, weight_ne, NULL, padded, padded_ne, want, 2, 0);
  at_test_assert_close ("reference conv2d padded 0, 1", got, want, G_N_ELEMENTS (want), 1e-6);
}

static void
test_conv2d_bad (void)
{
  g_autoptr (AtTestTensor) weight = at_test_tensor_new (AT_TYPE_F32, 3, 3, 4, 8);
  g_autoptr (AtTestTensor) weight_int = at_test_tensor_new (AT_TYPE_I32, 3, 3, 4, 8);
  g_autoptr (AtTestTensor) bias_wrong = at_test_tensor_new (AT_TYPE_F32, 7, 1, 1, 1);
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, 10, 6, 4, 1);
  g_autoptr (AtTestTensor) x_wrong = at_test_tensor_new (AT_TYPE_F32, 10, 6, 5, 1);
  g_autoptr (AtTestTensor) x_tiny = at_test_tensor_new (AT_TYPE_F32, 1, 1, 4, 1);
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, 10, 6, 8, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());

  at_op_conv2d (batch, &weight->t, NULL, &x_wrong->t, &dst->t, 1, 1);
  expect_invalid (batch, "does not fit");
  at_op_conv2d (batch, &weight->t, NULL, &x_tiny->t, &dst->t, 1, 0);
  expect_invalid (batch, "does not fit");
  at_op_conv2d (batch, &weight->t, NULL, &x->t, &dst->t, 0, 1);
  expect_invalid (batch, "stride");
  at_op_conv2d (batch, &weight->t, NULL, &x->t, &dst->t, 2, 1);
  expect_invalid (batch, "should be [5, 3, 8, 1]");
  at_op_conv2d (batch, &weight->t, &bias_wrong->t, &x->t, &dst->t, 1, 1);
  expect_invalid (batch, "bias");
  at_op_conv2d (batch, &weight_int->t, NULL, &x->t, &dst->t, 1, 1);
  expect_invalid (batch, "F32 or F16");
  at_op_conv2d (batch, &weight->t, NULL, &x->t, &dst->t, 1, 1);
  at_test_run_batch (batch);
}

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  for (guint i = 0; i < at_n_all_types; i++)
    if (at_type_is_weight (at_all_types[i]))
      {
        g_autofree char *path = g_strdup_printf ("/ops/mul-mat/%s",
                                                 at_type_name (at_all_types[i]));
        g_test_add_data_func (path, GINT_TO_POINTER (at_all_types[i]), test_mul_mat_type);
      }
  g_test_add_func ("/ops/mul-mat/broadcast", test_mul_mat_broadcast);
  g_test_add_func ("/ops/mul-mat/tiles", test_mul_mat_tiles);
  g_test_add_func ("/ops/mul-mat/strided", test_mul_mat_strided);
  g_test_add_func ("/ops/mul-mat/split", test_mul_mat_split);
  g_test_add_func ("/ops/mul-mat/bad", test_mul_mat_bad);
  g_test_add_func ("/ops/conv2d/shapes", test_conv2d);
  g_test_add_func ("/ops/conv2d/padded", test_conv2d_padded);
  g_test_add_func ("/ops/conv2d/bad", test_conv2d_bad);
  return at_test_run ();
}
