/* at-scheduler.c: PyTorch's CPU normal generator, the SD noise schedule and the
 * k-diffusion-style samplers. The update rules follow k-diffusion's sampling.py and
 * A1111's sd_samplers_timesteps_impl.py; each step's arithmetic is done in double and
 * stored back to the float latent. */
#include "image/at-scheduler.h"

#include "at-error.h"

#include <math.h>
#include <string.h>

/* ---- mt19937 and torch's distributions ---------------------------------------- */

#define MT_N 624
#define MT_M 397

struct _AtRng
{
  guint32 mt[MT_N];
  guint index;
  /* normal_distribution<double> keeps the sine half of each Box-Muller pair. */
  gboolean has_next_normal;
  double next_normal;
};

AtRng *
at_rng_new (guint64 seed)
{
  AtRng *rng = g_new0 (AtRng, 1);

  rng->mt[0] = (guint32)seed;
  for (guint i = 1; i < MT_N; i++)
    rng->mt[i] = 1812433253u * (rng->mt[i - 1] ^ (rng->mt[i - 1] >> 30)) + i;
  rng->index = MT_N;
  return rng;
}

void
at_rng_free (AtRng *rng)
{
  g_free (rng);
}

static void
mt_twist (AtRng *rng)
{
  for (guint i = 0; i < MT_N; i++)
    {
      guint32 y = (rng->mt[i] & 0x80000000u) | (rng->mt[(i + 1) % MT_N] & 0x7fffffffu);

      rng->mt[i] = rng->mt[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1) ? 0x9908b0dfu : 0);
    }
  rng->index = 0;
}

static guint32
mt_next (AtRng *rng)
{
  guint32 y;

  if (rng->index >= MT_N)
    mt_twist (rng);
  y = rng->mt[rng->index++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

/* uniform_real_distribution<float>: the low 24 bits of one draw. */
static float
uniform_float (AtRng *rng)
{
  return (float)(mt_next (rng) & 0xffffffu) * (1.0f / 16777216.0f);
}

/* uniform_real_distribution<double>: the low 53 bits of random64 (), which puts the
 * first draw in the high word. */
static double
uniform_double (AtRng *rng)
{
  guint64 hi = mt_next (rng);
  guint64 r = (hi << 32) | mt_next (rng);

  return (double)(r & ((G_GUINT64_CONSTANT (1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

static double
normal_double (AtRng *rng)
{
  double u1, u2, r, theta;

  if (rng->has_next_normal)
    {
      rng->has_next_normal = FALSE;
      return rng->next_normal;
    }
  u1 = uniform_double (rng);
  u2 = uniform_double (rng);
  r = sqrt (-2.0 * log1p (-u2));
  theta = 2.0 * G_PI * u1;
  rng->next_normal = r * sin (theta);
  rng->has_next_normal = TRUE;
  return r * cos (theta);
}

/* normal_fill_16 in float, as torch computes it: u1 = 1 - data[j] so the log sees (0, 1]. */
static void
normal_fill_16 (float *data)
{
  for (guint j = 0; j < 8; j++)
    {
      float u1 = 1.0f - data[j];
      float u2 = data[j + 8];
      float radius = sqrtf (-2.0f * logf (u1));
      float theta = (float)(2.0 * G_PI * u2);

      data[j] = radius * cosf (theta);
      data[j + 8] = radius * sinf (theta);
    }
}

void
at_rng_randn (AtRng *rng, float *out, gsize n)
{
  if (n < 16)
    {
      for (gsize i = 0; i < n; i++)
        out[i] = (float)normal_double (rng);
      return;
    }
  for (gsize i = 0; i < n; i++)
    out[i] = uniform_float (rng);
  for (gsize i = 0; i + 16 <= n; i += 16)
    normal_fill_16 (out + i);
  if (n % 16 != 0)
    {
      float *tail = out + n - 16;

      for (guint i = 0; i < 16; i++)
        tail[i] = uniform_float (rng);
      normal_fill_16 (tail);
    }
}

/* ---- noise schedule ----------------------------------------------------------- */

void
at_noise_schedule_init_sd (AtNoiseSchedule *s)
{
  const double start = sqrt (0.00085), end = sqrt (0.012);
  double cumprod = 1.0;

  for (guint i = 0; i < AT_TRAIN_TIMESTEPS; i++)
    {
      double b = start + (end - start) * i / (AT_TRAIN_TIMESTEPS - 1);

      cumprod *= 1.0 - b * b;
      /* LDM keeps alphas_cumprod as a float32 buffer; the sigmas come from that. */
      s->alphas_cumprod[i] = (float)cumprod;
      s->sigmas[i] = sqrt ((1.0 - s->alphas_cumprod[i]) / s->alphas_cumprod[i]);
      s->log_sigmas[i] = log (s->sigmas[i]);
    }
}

double
at_noise_schedule_sigma_to_t (const AtNoiseSchedule *s, double sigma)
{
  double log_sigma = log (sigma);
  guint low = 0;
  double w;

  /* The last timestep whose log sigma is <= log_sigma (0 when there is none), kept
   * below 999 so that it has an upper neighbour. */
  for (guint i = 0; i < AT_TRAIN_TIMESTEPS; i++)
    if (log_sigma - s->log_sigmas[i] >= 0)
      low = i;
  low = MIN (low, AT_TRAIN_TIMESTEPS - 2);
  w = (s->log_sigmas[low] - log_sigma) / (s->log_sigmas[low] - s->log_sigmas[low + 1]);
  w = CLAMP (w, 0.0, 1.0);
  return (1.0 - w) * low + w * (low + 1);
}

double
at_noise_schedule_t_to_sigma (const AtNoiseSchedule *s, double t)
{
  guint low, high;
  double w;

  t = CLAMP (t, 0.0, AT_TRAIN_TIMESTEPS - 1.0);
  low = (guint)floor (t);
  high = (guint)ceil (t);
  w = t - low;
  return exp ((1.0 - w) * s->log_sigmas[low] + w * s->log_sigmas[high]);
}

float *
at_noise_schedule_sigmas (const AtNoiseSchedule *s, AtScheduleKind kind, guint steps,
                          guint *n_sampler_steps, GError **error)
{
  float *sigmas;

  if (steps < 1 || steps > AT_MAX_STEPS)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "%u sampling steps: the step count must be 1 to %u", steps, AT_MAX_STEPS);
      return NULL;
    }

  if (kind == AT_SCHEDULE_DDIM)
    {
      guint stride = AT_TRAIN_TIMESTEPS / steps;
      guint count = (AT_TRAIN_TIMESTEPS + stride - 1) / stride;

      sigmas = g_new (float, count);
      for (guint k = 0; k < count; k++)
        {
          guint t = MIN (1 + (count - 1 - k) * stride, AT_TRAIN_TIMESTEPS - 1);

          sigmas[k] = (float)s->sigmas[t];
        }
      *n_sampler_steps = count - 1;
      return sigmas;
    }

  sigmas = g_new (float, steps + 1);
  for (guint i = 0; i < steps; i++)
    {
      /* torch.linspace (0, 1, 1) is [0]: one step starts from the top. */
      double ramp = steps > 1 ? (double)i / (steps - 1) : 0.0;

      switch (kind)
        {
        case AT_SCHEDULE_NORMAL:
          sigmas[i]
              = (float)at_noise_schedule_t_to_sigma (s, (AT_TRAIN_TIMESTEPS - 1) * (1.0 - ramp));
          break;
        case AT_SCHEDULE_KARRAS:
          {
            const double rho = 7.0;
            double min_inv_rho = pow (at_noise_schedule_sigma_min (s), 1.0 / rho);
            double max_inv_rho = pow (at_noise_schedule_sigma_max (s), 1.0 / rho);

            sigmas[i] = (float)pow (max_inv_rho + ramp * (min_inv_rho - max_inv_rho), rho);
          }
          break;
        case AT_SCHEDULE_SIMPLE:
          sigmas[i] = (float)s->sigmas[AT_TRAIN_TIMESTEPS - 1
                                       - (guint)(i * ((double)AT_TRAIN_TIMESTEPS / steps))];
          break;
        case AT_SCHEDULE_DDIM:
          g_assert_not_reached ();
        }
    }
  sigmas[steps] = 0.0f;
  *n_sampler_steps = steps;
  return sigmas;
}

guint
at_schedule_img2img_start (guint steps, double strength)
{
  guint t_enc;

  g_return_val_if_fail (steps >= 1 && strength > 0 && strength <= 1, 0);
  t_enc = strength >= 1.0 ? steps - 1 : (guint)(MIN (strength, 0.999) * steps);
  return steps - t_enc - 1;
}

/* ---- denoiser scalings -------------------------------------------------------- */

AtDenoiserScalings
at_denoiser_scalings (AtPrediction prediction, double sigma)
{
  double norm = sqrt (sigma * sigma + 1.0);
  AtDenoiserScalings sc = { .c_in = 1.0 / norm };

  if (prediction == AT_PREDICTION_V)
    {
      sc.c_skip = 1.0 / (sigma * sigma + 1.0);
      sc.c_out = -sigma / norm;
    }
  else
    {
      sc.c_skip = 1.0;
      sc.c_out = -sigma;
    }
  return sc;
}

/* ---- samplers ----------------------------------------------------------------- */

static const char *const sampler_names[] = {
  [AT_SAMPLER_EULER] = "Euler",       [AT_SAMPLER_EULER_ANCESTRAL] = "Euler a",
  [AT_SAMPLER_DPMPP_2M] = "DPM++ 2M", [AT_SAMPLER_DDIM] = "DDIM",
  [AT_SAMPLER_LCM] = "LCM",
};

const char *
at_sampler_kind_name (AtSamplerKind kind)
{
  g_return_val_if_fail (kind < G_N_ELEMENTS (sampler_names), NULL);
  return sampler_names[kind];
}

int
at_sampler_kind_from_name (const char *name, gboolean *karras)
{
  if (karras)
    *karras = FALSE;
  if (g_strcmp0 (name, "DPM++ 2M Karras") == 0)
    {
      if (karras)
        *karras = TRUE;
      return AT_SAMPLER_DPMPP_2M;
    }
  for (guint k = 0; k < G_N_ELEMENTS (sampler_names); k++)
    if (g_strcmp0 (name, sampler_names[k]) == 0)
      return (int)k;
  return -1;
}

AtScheduleKind
at_sampler_kind_default_schedule (AtSamplerKind kind)
{
  return kind == AT_SAMPLER_DDIM ? AT_SCHEDULE_DDIM : AT_SCHEDULE_NORMAL;
}

double
at_scheduler_noise_scale (AtSamplerKind kind, double sigma0)
{
  return kind == AT_SAMPLER_DDIM ? 1.0 : sigma0;
}

typedef struct
{
  gsize n;
  float *denoised;
  float *old_denoised; /* DPM++ 2M's previous x0 estimate */
  float *noise;
  float *x_model; /* DDIM: the k-diffusion view of the VP latent */
} Work;

static void
work_clear (Work *w)
{
  g_free (w->denoised);
  g_free (w->old_denoised);
  g_free (w->noise);
  g_free (w->x_model);
}

static void
euler_step (float *x, const float *denoised, gsize n, double sigma, double sigma_to)
{
  for (gsize j = 0; j < n; j++)
    {
      double d = (x[j] - (double)denoised[j]) / sigma;

      x[j] = (float)(x[j] + d * (sigma_to - sigma));
    }
}

static void
add_noise (float *x, AtRng *rng, float *noise, gsize n, double scale)
{
  at_rng_randn (rng, noise, n);
  for (gsize j = 0; j < n; j++)
    x[j] = (float)(x[j] + noise[j] * scale);
}

static void
euler_ancestral_step (Work *w, float *x, AtRng *rng, double sigma, double sigma_next)
{
  /* get_ancestral_step with eta 1. */
  double up
      = MIN (sigma_next, sqrt (sigma_next * sigma_next * (sigma * sigma - sigma_next * sigma_next)
                               / (sigma * sigma)));
  double down = sqrt (sigma_next * sigma_next - up * up);

  euler_step (x, w->denoised, w->n, sigma, down);
  if (sigma_next > 0)
    add_noise (x, rng, w->noise, w->n, up);
}

static void
dpmpp_2m_step (Work *w, float *x, const float *sigmas, guint i)
{
  double sigma = sigmas[i], sigma_next = sigmas[i + 1];
  double h, ratio, coef, r = 0;
  gboolean first_order = w->old_denoised == NULL || sigma_next == 0;

  if (sigma_next == 0)
    {
      memcpy (x, w->denoised, w->n * sizeof *x);
      return;
    }
  /* In t = -log sigma: h is the step, r the ratio of the previous step to it. */
  h = log (sigma) - log (sigma_next);
  ratio = sigma_next / sigma;
  coef = -expm1 (-h);
  if (!first_order)
    r = (log (sigmas[i - 1]) - log (sigma)) / h;
  for (gsize j = 0; j < w->n; j++)
    {
      double d = w->denoised[j];

      if (!first_order)
        d = (1.0 + 1.0 / (2.0 * r)) * d - (1.0 / (2.0 * r)) * w->old_denoised[j];
      x[j] = (float)(ratio * x[j] + coef * d);
    }
}

static gboolean
ddim_step (Work *w, float *x, double sigma, double sigma_next, AtDenoiseFunc f, gpointer data,
           GError **error)
{
  double a = 1.0 / (1.0 + sigma * sigma);
  double a_prev = 1.0 / (1.0 + sigma_next * sigma_next);

  for (gsize j = 0; j < w->n; j++)
    w->x_model[j] = (float)(x[j] / sqrt (a));
  if (!f (w->x_model, (float)sigma, w->denoised, data, error))
    return FALSE;
  for (gsize j = 0; j < w->n; j++)
    {
      double pred_x0 = w->denoised[j];
      double e_t = (w->x_model[j] - pred_x0) / sigma;

      x[j] = (float)(sqrt (a_prev) * pred_x0 + sqrt (1.0 - a_prev) * e_t);
    }
  return TRUE;
}

gboolean
at_scheduler_sample (AtSamplerKind kind, const float *sigmas, guint n_steps, float *x, gsize n,
                     AtDenoiseFunc f, gpointer data, AtRng *rng, AtStepCallback progress,
                     GCancellable *c, GError **error)
{
  Work w = { .n = n, .denoised = g_new (float, n) };
  gboolean ok = TRUE;

  if ((kind == AT_SAMPLER_EULER_ANCESTRAL || kind == AT_SAMPLER_LCM) && rng == NULL)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "The %s sampler needs a noise generator", at_sampler_kind_name (kind));
      work_clear (&w);
      return FALSE;
    }
  if (kind == AT_SAMPLER_EULER_ANCESTRAL || kind == AT_SAMPLER_LCM)
    w.noise = g_new (float, n);
  if (kind == AT_SAMPLER_DDIM)
    w.x_model = g_new (float, n);

  for (guint i = 0; ok && i < n_steps; i++)
    {
      double sigma = sigmas[i], sigma_next = sigmas[i + 1];

      if (g_cancellable_set_error_if_cancelled (c, error))
        {
          ok = FALSE;
          break;
        }
      if (kind == AT_SAMPLER_DDIM)
        ok = ddim_step (&w, x, sigma, sigma_next, f, data, error);
      else
        ok = f (x, (float)sigma, w.denoised, data, error);
      if (!ok)
        break;

      switch (kind)
        {
        case AT_SAMPLER_EULER:
          euler_step (x, w.denoised, n, sigma, sigma_next);
          break;
        case AT_SAMPLER_EULER_ANCESTRAL:
          euler_ancestral_step (&w, x, rng, sigma, sigma_next);
          break;
        case AT_SAMPLER_DPMPP_2M:
          dpmpp_2m_step (&w, x, sigmas, i);
          if (w.old_denoised == NULL)
            w.old_denoised = g_new (float, n);
          memcpy (w.old_denoised, w.denoised, n * sizeof (float));
          break;
        case AT_SAMPLER_DDIM:
          break;
        case AT_SAMPLER_LCM:
          memcpy (x, w.denoised, n * sizeof *x);
          if (sigma_next > 0)
            add_noise (x, rng, w.noise, n, sigma_next);
          break;
        }
      if (progress)
        progress (i, n_steps, x, w.denoised, n, data);
    }
  work_clear (&w);
  return ok;
}
