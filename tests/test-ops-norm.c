/* GPU vs CPU reference: norms, activations, softmax, rope. */
#include "at-test.h"
#include "ops/at-ops-norm.h"
#include "ref/at-ref-norm.h"
#include "ref/at-ref.h"

#include <math.h>

/* An F32 input filled with random values, as a contiguous tensor or as a strided view
 * (rows padded by 3 elements, starting one element into its buffer) of a larger one.
 * values holds the view's elements contiguously, for the reference. */
typedef struct {
  AtTestTensor *storage;
  AtTensor t;
  float *values;
} Input;

static void
input_clear (Input *in)
{
  g_clear_pointer (&in->storage, at_test_tensor_free);
  g_clear_pointer (&in->values, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Input, input_clear)

static void
input_init (Input *in, const gint64 ne[4], gboolean strided, float lo, float hi)
{
  gint64 pad = strided ? 3 : 0;
  gint64 n = ne[0] * ne[1] * ne[2] * ne[3];
  gint64 n_storage = (ne[0] + pad) * ne[1] * ne[2] * ne[3];
  g_autofree float *all = at_test_random_floats (n_storage, lo, hi);

  in->storage = at_test_tensor_new (AT_TYPE_F32, ne[0] + pad, ne[1], ne[2], ne[3]);
  at_test_tensor_upload (in->storage, all);
  in->t = in->storage->t;
  in->t.ne[0] = ne[0];
  in->values = g_new (float, MAX (n, 1));
  for (gint64 r = 0; r < n / MAX (ne[0], 1); r++)
    memcpy (in->values + r * ne[0], all + r * (ne[0] + pad) + (strided ? 1 : 0),
            ne[0] * sizeof (float));
  if (strided)
    in->t.offset += 4;
}

/* A weight in [0.5, 1.5) and a bias in [-1, 1), n elements each. */
static void
affine_init (Input *weight, Input *bias, gint64 n)
{
  const gint64 ne[4] = { n, 1, 1, 1 };

  input_init (weight, ne, FALSE, 0.5, 1.5);
  input_init (bias, ne, FALSE, -1, 1);
}

static AtTestTensor *
output_new (AtType type, const gint64 ne[4])
{
  AtTestTensor *dst = at_test_tensor_new (type, ne[0], ne[1], ne[2], ne[3]);

  at_test_tensor_poison (dst);
  return dst;
}

static char *
describe (const char *name, const gint64 ne[4], gboolean strided)
{
  return g_strdup_printf ("%s [%ld,%ld,%ld,%ld]%s%s", name, (long) ne[0], (long) ne[1],
                          (long) ne[2], (long) ne[3], strided ? " strided" : "",
                          g_getenv ("ATELIER_DISABLE_SUBGROUP_ARITHMETIC") ? " (no subgroups)"
                                                                            : "");
}

/* Runs test once with each reduction variant the device can take. */
static void
with_each_reduction (void (*test) (void))
{
  test ();
  if (at_gpu_get_info (at_test_gpu ())->subgroup_arithmetic)
    {
      g_setenv ("ATELIER_DISABLE_SUBGROUP_ARITHMETIC", "1", TRUE);
      test ();
      g_unsetenv ("ATELIER_DISABLE_SUBGROUP_ARITHMETIC");
    }
}

static void
expect_invalid (AtBatch *batch, const char *fragment)
{
  g_autoptr (GError) error = NULL;

  g_assert_false (at_batch_run (batch, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  if (strstr (error->message, fragment) == NULL)
    g_error ("expected \"%s\" in \"%s\"", fragment, error->message);
}

/* --- Row norms --- */

static const gint64 row_shapes[][4] = {
  { 1, 1, 1, 1 }, { 3, 5, 1, 1 }, { 100, 4, 1, 1 }, { 257, 3, 1, 1 },
  { 1000, 2, 1, 1 }, { 4097, 2, 1, 1 }, { 64, 3, 2, 2 },
};

static void
check_row_norm (gboolean layer, const gint64 ne[4], gboolean strided, gboolean affine)
{
  gint64 n = ne[0] * ne[1] * ne[2] * ne[3];
  g_auto (Input) x = { 0 };
  g_auto (Input) w = { 0 };
  g_auto (Input) b = { 0 };
  g_autoptr (AtTestTensor) dst = output_new (AT_TYPE_F32, ne);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *want = g_new (float, n);
  g_autofree float *got = NULL;
  g_autofree char *what = describe (layer ? "layer_norm" : "rms_norm", ne, strided);
  const float eps = 1e-5f;

  /* An offset mean makes layer norm's mean subtraction matter. */
  input_init (&x, ne, strided, -1, 3);
  affine_init (&w, &b, ne[0]);
  if (layer)
    {
      at_op_layer_norm (batch, &x.t, affine ? &w.t : NULL, affine ? &b.t : NULL, &dst->t,
                        eps);
      at_ref_layer_norm (x.values, ne[0], n / ne[0], affine ? w.values : NULL,
                         affine ? b.values : NULL, eps, want);
    }
  else
    {
      at_op_rms_norm (batch, &x.t, affine ? &w.t : NULL, &dst->t, eps);
      at_ref_rms_norm (x.values, ne[0], n / ne[0], affine ? w.values : NULL, eps, want);
    }
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  /* F32 sums of up to 4097 terms over a few partial sums and a tree: errors of a few
   * ulp in the scale, far under 1e-5. (A single-element row of layer norm is all
   * zeros plus bias; with no bias, both sides are exactly 0 and the check is the NaN
   * check only.) */
  at_test_assert_close (what, got, want, n, 1e-5);
}

static void
test_rms_norm_once (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (row_shapes); i++)
    {
      check_row_norm (FALSE, row_shapes[i], FALSE, TRUE);
      check_row_norm (FALSE, row_shapes[i], i % 2 == 1, i % 3 == 0);
    }
}

static void
test_layer_norm_once (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (row_shapes); i++)
    {
      check_row_norm (TRUE, row_shapes[i], FALSE, TRUE);
      check_row_norm (TRUE, row_shapes[i], i % 2 == 1, i % 3 == 0);
    }
}

static void
test_rms_norm (void)
{
  with_each_reduction (test_rms_norm_once);
}

static void
test_layer_norm (void)
{
  with_each_reduction (test_layer_norm_once);
}

/* --- Group norm --- */

static void
check_group_norm (const gint64 ne[4], int n_groups, gboolean affine, gboolean fuse_silu)
{
  gint64 n = ne[0] * ne[1] * ne[2] * ne[3];
  g_auto (Input) x = { 0 };
  g_auto (Input) w = { 0 };
  g_auto (Input) b = { 0 };
  g_autoptr (AtTestTensor) dst = output_new (AT_TYPE_F32, ne);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *want = g_new (float, n);
  g_autofree float *got = NULL;
  g_autofree char *what = describe (fuse_silu ? "group_norm+silu" : "group_norm", ne, FALSE);

  input_init (&x, ne, FALSE, -2, 4);
  affine_init (&w, &b, ne[2]);
  at_op_group_norm (batch, &x.t, affine ? &w.t : NULL, affine ? &b.t : NULL, &dst->t,
                    n_groups, 1e-6f, fuse_silu);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_group_norm (x.values, ne, affine ? w.values : NULL, affine ? b.values : NULL,
                     n_groups, 1e-6f, fuse_silu, want);
  /* As for the row norms: F32 sums, a few ulp. */
  at_test_assert_close (what, got, want, n, 1e-5);
}

static void
test_group_norm_once (void)
{
  /* Stable Diffusion's 32 groups, odd planes, one channel per group, a big group. */
  static const gint64 shapes[][4] = {
    { 8, 8, 64, 2 }, { 5, 3, 6, 1 }, { 7, 9, 32, 1 }, { 32, 32, 64, 1 },
  };
  static const int groups[] = { 32, 3, 32, 2 };

  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
    {
      check_group_norm (shapes[i], groups[i], TRUE, FALSE);
      check_group_norm (shapes[i], groups[i], i % 2 == 0, TRUE);
    }
}

static void
test_group_norm (void)
{
  with_each_reduction (test_group_norm_once);
}

/* --- Scale and unary activations --- */

static const gint64 elementwise_shapes[][4] = {
  { 1, 1, 1, 1 }, { 3, 1, 1, 1 }, { 100, 2, 1, 1 }, { 257, 3, 1, 1 },
  { 1000, 1, 1, 1 }, { 4097, 1, 1, 1 }, { 33, 5, 3, 2 },
};

static void
test_scale (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (elementwise_shapes); i++)
    {
      const gint64 *ne = elementwise_shapes[i];
      gint64 n = ne[0] * ne[1] * ne[2] * ne[3];
      gboolean strided = i % 2 == 1;
      g_auto (Input) x = { 0 };
      g_autoptr (AtTestTensor) dst = output_new (AT_TYPE_F32, ne);
      g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
      g_autofree float *want = g_new (float, n);
      g_autofree float *twice = g_new (float, n);
      g_autofree float *got = NULL;
      g_autofree float *got_in_place = NULL;
      g_autofree char *what = describe ("scale", ne, strided);

      input_init (&x, ne, strided, -4, 4);
      at_op_scale (batch, &x.t, &dst->t, 0.125f, -0.5f);
      /* In place, on the (contiguous) result; the bias keeps results in [1, 4], away
       * from zero, where one element's relative error would measure cancellation. */
      at_op_scale (batch, &dst->t, &dst->t, 3.0f, 4.0f);
      at_test_run_batch (batch);
      got_in_place = at_test_tensor_download (dst);
      at_ref_scale (x.values, n, 0.125f, -0.5f, want);
      at_ref_scale (want, n, 3.0f, 4.0f, twice);
      /* One multiply-add per element (a fused one on some devices): rounding only. */
      at_test_assert_close (what, got_in_place, twice, n, 1e-6);
    }
}

static void
check_unary (AtUnaryOp op, const char *name, const gint64 ne[4], gboolean strided,
             float lo, float hi)
{
  gint64 n = ne[0] * ne[1] * ne[2] * ne[3];
  g_auto (Input) x = { 0 };
  g_autoptr (AtTestTensor) dst = output_new (AT_TYPE_F32, ne);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *want = g_new (float, n);
  g_autofree float *got = NULL;
  g_autofree char *what = describe (name, ne, strided);

  input_init (&x, ne, strided, lo, hi);
  at_op_unary (batch, op, &x.t, &dst->t);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_unary (op, x.values, n, want);
  /* exp and a division in F32 (and erf's 1.2e-7 fit): a few ulp per element, plus
   * the exponent's rounding, |exponent| ulp relative, which in the negative tails
   * grows to ~5e-6 at x = -6 for the tanh GELU's 2u (tail accuracy of the exact GELU
   * has its own test below). */
  at_test_assert_close (what, got, want, n, 1e-5);
}

static void
test_unary (void)
{
  static const char *const names[] = { "silu", "gelu", "gelu_erf", "gelu_quick", "relu", "tanh" };

  for (guint op = 0; op < G_N_ELEMENTS (names); op++)
    for (guint i = 0; i < G_N_ELEMENTS (elementwise_shapes); i++)
      check_unary (op, names[op], elementwise_shapes[i], i % 2 == 0, -6, 6);
}

/* The exact GELU element by element, down its negative tail where 1 + erf -> 0: an
 * L2 comparison would hide the small values there. */
static void
test_gelu_erf_tail (void)
{
  const gint64 n = 2001;
  const gint64 ne[4] = { n, 1, 1, 1 };
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, n, 1, 1, 1);
  g_autoptr (AtTestTensor) dst = output_new (AT_TYPE_F32, ne);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *values = g_new (float, n);
  g_autofree float *got = NULL;

  for (gint64 i = 0; i < n; i++)
    values[i] = -10.0f + 20.0f * (float) i / (float) (n - 1);
  at_test_tensor_upload (x, values);
  at_op_unary (batch, AT_UNARY_GELU_ERF, &x->t, &dst->t);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  for (gint64 i = 0; i < n; i++)
    {
      double want = 0.5 * values[i] * erfc (-values[i] / sqrt (2));
      /* The erfc fit is good to 1.2e-7 relative; exp(-z^2) of a rounded z^2 (up to 50)
       * adds up to ~6e-6 relative in the far tail. */
      if (fabs (got[i] - want) > 1e-5 * fabs (want) + 1e-30)
        g_error ("gelu_erf(%.7g) = %.9g, want %.9g", values[i], got[i], want);
    }
}

/* --- Gated units --- */

static void
check_glu (AtGluOp op, const gint64 ne[4], gboolean split, gboolean strided)
{
  gint64 n = ne[0] * ne[1] * ne[2] * ne[3];
  const gint64 x_ne[4] = { split ? 2 * ne[0] : ne[0], ne[1], ne[2], ne[3] };
  g_auto (Input) x = { 0 };
  g_auto (Input) gate = { 0 };
  g_autoptr (AtTestTensor) dst = output_new (AT_TYPE_F32, ne);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *value = g_new (float, n);
  g_autofree float *gate_values = g_new (float, n);
  g_autofree float *want = g_new (float, n);
  g_autofree float *got = NULL;
  g_autofree char *what = describe (op == AT_GLU_SWIGLU ? (split ? "swiglu split" : "swiglu")
                                                        : (split ? "geglu split" : "geglu"),
                                    ne, strided);

  input_init (&x, x_ne, strided, -5, 5);
  if (split)
    {
      for (gint64 r = 0; r < n / ne[0]; r++)
        {
          memcpy (value + r * ne[0], x.values + r * x_ne[0], ne[0] * sizeof (float));
          memcpy (gate_values + r * ne[0], x.values + r * x_ne[0] + ne[0],
                  ne[0] * sizeof (float));
        }
    }
  else
    {
      input_init (&gate, ne, !strided, -5, 5);
      memcpy (value, x.values, n * sizeof (float));
      memcpy (gate_values, gate.values, n * sizeof (float));
    }
  at_op_glu (batch, op, &x.t, split ? NULL : &gate.t, &dst->t);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_glu (op, value, gate_values, n, want);
  /* As for the unary activations, and one more multiply. */
  at_test_assert_close (what, got, want, n, 1e-5);
}

static void
test_glu (void)
{
  for (guint op = AT_GLU_SWIGLU; op <= AT_GLU_GEGLU; op++)
    for (guint i = 0; i < G_N_ELEMENTS (elementwise_shapes); i++)
      {
        check_glu (op, elementwise_shapes[i], FALSE, i % 2 == 0);
        check_glu (op, elementwise_shapes[i], TRUE, i % 3 == 0);
      }
}

/* --- Softmax --- */

typedef enum { NO_MASK, MASK_F32, MASK_F16 } MaskKind;

static void
check_soft_max (const gint64 ne[4], MaskKind mask_kind, gboolean causal, gint64 offset,
                gboolean strided)
{
  gint64 n = ne[0] * ne[1] * ne[2] * ne[3];
  /* A padded mask (more rows than x), shared by dimension 3, per dimension 2. */
  const gint64 mask_ne[4] = { ne[0], ne[1] + 2, ne[2], 1 };
  gint64 mask_n = mask_ne[0] * mask_ne[1] * mask_ne[2];
  g_auto (Input) x = { 0 };
  g_autoptr (AtTestTensor) mask = NULL;
  g_autoptr (AtTestTensor) dst = output_new (AT_TYPE_F32, ne);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *mask_values = at_test_random_floats (mask_n, -3, 3);
  g_autofree float *want = g_new (float, n);
  g_autofree float *got = NULL;
  g_autofree char *shape = describe ("soft_max", ne, strided);
  g_autofree char *what = g_strdup_printf ("%s, mask %d, causal %d offset %ld", shape,
                                           mask_kind, causal, (long) offset);
  const float scale = 0.125f;

  /* Large logits: without the max subtraction exp would overflow. */
  input_init (&x, ne, strided, -400, 400);
  if (mask_kind != NO_MASK)
    {
      AtType type = mask_kind == MASK_F16 ? AT_TYPE_F16 : AT_TYPE_F32;

      /* Some -inf, as attention masks have; F16 values are what the GPU reads. */
      for (gint64 i = 0; i < mask_n; i += 5)
        mask_values[i] = -INFINITY;
      if (type == AT_TYPE_F16)
        for (gint64 i = 0; i < mask_n; i++)
          mask_values[i] = at_fp16_to_fp32 (at_fp32_to_fp16 (mask_values[i]));
      mask = at_test_tensor_new (type, mask_ne[0], mask_ne[1], mask_ne[2], mask_ne[3]);
      at_test_tensor_upload (mask, mask_values);
    }
  at_op_soft_max (batch, &x.t, mask ? &mask->t : NULL, &dst->t, scale, causal, offset);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_soft_max (x.values, ne, mask ? mask_values : NULL, mask_ne, scale, causal, offset,
                   want);
  /* One exp per element and an F32 sum over the row: a few ulp. */
  at_test_assert_close (what, got, want, n, 1e-5);
}

static void
test_soft_max_once (void)
{
  static const gint64 shapes[][4] = {
    { 1, 1, 1, 1 }, { 7, 3, 1, 1 }, { 100, 5, 2, 1 }, { 257, 4, 1, 1 },
    { 1000, 2, 1, 2 }, { 4097, 2, 1, 1 }, { 32000, 2, 1, 1 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
    {
      check_soft_max (shapes[i], NO_MASK, FALSE, 0, i % 2 == 1);
      check_soft_max (shapes[i], i % 2 ? MASK_F16 : MASK_F32, FALSE, 0, FALSE);
      check_soft_max (shapes[i], MASK_F16, TRUE, (gint64) i - 2, i % 2 == 0);
      check_soft_max (shapes[i], NO_MASK, TRUE, 3, FALSE);
    }
}

static void
test_soft_max (void)
{
  with_each_reduction (test_soft_max_once);
}

/* Rows whose every column is masked give zeros, not NaN. */
static void
test_soft_max_masked_row (void)
{
  const gint64 ne[4] = { 10, 4, 1, 1 };
  g_auto (Input) x = { 0 };
  g_autoptr (AtTestTensor) dst = output_new (AT_TYPE_F32, ne);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *got = NULL;

  input_init (&x, ne, FALSE, -1, 1);
  /* Offset -2: rows 0 and 1 have no visible column. */
  at_op_soft_max (batch, &x.t, NULL, &dst->t, 1.0f, TRUE, -2);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  for (gint64 i = 0; i < 2 * ne[0]; i++)
    g_assert_cmpfloat (got[i], ==, 0.0f);
  g_assert_cmpfloat (got[2 * ne[0]], ==, 1.0f);
}

/* --- RoPE --- */

static void
check_rope (const gint64 ne[3], const AtRopeParams *params, gboolean strided,
            AtType dst_type, gint32 max_pos)
{
  const gint64 ne4[4] = { ne[0], ne[1], ne[2], 1 };
  gint64 n = ne[0] * ne[1] * ne[2];
  g_auto (Input) x = { 0 };
  g_autoptr (AtTestTensor) positions = at_test_tensor_new (AT_TYPE_I32, ne[2], 1, 1, 1);
  g_autoptr (AtTestTensor) dst = output_new (dst_type, ne4);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree gint32 *pos = g_new (gint32, ne[2]);
  g_autofree float *want = g_new (float, n);
  g_autofree float *got = NULL;
  double tolerance;
  g_autofree char *shape = describe ("rope", ne4, strided);
  g_autofree char *what = g_strdup_printf ("%s n_dims %d%s base %g scale %g%s",
                                           shape, params->n_dims,
                                           params->neox ? " neox" : "", params->freq_base,
                                           params->freq_scale,
                                           dst_type == AT_TYPE_F16 ? " f16" : "");

  input_init (&x, ne4, strided, -1, 1);
  for (gint64 t = 0; t < ne[2]; t++)
    pos[t] = g_rand_int_range (at_test_rand (), 0, max_pos + 1);
  at_test_tensor_upload_raw (positions, pos, ne[2] * sizeof (gint32));
  at_op_rope (batch, &x.t, &positions->t, &dst->t, params);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_rope (x.values, ne, pos, params, want);
  /* F32: the angle pos * freq is a float, so near max_pos it carries up to half an ulp
   * of max_pos (2^-25 max_pos: 1.2e-4 radians at 4096) of rounding error, whatever
   * the care in computing it; this error, not the rotation, sets the F32 bound (the
   * L2 error comes out several times smaller, as only the fast-turning pairs have
   * large angles). F16 output adds half-precision rounding, 2^-11 relative at worst. */
  tolerance = MAX (1e-5, max_pos * ldexp (1, -25));
  if (dst_type == AT_TYPE_F16)
    tolerance += 1e-3;
  at_test_assert_close (what, got, want, n, tolerance);
}

static void
test_rope (void)
{
  static const gint64 shapes[][3] = {
    { 64, 4, 7 }, { 128, 3, 5 }, { 80, 2, 9 }, { 2, 1, 1 },
  };
  static const AtRopeParams params[] = {
    { 64, FALSE, 10000, 1 },
    { 128, TRUE, 1000000, 1 },
    { 32, TRUE, 10000, 0.25f },  /* partial rotary, linear scaling */
    { 2, FALSE, 10000, 1 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (shapes); i++)
    {
      AtRopeParams other = params[i];

      other.neox = !other.neox;
      check_rope (shapes[i], &params[i], FALSE, AT_TYPE_F32, 4096);
      check_rope (shapes[i], &other, TRUE, AT_TYPE_F32, 100);
      check_rope (shapes[i], &params[i], i % 2 == 0, AT_TYPE_F16, 4096);
    }
}

/* --- Bad arguments --- */

static void
test_bad_arguments (void)
{
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, 8, 4, 2, 1);
  g_autoptr (AtTestTensor) x16 = at_test_tensor_new (AT_TYPE_F16, 8, 4, 2, 1);
  g_autoptr (AtTestTensor) odd = at_test_tensor_new (AT_TYPE_F32, 7, 4, 2, 1);
  g_autoptr (AtTestTensor) w = at_test_tensor_new (AT_TYPE_F32, 7, 1, 1, 1);
  g_autoptr (AtTestTensor) pos = at_test_tensor_new (AT_TYPE_I32, 2, 1, 1, 1);
  g_autoptr (AtTestTensor) mask = at_test_tensor_new (AT_TYPE_F32, 7, 4, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  AtRopeParams rope = { 7, FALSE, 10000, 1 };

  at_op_rms_norm (batch, &x->t, &w->t, &x->t, 1e-5f);
  expect_invalid (batch, "weight must be 8 contiguous elements");
  at_op_layer_norm (batch, &x->t, NULL, NULL, &odd->t, 1e-5f);
  expect_invalid (batch, "differs from x");
  at_op_group_norm (batch, &x->t, NULL, NULL, &x->t, 3, 1e-5f, FALSE);
  expect_invalid (batch, "do not split into 3 groups");
  at_op_unary (batch, AT_UNARY_SILU, &x16->t, &x->t);
  expect_invalid (batch, "x must be f32");
  at_op_glu (batch, AT_GLU_SWIGLU, &odd->t, NULL, &odd->t);
  expect_invalid (batch, "do not split into value and gate");
  at_op_glu (batch, AT_GLU_GEGLU, &x->t, &odd->t, &x->t);
  expect_invalid (batch, "gate");
  at_op_soft_max (batch, &x->t, &mask->t, &x->t, 1, FALSE, 0);
  expect_invalid (batch, "does not cover");
  at_op_rope (batch, &x->t, &pos->t, &x->t, &rope);
  expect_invalid (batch, "rotated dimensions");
  rope.n_dims = 8;
  at_op_rope (batch, &x->t, &w->t, &x->t, &rope);
  expect_invalid (batch, "positions must be i32");
}

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  g_test_add_func ("/ops/norm/rms-norm", test_rms_norm);
  g_test_add_func ("/ops/norm/layer-norm", test_layer_norm);
  g_test_add_func ("/ops/norm/group-norm", test_group_norm);
  g_test_add_func ("/ops/activation/scale", test_scale);
  g_test_add_func ("/ops/activation/unary", test_unary);
  g_test_add_func ("/ops/activation/gelu-erf-tail", test_gelu_erf_tail);
  g_test_add_func ("/ops/activation/glu", test_glu);
  g_test_add_func ("/ops/soft-max/rows", test_soft_max);
  g_test_add_func ("/ops/soft-max/masked-row", test_soft_max_masked_row);
  g_test_add_func ("/ops/rope/rope", test_rope);
  g_test_add_func ("/ops/norm/bad-arguments", test_bad_arguments);
  return at_test_run ();
}
