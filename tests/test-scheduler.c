/* Noise schedules, samplers and the PyTorch-compatible noise. Needs no GPU: the samplers
 * run on analytic denoisers whose exact trajectories are known.
 *
 * A delta distribution at x0 has the exact denoiser D(x, sigma) = x0; the probability
 * flow ODE is then x(sigma) = x0 + (x(sigma_0) - x0) sigma / sigma_0, which Euler and
 * DPM++ 2M follow exactly, so they land on x0. Gaussian data N(mu, tau^2) has
 * D(x, sigma) = mu + tau^2 / (tau^2 + sigma^2) (x - mu) and the ODE solution
 * x(sigma) - mu = (x(sigma_0) - mu) sqrt ((tau^2 + sigma^2) / (tau^2 + sigma_0^2)),
 * which the samplers approach at their order. */
#include "at-error.h"
#include "image/at-scheduler.h"

#include <math.h>
#include <string.h>

static AtNoiseSchedule schedule;

static float *
sigmas_new (AtScheduleKind kind, guint steps, guint *n_steps)
{
  g_autoptr (GError) error = NULL;
  float *sigmas = at_noise_schedule_sigmas (&schedule, kind, steps, n_steps, &error);

  g_assert_no_error (error);
  return sigmas;
}

static void
test_sd_schedule (void)
{
  /* k-diffusion's model_wrap.sigmas for SD 1.x: sigma_min and sigma_max as A1111 uses
   * them for Karras; alphas_cumprod[0] = 1 - 0.00085. */
  g_assert_cmpfloat_with_epsilon (at_noise_schedule_sigma_min (&schedule), 0.0292, 5e-5);
  g_assert_cmpfloat_with_epsilon (at_noise_schedule_sigma_max (&schedule), 14.6146, 5e-4);
  g_assert_cmpfloat_with_epsilon (schedule.alphas_cumprod[0], 1 - 0.00085, 1e-7);
  for (guint t = 1; t < AT_TRAIN_TIMESTEPS; t++)
    g_assert_cmpfloat (schedule.sigmas[t], >, schedule.sigmas[t - 1]);

  /* sigma_to_t inverts t_to_sigma at and between the table's points, and clamps. */
  for (double t = 0; t <= 999; t += 37.25)
    g_assert_cmpfloat_with_epsilon (
        at_noise_schedule_sigma_to_t (&schedule, at_noise_schedule_t_to_sigma (&schedule, t)), t,
        1e-6);
  g_assert_cmpfloat (at_noise_schedule_sigma_to_t (&schedule, 1e-4), ==, 0.0);
  g_assert_cmpfloat (at_noise_schedule_sigma_to_t (&schedule, 100.0), ==, 999.0);
}

static void
test_normal_schedule (void)
{
  guint n_steps;
  g_autofree float *s = sigmas_new (AT_SCHEDULE_NORMAL, 20, &n_steps);

  g_assert_cmpuint (n_steps, ==, 20);
  g_assert_cmpfloat_with_epsilon (s[0], at_noise_schedule_sigma_max (&schedule), 1e-5);
  g_assert_cmpfloat_with_epsilon (s[19], at_noise_schedule_sigma_min (&schedule), 1e-6);
  g_assert_cmpfloat (s[20], ==, 0.0f);
  /* t = 999 - 999 * 1/19 = 946.42...: interpolated in log sigma between 946 and 947. */
  {
    double t = 999.0 * 18 / 19, w = t - 946;
    double want = exp ((1 - w) * schedule.log_sigmas[946] + w * schedule.log_sigmas[947]);

    g_assert_cmpfloat_with_epsilon (s[1], want, 1e-5);
  }
}

static void
test_karras_schedule (void)
{
  guint n_steps;
  g_autofree float *s = sigmas_new (AT_SCHEDULE_KARRAS, 10, &n_steps);
  double lo = pow (at_noise_schedule_sigma_min (&schedule), 1 / 7.0);
  double hi = pow (at_noise_schedule_sigma_max (&schedule), 1 / 7.0);

  g_assert_cmpuint (n_steps, ==, 10);
  for (guint i = 0; i < 10; i++)
    {
      double want = pow (hi + i / 9.0 * (lo - hi), 7.0);

      g_assert_cmpfloat_with_epsilon (s[i], want, want * 1e-6);
    }
  g_assert_cmpfloat (s[10], ==, 0.0f);
}

static void
test_simple_and_ddim_schedules (void)
{
  guint n_steps;
  g_autofree float *simple = sigmas_new (AT_SCHEDULE_SIMPLE, 4, &n_steps);
  g_autofree float *ddim = NULL;
  g_autofree float *ddim30 = NULL;

  g_assert_cmpuint (n_steps, ==, 4);
  g_assert_cmpfloat (simple[0], ==, (float)schedule.sigmas[999]);
  g_assert_cmpfloat (simple[1], ==, (float)schedule.sigmas[749]);
  g_assert_cmpfloat (simple[3], ==, (float)schedule.sigmas[249]);
  g_assert_cmpfloat (simple[4], ==, 0.0f);

  /* A1111: timesteps 1, 51, ..., 951; 19 model calls, ending on t = 1. */
  ddim = sigmas_new (AT_SCHEDULE_DDIM, 20, &n_steps);
  g_assert_cmpuint (n_steps, ==, 19);
  g_assert_cmpfloat (ddim[0], ==, (float)schedule.sigmas[951]);
  g_assert_cmpfloat (ddim[19], ==, (float)schedule.sigmas[1]);
  /* 1000 // 30 = 33: range (0, 1000, 33) has 31 entries, the last t = 991. */
  ddim30 = sigmas_new (AT_SCHEDULE_DDIM, 30, &n_steps);
  g_assert_cmpuint (n_steps, ==, 30);
  g_assert_cmpfloat (ddim30[0], ==, (float)schedule.sigmas[991]);
}

static void
test_step_limits (void)
{
  for (int kind = AT_SCHEDULE_NORMAL; kind <= AT_SCHEDULE_DDIM; kind++)
    {
      guint steps[] = { 0, 151, 1000 };

      for (guint i = 0; i < G_N_ELEMENTS (steps); i++)
        {
          g_autoptr (GError) error = NULL;
          guint n_steps;

          g_assert_null (at_noise_schedule_sigmas (&schedule, kind, steps[i], &n_steps, &error));
          g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
        }
      for (guint n = 1; n <= AT_MAX_STEPS; n += 149)
        {
          guint n_steps;
          g_autofree float *s = sigmas_new (kind, n, &n_steps);

          for (guint i = 0; i < n_steps; i++)
            g_assert_cmpfloat (s[i], >, s[i + 1]);
        }
    }
}

static void
test_img2img_start (void)
{
  /* A1111: t_enc = int (strength * steps); the schedule is entered at steps - t_enc - 1. */
  g_assert_cmpuint (at_schedule_img2img_start (20, 1.0), ==, 0);
  g_assert_cmpuint (at_schedule_img2img_start (20, 0.75), ==, 4);
  g_assert_cmpuint (at_schedule_img2img_start (20, 0.5), ==, 9);
  g_assert_cmpuint (at_schedule_img2img_start (10, 0.01), ==, 9);
}

static void
test_scalings (void)
{
  /* epsilon: D = x - sigma eps. v: with x = x0 + sigma n and the model's input
   * c_in x = sqrt (a) x0 + sqrt (1 - a) n, v = sqrt (a) n - sqrt (1 - a) x0, and
   * c_skip x + c_out v must give x0 back. */
  double sigma = 3.0, x0 = 0.7, noise = -1.3, x = x0 + sigma * noise;
  double a = 1 / (1 + sigma * sigma);
  double v = sqrt (a) * noise - sqrt (1 - a) * x0;
  AtDenoiserScalings eps = at_denoiser_scalings (AT_PREDICTION_EPSILON, sigma);
  AtDenoiserScalings vp = at_denoiser_scalings (AT_PREDICTION_V, sigma);

  g_assert_cmpfloat_with_epsilon (eps.c_skip * x + eps.c_out * noise, x0, 1e-12);
  g_assert_cmpfloat_with_epsilon (eps.c_in, sqrt (a), 1e-12);
  g_assert_cmpfloat_with_epsilon (vp.c_skip * x + vp.c_out * v, x0, 1e-12);
  g_assert_cmpfloat_with_epsilon (vp.c_in, sqrt (a), 1e-12);
}

static void
test_rng_known_values (void)
{
  /* torch.manual_seed (0); torch.randn (4) and torch.randn (16). */
  static const float want4[] = { 1.5410f, -0.2934f, -2.1788f, 0.5684f };
  static const float want16[]
      = { -1.1258f, -1.1524f, -0.2506f, -0.4339f, 0.8487f, 0.6920f, -0.3160f, -2.1152f,
          0.3223f,  -1.2633f, 0.3500f,  0.3081f,  0.1198f, 1.2377f, 1.1168f,  -0.2473f };
  float got[20], first16[16];
  g_autoptr (AtRng) a = at_rng_new (0);
  g_autoptr (AtRng) b = at_rng_new (0);
  g_autoptr (AtRng) c = at_rng_new (0);
  g_autoptr (AtRng) d = at_rng_new (G_GUINT64_CONSTANT (1) << 32);
  g_autoptr (AtRng) e = at_rng_new (0);

  at_rng_randn (a, got, 4);
  for (guint i = 0; i < 4; i++)
    g_assert_cmpfloat_with_epsilon (got[i], want4[i], 5e-5);
  at_rng_randn (b, got, 16);
  for (guint i = 0; i < 16; i++)
    g_assert_cmpfloat_with_epsilon (got[i], want16[i], 5e-5);
  /* 20 elements: the first block of 16 as randn (16) gives it, then the last 16
   * recomputed from 16 new draws, which leaves elements 0..3 alone. */
  at_rng_randn (c, got, 20);
  at_rng_randn (e, first16, 16);
  for (guint i = 0; i < 4; i++)
    g_assert_cmpfloat (got[i], ==, first16[i]);
  g_assert_cmpfloat (got[4], !=, first16[4]);
  /* The seed's high bits are dropped, as mt19937's 32-bit seeding does. */
  at_rng_randn (d, got, 4);
  for (guint i = 0; i < 4; i++)
    g_assert_cmpfloat_with_epsilon (got[i], want4[i], 5e-5);
}

static void
test_rng_statistics (void)
{
  const gsize n = 64 * 64 * 4;
  g_autofree float *x = g_new (float, n);
  g_autoptr (AtRng) rng = at_rng_new (1234);
  double sum = 0, sum2 = 0;

  at_rng_randn (rng, x, n);
  for (gsize i = 0; i < n; i++)
    {
      sum += x[i];
      sum2 += (double)x[i] * x[i];
    }
  /* 16384 samples: the mean's standard error is 1/128. */
  g_assert_cmpfloat (fabs (sum / n), <, 0.04);
  g_assert_cmpfloat (fabs (sum2 / n - 1), <, 0.05);
}

/* ---- analytic denoisers ----------------------------------------------------------- */

typedef struct
{
  double mu, tau; /* Gaussian data; tau 0: a delta at mu */
  /* Return the ODE's end point from x (what a consistency model such as LCM learns)
   * instead of the posterior mean E[x0 | x]. */
  gboolean consistency;
  gsize n;
  guint calls;
  guint cancel_at;
  GCancellable *cancellable;
  guint progress_calls;
} Data;

static gboolean
gaussian_denoiser (const float *x, float sigma, float *denoised, gpointer user, GError **error)
{
  Data *d = user;
  double k = d->consistency ? d->tau / sqrt (d->tau * d->tau + (double)sigma * sigma)
                            : d->tau * d->tau / (d->tau * d->tau + (double)sigma * sigma);

  for (gsize i = 0; i < d->n; i++)
    denoised[i] = (float)(d->mu + k * (x[i] - d->mu));
  if (++d->calls == d->cancel_at && d->cancellable)
    g_cancellable_cancel (d->cancellable);
  return TRUE;
}

static void
count_progress (guint step, guint n_steps, const float *x, const float *denoised, gsize n,
                gpointer user)
{
  Data *d = user;

  g_assert_cmpuint (step, ==, d->progress_calls);
  g_assert_cmpuint (step, <, n_steps);
  d->progress_calls++;
}

/* Runs kind over sigmas from noise drawn with seed; returns the final x (n floats). */
static float *
run_sampler (AtSamplerKind kind, const float *sigmas, guint n_steps, Data *d, gsize n, guint64 seed,
             GError **error)
{
  g_autoptr (AtRng) rng = at_rng_new (seed);
  float *x = g_new (float, n);
  double scale = at_scheduler_noise_scale (kind, sigmas[0]);

  d->n = n;
  d->cancellable = g_cancellable_new ();
  at_rng_randn (rng, x, n);
  for (gsize i = 0; i < n; i++)
    x[i] = (float)(x[i] * scale);
  if (!at_scheduler_sample (kind, sigmas, n_steps, x, n, gaussian_denoiser, d, rng, count_progress,
                            d->cancellable, error))
    g_clear_pointer (&x, g_free);
  g_clear_object (&d->cancellable);
  return x;
}

static void
test_delta_lands_on_x0 (void)
{
  const gsize n = 256;

  for (int kind = AT_SAMPLER_EULER; kind <= AT_SAMPLER_LCM; kind++)
    for (guint steps = 1; steps <= 30; steps += 29)
      {
        guint n_steps;
        g_autofree float *sigmas = sigmas_new (
            kind == AT_SAMPLER_DDIM ? AT_SCHEDULE_DDIM : AT_SCHEDULE_KARRAS, steps, &n_steps);
        Data d = { .mu = 0.5 };
        g_autoptr (GError) error = NULL;
        g_autofree float *x = run_sampler (kind, sigmas, n_steps, &d, n, 7, &error);
        g_autoptr (AtRng) rng = at_rng_new (7);
        g_autofree float *noise = g_new (float, n);
        double s0 = sigmas[0], s_last = sigmas[n_steps];

        g_assert_no_error (error);
        g_assert_cmpuint (d.calls, ==, n_steps);
        g_assert_cmpuint (d.progress_calls, ==, n_steps);
        at_rng_randn (rng, noise, n);
        for (gsize i = 0; i < n; i++)
          {
            /* DDIM ends on sigma (t = 1) as the VP latent: in k-diffusion's variable,
             * x_k = x_vp sqrt (1 + sigma^2), the start's offset from x0 shrunk by
             * s_last / s0. The others reach sigma 0, x0 itself. */
            double want = d.mu;

            if (kind == AT_SAMPLER_DDIM)
              want = (d.mu + (noise[i] * sqrt (1 + s0 * s0) - d.mu) * s_last / s0)
                     / sqrt (1 + s_last * s_last);
            g_assert_cmpfloat_with_epsilon (x[i], want, 1e-5);
          }
      }
}

/* The DDIM ODE step is Euler's in the k-diffusion variable: the same sigmas give the same
 * result once DDIM's VP latent is scaled back. */
static void
test_ddim_is_euler (void)
{
  const gsize n = 512;
  guint n_steps;
  g_autofree float *sigmas = sigmas_new (AT_SCHEDULE_DDIM, 25, &n_steps);
  Data d1 = { .mu = 0.3, .tau = 0.8 }, d2 = d1;
  g_autofree float *ddim = run_sampler (AT_SAMPLER_DDIM, sigmas, n_steps, &d1, n, 11, NULL);
  g_autoptr (AtRng) rng = at_rng_new (11);
  g_autofree float *euler = g_new (float, n);
  double s0 = sigmas[0], s_last = sigmas[n_steps];

  /* Euler from the same VP noise, seen as k-diffusion's x = x_vp * sqrt (1 + s0^2). */
  at_rng_randn (rng, euler, n);
  for (gsize i = 0; i < n; i++)
    euler[i] = (float)(euler[i] * sqrt (1 + s0 * s0));
  d2.n = n;
  g_assert_true (at_scheduler_sample (AT_SAMPLER_EULER, sigmas, n_steps, euler, n,
                                      gaussian_denoiser, &d2, NULL, NULL, NULL, NULL));
  for (gsize i = 0; i < n; i++)
    g_assert_cmpfloat_with_epsilon (ddim[i] * sqrt (1 + s_last * s_last), euler[i], 2e-5);
}

/* Gaussian data, deterministic samplers: the final x against the exact ODE solution,
 * relative L2 error. DPM++ 2M is second order, so it must beat Euler. */
static double
ode_error (AtSamplerKind kind, guint steps)
{
  const gsize n = 1024;
  guint n_steps;
  g_autofree float *sigmas = sigmas_new (AT_SCHEDULE_KARRAS, steps, &n_steps);
  Data d = { .mu = 0.25, .tau = 0.5 };
  g_autofree float *x = run_sampler (kind, sigmas, n_steps, &d, n, 3, NULL);
  g_autoptr (AtRng) rng = at_rng_new (3);
  g_autofree float *noise = g_new (float, n);
  double s0 = sigmas[0], err = 0, norm = 0;

  at_rng_randn (rng, noise, n);
  for (gsize i = 0; i < n; i++)
    {
      double want = d.mu + (noise[i] * s0 - d.mu) * d.tau / sqrt (d.tau * d.tau + s0 * s0);

      err += (x[i] - want) * (x[i] - want);
      norm += (want - d.mu) * (want - d.mu);
    }
  return sqrt (err / norm);
}

static void
test_gaussian_ode (void)
{
  double euler = ode_error (AT_SAMPLER_EULER, 30);
  double dpm = ode_error (AT_SAMPLER_DPMPP_2M, 30);

  g_test_message ("30 Karras steps: Euler %.3g, DPM++ 2M %.3g relative error", euler, dpm);
  g_assert_cmpfloat (euler, <, 0.1);
  g_assert_cmpfloat (dpm, <, 0.01);
  g_assert_cmpfloat (dpm, <, euler / 4);
  g_assert_cmpfloat (ode_error (AT_SAMPLER_DPMPP_2M, 100), <, dpm);
}

/* Gaussian data, stochastic samplers: the samples' mean and spread match the data. LCM
 * re-noises what the model returns, so it samples the data only when the model is a
 * consistency function (with the posterior mean the spread shrinks at every step). */
static void
test_gaussian_ancestral (void)
{
  const gsize n = 16384;
  AtSamplerKind kinds[] = { AT_SAMPLER_EULER_ANCESTRAL, AT_SAMPLER_LCM };

  for (guint k = 0; k < G_N_ELEMENTS (kinds); k++)
    {
      gboolean lcm = kinds[k] == AT_SAMPLER_LCM;
      guint n_steps;
      g_autofree float *sigmas = sigmas_new (AT_SCHEDULE_KARRAS, lcm ? 4 : 100, &n_steps);
      Data d = { .mu = -0.4, .tau = 0.6, .consistency = lcm };
      g_autofree float *x = run_sampler (kinds[k], sigmas, n_steps, &d, n, 5, NULL);
      double sum = 0, sum2 = 0, mean, sd;

      for (gsize i = 0; i < n; i++)
        sum += x[i];
      mean = sum / n;
      for (gsize i = 0; i < n; i++)
        sum2 += (x[i] - mean) * (x[i] - mean);
      sd = sqrt (sum2 / n);
      g_test_message ("%s: mean %.4f sd %.4f", at_sampler_kind_name (kinds[k]), mean, sd);
      /* 16384 samples: the mean's standard error is 0.005, the spread's 0.003; Euler a
       * (a first-order SDE step) underestimates the spread by a few percent. */
      g_assert_cmpfloat_with_epsilon (mean, d.mu, 0.02);
      g_assert_cmpfloat_with_epsilon (sd, d.tau, 0.04);
    }
}

static void
test_determinism (void)
{
  const gsize n = 300;

  for (int kind = AT_SAMPLER_EULER; kind <= AT_SAMPLER_LCM; kind++)
    {
      guint n_steps;
      g_autofree float *sigmas = sigmas_new (at_sampler_kind_default_schedule (kind), 12, &n_steps);
      Data d1 = { .mu = 0.1, .tau = 0.7 }, d2 = d1, d3 = d1;
      g_autofree float *a = run_sampler (kind, sigmas, n_steps, &d1, n, 42, NULL);
      g_autofree float *b = run_sampler (kind, sigmas, n_steps, &d2, n, 42, NULL);
      g_autofree float *c = run_sampler (kind, sigmas, n_steps, &d3, n, 43, NULL);

      g_assert_cmpmem (a, n * sizeof (float), b, n * sizeof (float));
      g_assert_true (memcmp (a, c, n * sizeof (float)) != 0);
    }
}

static void
test_cancel (void)
{
  for (int kind = AT_SAMPLER_EULER; kind <= AT_SAMPLER_LCM; kind++)
    {
      guint n_steps;
      g_autofree float *sigmas = sigmas_new (AT_SCHEDULE_NORMAL, 20, &n_steps);
      Data d = { .tau = 1, .cancel_at = 3 };
      g_autoptr (GError) error = NULL;
      g_autofree float *x = run_sampler (kind, sigmas, n_steps, &d, 32, 1, &error);

      g_assert_null (x);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      g_assert_cmpuint (d.calls, ==, 3);
      g_assert_cmpuint (d.progress_calls, ==, 3);
    }
}

static gboolean
failing_denoiser (const float *x, float sigma, float *denoised, gpointer user, GError **error)
{
  g_set_error (error, AT_ERROR, AT_ERROR_DEVICE_LOST, "device lost");
  return FALSE;
}

static void
test_denoiser_error (void)
{
  float sigmas[] = { 2, 1, 0 };
  float x[4] = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) no_rng = NULL;

  g_assert_false (at_scheduler_sample (AT_SAMPLER_DPMPP_2M, sigmas, 2, x, 4, failing_denoiser, NULL,
                                       NULL, NULL, NULL, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_DEVICE_LOST);
  g_assert_false (at_scheduler_sample (AT_SAMPLER_EULER_ANCESTRAL, sigmas, 2, x, 4,
                                       failing_denoiser, NULL, NULL, NULL, NULL, &no_rng));
  g_assert_error (no_rng, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
}

static void
test_sampler_names (void)
{
  gboolean karras;

  for (int kind = AT_SAMPLER_EULER; kind <= AT_SAMPLER_LCM; kind++)
    g_assert_cmpint (at_sampler_kind_from_name (at_sampler_kind_name (kind), NULL), ==, kind);
  g_assert_cmpint (at_sampler_kind_from_name ("Euler a", &karras), ==, AT_SAMPLER_EULER_ANCESTRAL);
  g_assert_false (karras);
  g_assert_cmpint (at_sampler_kind_from_name ("DPM++ 2M Karras", &karras), ==, AT_SAMPLER_DPMPP_2M);
  g_assert_true (karras);
  g_assert_cmpint (at_sampler_kind_from_name ("Heun", NULL), ==, -1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  at_noise_schedule_init_sd (&schedule);
  g_test_add_func ("/image/scheduler/sd-schedule", test_sd_schedule);
  g_test_add_func ("/image/scheduler/normal", test_normal_schedule);
  g_test_add_func ("/image/scheduler/karras", test_karras_schedule);
  g_test_add_func ("/image/scheduler/simple-ddim", test_simple_and_ddim_schedules);
  g_test_add_func ("/image/scheduler/step-limits", test_step_limits);
  g_test_add_func ("/image/scheduler/img2img-start", test_img2img_start);
  g_test_add_func ("/image/scheduler/scalings", test_scalings);
  g_test_add_func ("/image/scheduler/rng-known-values", test_rng_known_values);
  g_test_add_func ("/image/scheduler/rng-statistics", test_rng_statistics);
  g_test_add_func ("/image/scheduler/delta", test_delta_lands_on_x0);
  g_test_add_func ("/image/scheduler/ddim-is-euler", test_ddim_is_euler);
  g_test_add_func ("/image/scheduler/gaussian-ode", test_gaussian_ode);
  g_test_add_func ("/image/scheduler/gaussian-ancestral", test_gaussian_ancestral);
  g_test_add_func ("/image/scheduler/determinism", test_determinism);
  g_test_add_func ("/image/scheduler/cancel", test_cancel);
  g_test_add_func ("/image/scheduler/denoiser-error", test_denoiser_error);
  g_test_add_func ("/image/scheduler/names", test_sampler_names);
  return g_test_run ();
}
