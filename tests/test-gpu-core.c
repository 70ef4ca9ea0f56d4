/* The Vulkan core: device choice, memory, transfers, batches, barriers, timing. */
#include "at-test.h"
#include "ops/at-ops-bench.h"
#include "ops/at-ops-elementwise.h"
#include "ref/at-ref.h"

static void
test_select_missing_device (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGpu) gpu = at_gpu_new ("no such device anywhere", &error);

  g_assert_null (gpu);
  g_assert_error (error, AT_ERROR, AT_ERROR_NO_DEVICE);
  g_assert_nonnull (strstr (error->message, "no such device anywhere"));
}

static void
test_list_devices (void)
{
  g_autoptr (GError) error = NULL;
  int chosen = -1;
  g_autoptr (GPtrArray) devices = at_gpu_list_devices (&chosen, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (devices->len, >, 0);
  g_assert_cmpint (chosen, >=, 0);
  g_assert_true (((AtGpuDeviceInfo *) g_ptr_array_index (devices, chosen))->usable);
}

/* Many small buffers share blocks; freeing everything gives the memory back. */
static void
test_suballocation (void)
{
  AtGpu *gpu = at_test_gpu ();
  g_autoptr (GPtrArray) buffers = g_ptr_array_new_with_free_func ((GDestroyNotify) at_gpu_buffer_free);
  guint64 before = at_gpu_get_allocated_bytes (gpu, NULL), during;

  for (guint i = 0; i < 200; i++)
    {
      g_autoptr (GError) error = NULL;
      gsize size = 1 + g_rand_int_range (at_test_rand (), 0, 1 << 20);
      AtGpuBuffer *buffer = at_gpu_buffer_new (gpu, size, AT_GPU_MEMORY_DEVICE, &error);
      g_assert_no_error (error);
      g_ptr_array_add (buffers, buffer);
    }
  during = at_gpu_get_allocated_bytes (gpu, NULL);
  /* 200 buffers of at most 1 MiB fit in one 256 MiB block. */
  g_assert_cmpuint (during - before, <=, (guint64) 256 << 20);
  /* Free every other one, then reallocate into the holes. */
  for (gint i = (gint) buffers->len - 1; i >= 0; i -= 2)
    g_ptr_array_remove_index (buffers, i);
  for (guint i = 0; i < 100; i++)
    {
      g_autoptr (GError) error = NULL;
      g_ptr_array_add (buffers, at_gpu_buffer_new (gpu, 4096, AT_GPU_MEMORY_DEVICE, &error));
      g_assert_no_error (error);
    }
  g_assert_cmpuint (at_gpu_get_allocated_bytes (gpu, NULL), ==, during);
  g_ptr_array_set_size (buffers, 0);
  g_assert_cmpuint (at_gpu_get_allocated_bytes (gpu, NULL), ==, before);
}

static void
test_absurd_allocation (void)
{
  g_autoptr (GError) error = NULL;
  AtGpuBuffer *buffer = at_gpu_buffer_new (at_test_gpu (), G_MAXSIZE / 2,
                                           AT_GPU_MEMORY_DEVICE, &error);

  g_assert_null (buffer);
  g_assert_error (error, AT_ERROR, AT_ERROR_OUT_OF_MEMORY);
}

/* Larger than the staging buffer, with an odd size and offset. */
static void
test_upload_download (void)
{
  AtGpu *gpu = at_test_gpu ();
  gsize size = ((gsize) 40 << 20) + 13, offset = 20;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGpuBuffer) buffer = at_gpu_buffer_new (gpu, size + offset, AT_GPU_MEMORY_DEVICE, &error);
  g_autofree guint8 *data = g_malloc (size);
  g_autofree guint8 *back = g_malloc0 (size);

  g_assert_no_error (error);
  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) (g_rand_int (at_test_rand ()) & 0xff);
  at_gpu_upload (gpu, buffer, offset, data, size, &error);
  g_assert_no_error (error);
  at_gpu_download (gpu, buffer, offset, back, size, &error);
  g_assert_no_error (error);
  g_assert_true (memcmp (data, back, size) == 0);
}

/* A chain of dependent dispatches in one batch needs barriers between them;
 * independent ones on other buffers need none but must still be right. */
static void
test_dependent_dispatches (void)
{
  const gint64 n = 10007;
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, n, 1, 1, 1);
  g_autoptr (AtTestTensor) one = at_test_tensor_new (AT_TYPE_F32, 1, 1, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *values = at_test_random_floats (n, -1, 1);
  g_autofree float *got = NULL;
  const float one_value = 1.0f;

  at_test_tensor_upload (x, values);
  at_test_tensor_upload (one, &one_value);
  for (int i = 0; i < 50; i++)
    at_op_add (batch, &x->t, &one->t, &x->t);
  at_test_run_batch (batch);
  got = at_test_tensor_download (x);
  for (gint64 i = 0; i < n; i++)
    g_assert_cmpfloat_with_epsilon (got[i], values[i] + 50.0f, 1e-4);
}

static void
test_timing (void)
{
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, 4096, 16, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  const AtDispatchTime *times;
  guint n_times;

  if (!at_gpu_get_info (at_test_gpu ())->timestamps)
    {
      g_test_skip ("the device has no timestamps");
      return;
    }
  at_test_tensor_poison (x);
  at_batch_set_timing (batch, TRUE);
  at_op_mul (batch, &x->t, &x->t, &x->t);
  at_op_add (batch, &x->t, &x->t, &x->t);
  at_test_run_batch (batch);
  times = at_batch_get_timings (batch, &n_times);
  g_assert_cmpuint (n_times, ==, 2);
  g_assert_cmpstr (times[0].label, ==, "binary_mul");
  g_assert_cmpstr (times[1].label, ==, "binary_add");
  g_assert_cmpfloat (times[0].ms, >=, 0);
  g_assert_cmpfloat (at_batch_get_total_ms (batch), >=, times[0].ms);
}

static void
test_bad_binding (void)
{
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, 64, 1, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autoptr (GError) error = NULL;
  AtBinding binding = { x->buffer, 0, 1 << 20, TRUE }; /* past the buffer's end */

  at_batch_dispatch (batch, "binary_add", NULL, 0, &binding, 1, NULL, 0, 1, 1, 1);
  g_assert_false (at_batch_run (batch, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* The batch is usable again after an error. */
  at_op_add (batch, &x->t, &x->t, &x->t);
  at_test_run_batch (batch);
}

static void
test_unknown_shader (void)
{
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, 64, 1, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autoptr (GError) error = NULL;
  AtBinding binding = { x->buffer, 0, 256, TRUE };

  at_batch_dispatch (batch, "no_such_shader", NULL, 0, &binding, 1, NULL, 0, 1, 1, 1);
  g_assert_false (at_batch_run (batch, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "no_such_shader"));
}

/* Scratch memory carries an intermediate between dispatches, is reused by the next
 * recording and grows to one buffer that holds a whole recording's needs. */
static void
test_scratch (void)
{
  const gint64 n = 300000; /* 1.2 MB: more than the first scratch buffer */
  g_autoptr (AtTestTensor) x = at_test_tensor_new (AT_TYPE_F32, n, 1, 1, 1);
  g_autoptr (AtTestTensor) y = at_test_tensor_new (AT_TYPE_F32, n, 1, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *values = at_test_random_floats (n, -1, 1);
  AtGpuBuffer *first_buffer = NULL;

  at_test_tensor_upload (x, values);
  for (int run = 0; run < 3; run++)
    {
      g_autofree float *got = NULL;
      gsize offset_a, offset_b;
      AtGpuBuffer *a = at_batch_get_scratch (batch, n * 4, &offset_a);
      AtGpuBuffer *b = at_batch_get_scratch (batch, n * 4, &offset_b);
      AtTensor ta = at_tensor_make (a, offset_a, AT_TYPE_F32, n, 1, 1, 1);
      AtTensor tb = at_tensor_make (b, offset_b, AT_TYPE_F32, n, 1, 1, 1);

      g_assert_true (a != b || offset_a + n * 4 <= offset_b);
      if (run == 1)
        first_buffer = a;
      else if (run == 2)
        g_assert_true (a == first_buffer); /* reused, not reallocated */
      at_op_add (batch, &x->t, &x->t, &ta);   /* 2x */
      at_op_add (batch, &ta, &x->t, &tb);     /* 3x */
      at_op_mul (batch, &tb, &ta, &y->t);     /* 6x^2 */
      at_test_run_batch (batch);
      got = at_test_tensor_download (y);
      for (gint64 i = 0; i < n; i += 997)
        g_assert_cmpfloat_with_epsilon (got[i], 6 * values[i] * values[i], 1e-5);
    }
}

/* The benchmark's compute-roof kernel computes what its reference says. */
static void
test_peak_flops_kernel (void)
{
  const gint64 n = 3000;
  g_autoptr (AtTestTensor) dst = at_test_tensor_new (AT_TYPE_F32, n, 1, 1, 1);
  g_autoptr (AtBatch) batch = at_batch_new (at_test_gpu ());
  g_autofree float *want = g_new (float, n);
  g_autofree float *got = NULL;

  at_test_tensor_poison (dst);
  at_op_peak_flops (batch, &dst->t, 100, 0.999f, 0.001f);
  at_test_run_batch (batch);
  got = at_test_tensor_download (dst);
  at_ref_peak_flops (want, n, 100, 0.999f, 0.001f);
  /* fma on both sides; a device may fuse or not, so allow float rounding drift. */
  at_test_assert_close ("peak_flops", got, want, n, 1e-5);
}

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  g_test_add_func ("/gpu/select-missing-device", test_select_missing_device);
  g_test_add_func ("/gpu/list-devices", test_list_devices);
  g_test_add_func ("/gpu/suballocation", test_suballocation);
  g_test_add_func ("/gpu/absurd-allocation", test_absurd_allocation);
  g_test_add_func ("/gpu/upload-download", test_upload_download);
  g_test_add_func ("/gpu/dependent-dispatches", test_dependent_dispatches);
  g_test_add_func ("/gpu/timing", test_timing);
  g_test_add_func ("/gpu/bad-binding", test_bad_binding);
  g_test_add_func ("/gpu/unknown-shader", test_unknown_shader);
  g_test_add_func ("/gpu/peak-flops-kernel", test_peak_flops_kernel);
  g_test_add_func ("/gpu/scratch", test_scratch);
  return at_test_run ();
}
