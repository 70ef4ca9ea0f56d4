/* atelier-cli bench: GPU speed measurements that print numbers.
 *
 * Times come from GPU timestamps around each dispatch (not host clocks), take the median
 * of several repetitions after a warm-up run, and are set against two measured roofs: the
 * device-to-device copy bandwidth (bytes read + bytes written per second) and an FMA-chain
 * FP32 rate.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "at-error.h"
#include "atelier-cli.h"
#include "ops/at-ops-bench.h"
#include "ref/at-ref.h"

typedef struct {
  AtGpu *gpu;
  guint reps;
  double copy_gbs;     /* bytes read + written per second, / 1e9 */
  double peak_gflops;  /* FP32 FMA rate */
} Bench;

typedef void (*RecordFunc) (AtBatch *batch, gpointer data);

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* Median GPU time in ms of one repetition of record(), which may record several
 * dispatches. A first run, untimed, creates the pipelines and warms caches. */
static gboolean
time_op (Bench *bench, RecordFunc record, gpointer data, double *ms, GError **error)
{
  g_autoptr (AtBatch) batch = at_batch_new (bench->gpu);
  g_autofree double *per_rep = g_new0 (double, bench->reps);
  const AtDispatchTime *times;
  guint n_times;

  record (batch, data);
  if (!at_batch_run (batch, error))
    return FALSE;
  at_batch_set_timing (batch, TRUE);
  for (guint r = 0; r < bench->reps; r++)
    record (batch, data);
  if (!at_batch_run (batch, error))
    return FALSE;
  times = at_batch_get_timings (batch, &n_times);
  if (n_times == 0 || n_times % bench->reps != 0)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "The device gave no GPU timestamps; cannot benchmark");
      return FALSE;
    }
  for (guint i = 0; i < n_times; i++)
    per_rep[i / (n_times / bench->reps)] += times[i].ms;
  qsort (per_rep, bench->reps, sizeof (double), compare_double);
  *ms = per_rep[bench->reps / 2];
  return TRUE;
}

static AtGpuBuffer *
device_buffer (Bench *bench, gsize size, GError **error)
{
  return at_gpu_buffer_new (bench->gpu, size, AT_GPU_MEMORY_DEVICE, error);
}

/* --- Roofs ------------------------------------------------------------------------ */

typedef struct {
  AtGpuBuffer *src, *dst;
  gsize size;
} CopyData;

static void
record_copy (AtBatch *batch, gpointer data)
{
  CopyData *copy = data;
  at_batch_copy (batch, copy->src, 0, copy->dst, 0, copy->size);
}

static gboolean
measure_copy_roof (Bench *bench, GError **error)
{
  const AtGpuDeviceInfo *info = at_gpu_get_info (bench->gpu);
  gsize size = MIN ((gsize) 256 << 20, info->max_allocation_size / 2);
  g_autoptr (AtGpuBuffer) src = device_buffer (bench, size, error);
  g_autoptr (AtGpuBuffer) dst = src ? device_buffer (bench, size, error) : NULL;
  CopyData copy = { src, dst, size };
  double ms;

  if (dst == NULL || !at_gpu_fill (bench->gpu, src, 0, size, 0x3c003c00u, error) ||
      !time_op (bench, record_copy, &copy, &ms, error))
    return FALSE;
  bench->copy_gbs = 2.0 * size / (ms * 1e-3) / 1e9;
  g_print ("copy %4zu MiB device to device   %9.3f ms  %8.1f GB/s (read + write): "
           "the bandwidth roof\n", size >> 20, ms, bench->copy_gbs);
  return TRUE;
}

typedef struct {
  AtTensor dst;
  guint32 n_iterations;
} FlopsData;

static void
record_flops (AtBatch *batch, gpointer data)
{
  FlopsData *flops = data;
  at_op_peak_flops (batch, &flops->dst, flops->n_iterations, 0.9999f, 1e-4f);
}

static gboolean
measure_flops_roof (Bench *bench, GError **error)
{
  const gint64 n = 1 << 20;
  g_autoptr (AtGpuBuffer) buffer = device_buffer (bench, n * 4, error);
  FlopsData flops;
  double ms;

  if (buffer == NULL)
    return FALSE;
  flops.dst = at_tensor_make (buffer, 0, AT_TYPE_F32, n, 1, 1, 1);
  /* Enough work per dispatch to dwarf launch overhead on a big GPU, without taking
   * seconds on a CPU device: scale the chain length to a first short measurement. */
  flops.n_iterations = 64;
  if (!time_op (bench, record_flops, &flops, &ms, error))
    return FALSE;
  flops.n_iterations = (guint32) CLAMP (64 * 20.0 / MAX (ms, 1e-3), 64, 1 << 16);
  if (!time_op (bench, record_flops, &flops, &ms, error))
    return FALSE;
  bench->peak_gflops = at_op_peak_flops_count (&flops.dst, flops.n_iterations) / (ms * 1e-3) / 1e9;
  g_print ("fp32 fma chains                  %9.3f ms  %8.1f GFLOP/s: the compute roof\n",
           ms, bench->peak_gflops);
  return TRUE;
}

static int
bench_ops (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGpu) gpu = NULL;
  Bench bench = { .reps = 5 };

  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--reps") && i + 1 < argc)
        bench.reps = (guint) CLAMP (atoi (argv[++i]), 1, 1000);
      else
        {
          g_printerr ("Usage: atelier-cli bench ops [--reps N]\n");
          return 2;
        }
    }

  gpu = at_gpu_new (NULL, &error);
  if (gpu == NULL)
    {
      g_printerr ("atelier-cli: %s\n", error->message);
      return 1;
    }
  bench.gpu = gpu;
  g_print ("Benchmarking on %s (median of %u runs, GPU timestamps)\n",
           at_gpu_get_info (gpu)->name, bench.reps);
  if (!measure_copy_roof (&bench, &error) || !measure_flops_roof (&bench, &error))
    {
      g_printerr ("atelier-cli bench: %s\n", error->message);
      return 1;
    }
  return 0;
}

int
atelier_cli_bench (int argc, char **argv)
{
  if (argc >= 2 && g_str_equal (argv[1], "ops"))
    return bench_ops (argc - 1, argv + 1);
  g_printerr ("Usage: atelier-cli bench ops [--reps N]\n");
  return 2;
}
