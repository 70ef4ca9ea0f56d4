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
#include "ops/at-ops-attention.h"
#include "ops/at-ops-bench.h"
#include "ops/at-ops-matmul.h"
#include "ops/at-ops-quant.h"
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
 * dispatches. A first run creates the pipelines and warms caches; its time decides how
 * many repetitions fit in about a second (at most bench->reps), so that a slow device
 * still finishes the table. */
static gboolean
time_op (Bench *bench, RecordFunc record, gpointer data, double *ms, GError **error)
{
  g_autoptr (AtBatch) batch = at_batch_new (bench->gpu);
  g_autofree double *per_rep = NULL;
  const AtDispatchTime *times;
  guint n_times, reps;

  at_batch_set_timing (batch, TRUE);
  record (batch, data);
  if (!at_batch_run (batch, error))
    return FALSE;
  if (at_batch_get_timings (batch, &n_times) == NULL || n_times == 0)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "The device gave no GPU timestamps; cannot benchmark");
      return FALSE;
    }
  reps = (guint) CLAMP (1000.0 / MAX (at_batch_get_total_ms (batch), 1e-3), 1, bench->reps);
  per_rep = g_new0 (double, reps);
  for (guint r = 0; r < reps; r++)
    record (batch, data);
  if (!at_batch_run (batch, error))
    return FALSE;
  times = at_batch_get_timings (batch, &n_times);
  for (guint i = 0; i < n_times; i++)
    per_rep[i / (n_times / reps)] += times[i].ms;
  qsort (per_rep, reps, sizeof (double), compare_double);
  *ms = per_rep[reps / 2];
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

double
atelier_cli_measure_copy_bandwidth (AtGpu *gpu, guint reps, GError **error)
{
  const AtGpuDeviceInfo *info = at_gpu_get_info (gpu);
  gsize size = MIN ((gsize) 256 << 20, info->max_allocation_size / 2);
  Bench bench = { .gpu = gpu, .reps = reps };
  g_autoptr (AtGpuBuffer) src = device_buffer (&bench, size, error);
  g_autoptr (AtGpuBuffer) dst = src ? device_buffer (&bench, size, error) : NULL;
  CopyData copy = { src, dst, size };
  double ms, gbs;

  if (dst == NULL || !at_gpu_fill (gpu, src, 0, size, 0x3c003c00u, error) ||
      !time_op (&bench, record_copy, &copy, &ms, error))
    return 0;
  gbs = 2.0 * size / (ms * 1e-3) / 1e9;
  g_print ("copy %4zu MiB device to device   %9.3f ms  %8.1f GB/s (read + write): "
           "the bandwidth roof\n", size >> 20, ms, gbs);
  return gbs;
}

static gboolean
measure_copy_roof (Bench *bench, GError **error)
{
  bench->copy_gbs = atelier_cli_measure_copy_bandwidth (bench->gpu, bench->reps, error);
  return bench->copy_gbs > 0;
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

/* --- Ops ------------------------------------------------------------------------ */

/* Fills a weight tensor [k, m] of type with valid random blocks: a band of quantized
 * rows repeated down the matrix (quantizing all of a 4096×11008 matrix on the CPU would
 * take longer than the benchmark; the GPU reads the same number of bytes either way). */
static AtGpuBuffer *
random_weights (Bench *bench, AtType type, gint64 k, gint64 m, GError **error)
{
  const gint64 band = MIN (m, 64);
  gsize row_size = at_type_row_size (type, k);
  gsize size = row_size * (gsize) m;
  g_autofree float *values = g_new (float, k * band);
  g_autofree guint8 *bytes = g_malloc (size);
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);
  AtGpuBuffer *buffer;

  for (gint64 i = 0; i < k * band; i++)
    values[i] = (float) g_rand_double_range (rand, -1, 1);
  for (gint64 r = 0; r < band; r++)
    at_ref_quantize_row (type, values + r * k, bytes + r * row_size, k);
  for (gint64 r = band; r < m; r++)
    memcpy (bytes + r * row_size, bytes + (r % band) * row_size, row_size);
  buffer = device_buffer (bench, size, error);
  if (buffer && !at_gpu_upload (bench->gpu, buffer, 0, bytes, size, error))
    g_clear_pointer (&buffer, at_gpu_buffer_free);
  return buffer;
}

static AtGpuBuffer *
random_activations (Bench *bench, AtType type, gsize n, GError **error)
{
  g_autofree float *values = g_new (float, n);
  gsize size = at_type_row_size (type, (gint64) n);
  g_autofree guint8 *bytes = g_malloc (size);
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  AtGpuBuffer *buffer;

  for (gsize i = 0; i < n; i++)
    values[i] = (float) g_rand_double_range (rand, -1, 1);
  at_ref_quantize_row (type, values, bytes, (gint64) n);
  buffer = device_buffer (bench, size, error);
  if (buffer && !at_gpu_upload (bench->gpu, buffer, 0, bytes, size, error))
    g_clear_pointer (&buffer, at_gpu_buffer_free);
  return buffer;
}

static void
print_row (Bench *bench, const char *op, const char *type, const char *shape, double ms,
           double bytes, double flops)
{
  double gbs = bytes / (ms * 1e-3) / 1e9;
  double gflops = flops / (ms * 1e-3) / 1e9;

  if (bytes > 0)
    g_print ("%-10s %-6s %-24s %9.3f ms  %8.1f GB/s      %5.1f%% of copy roof\n", op, type,
             shape, ms, gbs, 100 * gbs / bench->copy_gbs);
  else
    g_print ("%-10s %-6s %-24s %9.3f ms  %8.1f GFLOP/s   %5.1f%% of FMA roof\n", op, type,
             shape, ms, gflops, 100 * gflops / bench->peak_gflops);
}

typedef struct {
  AtTensor w, x, dst;
} MatData;


static void
record_mul_mat_vec (AtBatch *batch, gpointer data)
{
  MatData *d = data;
  at_op_mul_mat_vec (batch, &d->w, &d->x, &d->dst);
}

static void
record_mul_mat (AtBatch *batch, gpointer data)
{
  MatData *d = data;
  at_op_mul_mat (batch, &d->w, &d->x, &d->dst);
}

/* dst [m, n] = w [k, m] × x [k, n]; mat-vec when vec. */
static gboolean
bench_mul_mat (Bench *bench, gboolean vec, AtType type, AtType x_type, gint64 k, gint64 m,
               gint64 n, GError **error)
{
  g_autoptr (AtGpuBuffer) w = random_weights (bench, type, k, m, error);
  g_autoptr (AtGpuBuffer) x = w ? random_activations (bench, x_type, k * n, error) : NULL;
  g_autoptr (AtGpuBuffer) dst = x ? device_buffer (bench, m * n * 4, error) : NULL;
  g_autofree char *shape = NULL;
  MatData data;
  double ms;

  if (dst == NULL)
    return FALSE;
  data.w = at_tensor_make (w, 0, type, k, m, 1, 1);
  data.x = at_tensor_make (x, 0, x_type, k, n, 1, 1);
  data.dst = at_tensor_make (dst, 0, AT_TYPE_F32, m, n, 1, 1);
  if (!time_op (bench, vec ? record_mul_mat_vec : record_mul_mat, &data, &ms, error))
    return FALSE;
  shape = g_strdup_printf ("%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " n=%" G_GINT64_FORMAT,
                           m, k, n);
  if (vec)
    print_row (bench, "mat-vec", at_type_name (type), shape, ms,
               (double) at_gpu_buffer_get_size (w) + at_gpu_buffer_get_size (x) + m * n * 4, 0);
  else
    print_row (bench, x_type == AT_TYPE_F16 ? "mat-mul16" : "mat-mul", at_type_name (type),
               shape, ms, 0, 2.0 * k * m * n);
  return TRUE;
}

typedef struct {
  AtTensor weight, x, dst;
  int stride, padding;
} ConvData;

static void
record_conv2d (AtBatch *batch, gpointer data)
{
  ConvData *d = data;
  at_op_conv2d (batch, &d->weight, NULL, &d->x, &d->dst, d->stride, d->padding);
}

/* A 3×3, stride 1, padding 1 convolution of a [w, h, c_in] image to c_out channels. */
static gboolean
bench_conv2d (Bench *bench, AtType type, gint64 w, gint64 h, gint64 c_in, gint64 c_out,
              GError **error)
{
  g_autoptr (AtGpuBuffer) weight = random_weights (bench, type, 9 * c_in, c_out, error);
  g_autoptr (AtGpuBuffer) x = weight ? random_activations (bench, AT_TYPE_F32, w * h * c_in, error) : NULL;
  g_autoptr (AtGpuBuffer) dst = x ? device_buffer (bench, w * h * c_out * 4, error) : NULL;
  g_autofree char *shape = NULL;
  ConvData data = { .stride = 1, .padding = 1 };
  double ms;

  if (dst == NULL)
    return FALSE;
  data.weight = at_tensor_make (weight, 0, type, 3, 3, c_in, c_out);
  data.x = at_tensor_make (x, 0, AT_TYPE_F32, w, h, c_in, 1);
  data.dst = at_tensor_make (dst, 0, AT_TYPE_F32, w, h, c_out, 1);
  if (!time_op (bench, record_conv2d, &data, &ms, error))
    return FALSE;
  shape = g_strdup_printf ("3x3 %" G_GINT64_FORMAT "->%" G_GINT64_FORMAT " %" G_GINT64_FORMAT
                           "x%" G_GINT64_FORMAT, c_in, c_out, w, h);
  print_row (bench, "conv2d", at_type_name (type), shape, ms, 0,
             2.0 * 9 * c_in * c_out * w * h);
  return TRUE;
}

typedef struct {
  AtTensor q, k, v, dst;
  AtFlashAttnParams params;
} AttnData;

static void
record_flash_attn (AtBatch *batch, gpointer data)
{
  AttnData *d = data;
  at_op_flash_attn (batch, &d->q, &d->k, &d->v, NULL, &d->dst, &d->params);
}

/* n_q queries over n_kv F16 keys/values, n_head heads sharing n_head_kv. */
static gboolean
bench_flash_attn (Bench *bench, const char *what, gint64 head_dim, gint64 n_q, gint64 n_kv,
                  gint64 n_head, gint64 n_head_kv, gboolean causal, GError **error)
{
  g_autoptr (AtGpuBuffer) q = random_activations (bench, AT_TYPE_F32, head_dim * n_q * n_head, error);
  g_autoptr (AtGpuBuffer) k = q ? random_activations (bench, AT_TYPE_F16, head_dim * n_kv * n_head_kv, error) : NULL;
  g_autoptr (AtGpuBuffer) v = k ? random_activations (bench, AT_TYPE_F16, head_dim * n_kv * n_head_kv, error) : NULL;
  g_autoptr (AtGpuBuffer) dst = v ? device_buffer (bench, head_dim * n_q * n_head * 4, error) : NULL;
  g_autofree char *shape = NULL;
  AttnData data;
  double ms, kv_bytes = 2.0 * head_dim * n_kv * n_head_kv * 2;

  if (dst == NULL)
    return FALSE;
  data.q = at_tensor_make (q, 0, AT_TYPE_F32, head_dim, n_q, n_head, 1);
  data.k = at_tensor_make (k, 0, AT_TYPE_F16, head_dim, n_kv, n_head_kv, 1);
  data.v = at_tensor_make (v, 0, AT_TYPE_F16, head_dim, n_kv, n_head_kv, 1);
  data.dst = at_tensor_make (dst, 0, AT_TYPE_F32, head_dim, n_head, n_q, 1);
  data.params = (AtFlashAttnParams) { 1.0f / sqrtf ((float) head_dim), causal,
                                     causal ? n_kv - n_q : 0 };
  if (!time_op (bench, record_flash_attn, &data, &ms, error))
    return FALSE;
  shape = g_strdup_printf ("%s q%" G_GINT64_FORMAT " kv%" G_GINT64_FORMAT " d%" G_GINT64_FORMAT
                           " h%" G_GINT64_FORMAT "/%" G_GINT64_FORMAT, what, n_q, n_kv, head_dim,
                           n_head, n_head_kv);
  /* Decode reads the cache once: bandwidth bound. Longer query blocks are compute bound. */
  if (n_q == 1)
    print_row (bench, "attention", "f16", shape, ms, kv_bytes, 0);
  else
    print_row (bench, "attention", "f16", shape, ms, 0, 4.0 * head_dim * n_q * n_kv * n_head);
  return TRUE;
}

static gboolean
bench_all_ops (Bench *bench, GError **error)
{
  static const AtType prefill_types[] = {
    AT_TYPE_F16, AT_TYPE_Q8_0, AT_TYPE_Q4_0, AT_TYPE_Q4_K, AT_TYPE_Q6_K,
  };

  g_print ("\n%-10s %-6s %-24s %12s  %s\n", "op", "type", "shape (m x k, n)", "GPU time",
           "rate");
  /* Token generation of a 7B-class model: attention and FFN projections. */
  for (guint i = 0; i < at_n_all_types; i++)
    if (at_op_mul_mat_vec_supports (at_all_types[i]) &&
        (!bench_mul_mat (bench, TRUE, at_all_types[i], AT_TYPE_F32, 4096, 4096, 1, error) ||
         !bench_mul_mat (bench, TRUE, at_all_types[i], AT_TYPE_F32, 4096, 11008, 1, error)))
      return FALSE;
  /* Prompt processing of a 7B-class layer: 512 tokens. */
  for (guint i = 0; i < G_N_ELEMENTS (prefill_types); i++)
    if (at_op_mul_mat_supports (prefill_types[i]) &&
        !bench_mul_mat (bench, FALSE, prefill_types[i], AT_TYPE_F32, 4096, 4096, 512, error))
      return FALSE;
  /* Stable Diffusion 1.5 at 512×512: the 64×64 latent level. */
  return bench_mul_mat (bench, FALSE, AT_TYPE_F16, AT_TYPE_F16, 320, 2560, 4096, error) &&
         bench_conv2d (bench, AT_TYPE_F16, 64, 64, 320, 320, error) &&
         bench_flash_attn (bench, "sd-cross", 40, 4096, 77, 8, 8, FALSE, error) &&
         bench_flash_attn (bench, "llm-decode", 128, 1, 4096, 32, 8, TRUE, error);
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
        {
          int reps = atoi (argv[++i]);
          bench.reps = (guint) CLAMP (reps, 1, 1000);
        }
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
  if (!measure_copy_roof (&bench, &error) || !measure_flops_roof (&bench, &error) ||
      !bench_all_ops (&bench, &error))
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
  if (argc >= 2 && g_str_equal (argv[1], "image"))
    return atelier_cli_bench_image (argc - 1, argv + 1);
  if (argc >= 2 && g_str_equal (argv[1], "text"))
    return atelier_cli_bench_text (argc - 1, argv + 1);
  g_printerr ("Usage: atelier-cli bench ops [--reps N]\n"
              "       atelier-cli bench text -m MODEL.gguf [-p 512] [-n 128]\n"
              "       atelier-cli bench image -m MODEL.safetensors [-W 512 -H 512]\n");
  return 2;
}
