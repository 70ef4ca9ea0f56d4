#include "at-test.h"

#include <math.h>
#include <string.h>

#include "ref/at-ref.h"

static AtGpu *test_gpu;
static GRand *test_rand;
static guint32 test_seed;

void
at_test_init (int *argc, char ***argv)
{
  const char *seed_text = g_getenv ("ATELIER_TEST_SEED");

  g_setenv ("ATELIER_VALIDATION", "1", FALSE);
  g_test_init (argc, argv, NULL);
  test_seed = seed_text ? (guint32) g_ascii_strtoull (seed_text, NULL, 10)
                        : g_random_int ();
  test_rand = g_rand_new_with_seed (test_seed);
  g_printerr ("# random seed %u (replay with ATELIER_TEST_SEED=%u)\n", test_seed, test_seed);
}

int
at_test_run (void)
{
  int status = g_test_run ();

  if (test_gpu)
    {
      guint64 left = at_gpu_get_allocated_bytes (test_gpu, NULL);
      if (left != 0)
        {
          g_printerr ("GPU memory left allocated after the tests: %" G_GUINT64_FORMAT
                      " bytes\n", left);
          status = 1;
        }
      g_clear_pointer (&test_gpu, at_gpu_free);
    }
  g_clear_pointer (&test_rand, g_rand_free);
  return status;
}

AtGpu *
at_test_gpu (void)
{
  if (test_gpu == NULL)
    {
      g_autoptr (GError) error = NULL;
      test_gpu = at_gpu_new (NULL, &error);
      g_assert_no_error (error);
    }
  return test_gpu;
}

guint32
at_test_seed (void)
{
  return test_seed;
}

GRand *
at_test_rand (void)
{
  return test_rand;
}

float *
at_test_random_floats (gsize n, float lo, float hi)
{
  float *values = g_new (float, MAX (n, 1));
  for (gsize i = 0; i < n; i++)
    values[i] = (float) g_rand_double_range (test_rand, lo, hi);
  return values;
}

AtTestTensor *
at_test_tensor_new (AtType type, gint64 ne0, gint64 ne1, gint64 ne2, gint64 ne3)
{
  g_autoptr (GError) error = NULL;
  AtTestTensor *tensor = g_new0 (AtTestTensor, 1);
  /* Whole words, so that at_test_tensor_poison (a fill of words) reaches the last
   * element of an odd-sized 16-bit tensor. */
  gsize size = (at_tensor_contiguous_size (type, ne0, ne1, ne2, ne3) + 3) / 4 * 4;

  tensor->buffer = at_gpu_buffer_new (at_test_gpu (), size, AT_GPU_MEMORY_DEVICE, &error);
  g_assert_no_error (error);
  tensor->t = at_tensor_make (tensor->buffer, 0, type, ne0, ne1, ne2, ne3);
  return tensor;
}

void
at_test_tensor_free (AtTestTensor *tensor)
{
  if (tensor == NULL)
    return;
  at_gpu_buffer_free (tensor->buffer);
  g_free (tensor);
}

void
at_test_tensor_upload_raw (AtTestTensor *tensor, const void *bytes, gsize size)
{
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (size, <=, at_gpu_buffer_get_size (tensor->buffer));
  at_gpu_upload (at_test_gpu (), tensor->buffer, 0, bytes, size, &error);
  g_assert_no_error (error);
}

void
at_test_tensor_upload (AtTestTensor *tensor, const float *values)
{
  const AtTensor *t = &tensor->t;
  gsize size = at_tensor_contiguous_size (t->type, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
  g_autofree guint8 *bytes = g_malloc (size);
  gsize row_size = at_type_row_size (t->type, t->ne[0]);

  for (gint64 r = 0; r < at_tensor_n_rows (t); r++)
    g_assert_true (at_ref_quantize_row (t->type, values + r * t->ne[0], bytes + r * row_size,
                                        t->ne[0]));
  at_test_tensor_upload_raw (tensor, bytes, size);
}

float *
at_test_tensor_download (AtTestTensor *tensor)
{
  g_autoptr (GError) error = NULL;
  const AtTensor *t = &tensor->t;
  gsize size = at_tensor_contiguous_size (t->type, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
  g_autofree guint8 *bytes = g_malloc (size);
  float *values = g_new (float, MAX (at_tensor_n_elements (t), 1));
  gsize row_size = at_type_row_size (t->type, t->ne[0]);

  at_gpu_download (at_test_gpu (), tensor->buffer, 0, bytes, size, &error);
  g_assert_no_error (error);
  for (gint64 r = 0; r < at_tensor_n_rows (t); r++)
    g_assert_true (at_ref_dequantize_row (t->type, bytes + r * row_size, values + r * t->ne[0],
                                          t->ne[0]));
  return values;
}

void
at_test_tensor_poison (AtTestTensor *tensor)
{
  g_autoptr (GError) error = NULL;
  gsize size = at_gpu_buffer_get_size (tensor->buffer) / 4 * 4;

  /* 0xffffffff is a NaN as f32, and as each f16/bf16 half. */
  at_gpu_fill (at_test_gpu (), tensor->buffer, 0, size, 0xffffffffu, &error);
  g_assert_no_error (error);
}

void
at_test_run_batch (AtBatch *batch)
{
  g_autoptr (GError) error = NULL;

  at_batch_run (batch, &error);
  g_assert_no_error (error);
}

double
at_test_rel_l2 (const float *got, const float *want, gsize n)
{
  double diff = 0, norm = 0;

  for (gsize i = 0; i < n; i++)
    {
      if (!isfinite (got[i]))
        return NAN;
      diff += ((double) got[i] - want[i]) * ((double) got[i] - want[i]);
      norm += (double) want[i] * want[i];
    }
  if (norm == 0)
    return sqrt (diff);
  return sqrt (diff / norm);
}

void
at_test_assert_close (const char *what, const float *got, const float *want, gsize n,
                      double tolerance)
{
  double error = at_test_rel_l2 (got, want, n);

  if (isnan (error))
    {
      for (gsize i = 0; i < n; i++)
        if (!isfinite (got[i]))
          g_error ("%s: element %zu is %g (not written, or overflow); seed %u", what, i,
                   got[i], test_seed);
    }
  g_test_message ("%s: relative L2 error %.3g (tolerance %.3g)", what, error, tolerance);
  if (!(error <= tolerance))
    g_error ("%s: relative L2 error %.3g exceeds %.3g; seed %u", what, error, tolerance,
             test_seed);
}
