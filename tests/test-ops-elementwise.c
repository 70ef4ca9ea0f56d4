/* GPU vs CPU reference: element-wise ops. */
#include "at-test.h"
#include "ops/at-ops-elementwise.h"
#include "ref/at-ref.h"

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

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  g_test_add_func ("/ops/binary/add", test_add);
  g_test_add_func ("/ops/binary/mul", test_mul);
  g_test_add_func ("/ops/binary/bad-broadcast", test_bad_broadcast);
  return at_test_run ();
}
