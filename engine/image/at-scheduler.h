/* at-scheduler.h: noise schedules and samplers for Stable Diffusion 1.x/2.x, and the
 * seeded noise source that reproduces PyTorch's CPU generator.
 *
 * Everything here works in k-diffusion's variable x = x0 + sigma * eps (the "VE" view
 * of the VP-trained model: x = x_vp / sqrt (alphas_cumprod)). The model enters through
 * an AtDenoiseFunc that returns its estimate of x0; the wrapper around the UNet turns
 * sigma into a timestep (at_noise_schedule_sigma_to_t), scales the input by c_in, applies
 * c_skip/c_out for epsilon or v-prediction (at_denoiser_scalings) and does CFG.
 * Latents are plain host floats so the samplers read like the maths; the UNet can keep
 * its own copy on the GPU behind the callback.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* ---- PyTorch-compatible Gaussian noise ---------------------------------------- */

/* torch.manual_seed (seed) + torch.randn on the CPU generator: mt19937 seeded with the
 * low 32 bits of seed, float tensors of 16 or more elements through normal_fill
 * (uniforms from 24-bit draws, Box-Muller over blocks of 16 with the first 8 as radii
 * and the last 8 as angles, the tail recomputed from 16 fresh draws), shorter ones
 * through normal_distribution<double> (53-bit draws, the sine half kept for the next
 * call). So a seed gives A1111's initial latent with its "CPU" RNG source, and
 * successive calls continue the stream as its ancestral noise does.
 *
 * Not bit-exact with torch builds that take the AVX2 path (avx_mathfun's polynomial
 * logf/sincosf): those differ from libm in the last bit or two of some values. */
typedef struct _AtRng AtRng;

AtRng *at_rng_new (guint64 seed);
void at_rng_free (AtRng *rng);
/* torch.randn (n) from the current state, into out. */
void at_rng_randn (AtRng *rng, float *out, gsize n);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtRng, at_rng_free)

/* ---- the model's discrete noise schedule -------------------------------------- */

#define AT_TRAIN_TIMESTEPS 1000

/* SD 1.x/2.x training schedule (LDM "scaled_linear"): betas = linspace (sqrt 0.00085,
 * sqrt 0.012, 1000)^2, alphas_cumprod = cumprod (1 - betas), sigma_t =
 * sqrt ((1 - a_t) / a_t); sigmas[0] ~ 0.0292 (sigma_min), sigmas[999] ~ 14.6146. */
typedef struct
{
  double alphas_cumprod[AT_TRAIN_TIMESTEPS];
  double sigmas[AT_TRAIN_TIMESTEPS];
  double log_sigmas[AT_TRAIN_TIMESTEPS];
} AtNoiseSchedule;

void at_noise_schedule_init_sd (AtNoiseSchedule *s);
static inline double
at_noise_schedule_sigma_min (const AtNoiseSchedule *s)
{
  return s->sigmas[0];
}
static inline double
at_noise_schedule_sigma_max (const AtNoiseSchedule *s)
{
  return s->sigmas[AT_TRAIN_TIMESTEPS - 1];
}
/* k-diffusion's DiscreteSchedule.sigma_to_t: linear interpolation of the timestep
 * between the two neighbouring log sigmas, clamped to [0, 999]. */
double at_noise_schedule_sigma_to_t (const AtNoiseSchedule *s, double sigma);
/* t_to_sigma: exp of the log sigmas interpolated at fractional t in [0, 999]. */
double at_noise_schedule_t_to_sigma (const AtNoiseSchedule *s, double t);

typedef enum
{
  /* k-diffusion's get_sigmas (n): n timesteps spaced evenly from 999 down to 0, the
   * sigma at each by log-sigma interpolation, then 0. A1111's "Automatic" for Euler,
   * Euler a and DPM++ 2M; ComfyUI's "normal". */
  AT_SCHEDULE_NORMAL,
  /* Karras et al. (2022) eq. 5 with rho 7 between the model's sigma_min and sigma_max,
   * then 0 (k-diffusion's get_sigmas_karras as A1111 calls it). */
  AT_SCHEDULE_KARRAS,
  /* ComfyUI's "simple": every (1000 / n)-th training sigma from the top, then 0. */
  AT_SCHEDULE_SIMPLE,
  /* A1111's DDIM timesteps: t = 1 + k * (1000 / n) (integer division) for every k with
   * k * (1000 / n) < 1000, highest first, no final 0: the last step lands on t = 1.
   * That is n timesteps and n - 1 model calls when n divides 1000, as A1111 does. */
  AT_SCHEDULE_DDIM,
} AtScheduleKind;

#define AT_MAX_STEPS 150

/* The sigmas, highest first, for steps in 1..AT_MAX_STEPS (else AT_ERROR_INVALID_ARGUMENT);
 * *n_sampler_steps (the number of sampler steps, one less than the length of the array)
 * is steps for every kind but AT_SCHEDULE_DDIM. */
float *at_noise_schedule_sigmas (const AtNoiseSchedule *s, AtScheduleKind kind, guint steps,
                                 guint *n_sampler_steps, GError **error);

/* img2img: A1111's setup_img2img_steps without "img2img_fix_steps": t_enc =
 * int (min (strength, 0.999) * steps) (steps - 1 for strength 1), and the k-diffusion
 * samplers start at index steps - t_enc - 1 of the schedule, so t_enc + 1 steps run
 * (diffusers runs int (steps * strength) instead). The init latent gets noise times the
 * sigma at that index. strength must be in (0, 1]. */
guint at_schedule_img2img_start (guint steps, double strength);

/* ---- denoiser scalings -------------------------------------------------------- */

typedef enum
{
  AT_PREDICTION_EPSILON,
  AT_PREDICTION_V,
} AtPrediction;

typedef struct
{
  double c_skip, c_out, c_in;
} AtDenoiserScalings;

/* denoised = c_skip * x + c_out * model (c_in * x, sigma_to_t (sigma)). Epsilon:
 * c_skip 1, c_out -sigma, c_in 1 / sqrt (sigma^2 + 1) (k-diffusion's CompVisDenoiser).
 * v: sigma_data 1, c_skip 1 / (sigma^2 + 1), c_out -sigma / sqrt (sigma^2 + 1), c_in as
 * for epsilon (CompVisVDenoiser). */
AtDenoiserScalings at_denoiser_scalings (AtPrediction prediction, double sigma);

/* ---- samplers ----------------------------------------------------------------- */

typedef enum
{
  AT_SAMPLER_EULER,
  AT_SAMPLER_EULER_ANCESTRAL,
  AT_SAMPLER_DPMPP_2M,
  AT_SAMPLER_DDIM,
  AT_SAMPLER_LCM,
} AtSamplerKind;

/* A1111's names ("Euler", "Euler a", "DPM++ 2M", "DDIM", "LCM") and back; -1 for an
 * unknown name. "DPM++ 2M Karras", the name older A1111 versions write, gives DPM++ 2M
 * and sets *karras when karras is not NULL. */
const char *at_sampler_kind_name (AtSamplerKind kind);
int at_sampler_kind_from_name (const char *name, gboolean *karras);
/* What A1111 uses when the user does not choose: DDIM its timesteps, the others the
 * normal schedule. */
AtScheduleKind at_sampler_kind_default_schedule (AtSamplerKind kind);

/* The model's estimate of x0 at x (n floats) and noise level sigma, into denoised. */
typedef gboolean (*AtDenoiseFunc) (const float *x, float sigma, float *denoised, gpointer data,
                                   GError **error);
/* After step (0-based) of n_steps; x is the new state, denoised the model's x0 estimate
 * it came from (for previews); data is the one given to the denoiser. */
typedef void (*AtStepCallback) (guint step, guint n_steps, const float *x, const float *denoised,
                                gsize n, gpointer data);

/* What the initial noise is multiplied by before sampling from sigmas[0]: sigmas[0] for
 * the k-diffusion samplers (k-diffusion and A1111 do x = noise * sigma_max), and 1 for
 * DDIM, whose state is the unscaled (VP) latent. */
double at_scheduler_noise_scale (AtSamplerKind kind, double sigma0);

/* Runs n_steps steps over sigmas[0..n_steps] (highest first) on x (n floats) in place.
 *
 * Euler, Euler ancestral (eta 1, s_noise 1) and DPM++ 2M are k-diffusion's
 * sample_euler, sample_euler_ancestral and sample_dpmpp_2m. DDIM (eta 0) is A1111's
 * ddim in its alphas_cumprod form, x_prev = sqrt (a_prev) x0 + sqrt (1 - a_prev) eps,
 * with a = 1 / (1 + sigma^2): x on entry and on return is that VP latent (noise times
 * at_scheduler_noise_scale, and the result goes straight to the VAE, as in A1111). LCM
 * is ComfyUI's sample_lcm: x = denoised, then fresh noise times the next sigma unless
 * it is 0 (diffusers' LCMScheduler does the same in VP form; its c_skip/c_out boundary
 * condition is left to the model wrapper).
 *
 * The ancestral and LCM noise comes from rng (required for those; may be NULL for the
 * others). Checks c before each step: G_IO_ERROR_CANCELLED. A failing f stops the run
 * with its error. */
gboolean at_scheduler_sample (AtSamplerKind kind, const float *sigmas, guint n_steps, float *x,
                              gsize n, AtDenoiseFunc f, gpointer data, AtRng *rng,
                              AtStepCallback progress, GCancellable *c, GError **error);

G_END_DECLS
