/* The Stable Diffusion pipeline through its public API on tiny random-weight
 * checkpoints: determinism per seed, previews, CFG and the sampler against a CPU
 * computation of the same step, img2img and inpainting, LoRA, bad requests,
 * cancellation and unsupported families. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "atelier-engine.h"
#include "at-test.h"
#include "fixtures/lora-fixture.h"
#include "fixtures/sd-fixture.h"
#include "image/at-clip-text-model.h"
#include "image/at-scheduler.h"
#include "ref/at-ref-clip-text-model.h"
#include "ref/at-ref-unet.h"
#include "ref/at-ref-vae.h"

#define SIZE 64

static AtEngine *engine;
static char *dir;

typedef struct
{
  GMainLoop *loop;
  AtImageModel *model;
  AtImageResult *result;
  GError *error;
  guint n_steps_seen, n_previews;
  guint preview_width;
  GCancellable *cancel_at_step2;
} Run;

/* The real VAE's four levels (images 8 times the latent) at a tiny width. */
static const AtSdFixtureVae tiny_vae = { .ch = 32, .n_levels = 4, .ch_mult = { 1, 1, 1, 1 } };

static char *
write_fixture (const char *name, AtSdFixture *fixture)
{
  g_autoptr (GError) error = NULL;
  char *path = g_build_filename (dir, name, NULL);

  fixture->with_unet = fixture->with_vae = TRUE;
  fixture->vae = &tiny_vae;
  g_assert_true (at_sd_fixture_write (fixture, path, &error));
  g_assert_no_error (error);
  return path;
}

static void
on_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Run *run = user_data;

  run->model = at_image_model_load_finish (result, &run->error);
  g_main_loop_quit (run->loop);
}

static AtImageModel *
load (const char *path, GError **error)
{
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  Run run = { loop };

  at_image_model_load_async (engine, path, NULL, NULL, NULL, on_loaded, &run);
  g_main_loop_run (loop);
  if (run.error != NULL)
    g_propagate_error (error, run.error);
  return run.model;
}

static void
on_step (guint step, guint n_steps, const guint8 *preview, guint preview_width,
         guint preview_height, gpointer user_data)
{
  Run *run = user_data;

  g_assert_cmpuint (step, ==, run->n_steps_seen + 1);
  run->n_steps_seen = step;
  if (preview != NULL)
    {
      run->n_previews++;
      run->preview_width = preview_width;
      g_assert_cmpuint (preview_height, >, 0);
    }
  if (step == 2 && run->cancel_at_step2 != NULL)
    g_cancellable_cancel (run->cancel_at_step2);
}

static void
on_generated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Run *run = user_data;

  run->result = at_image_model_generate_finish (AT_IMAGE_MODEL (source), result, &run->error);
  g_main_loop_quit (run->loop);
}

/* Generates with run's callbacks; the result or error stays in run. */
static void
generate (AtImageModel *model, const AtImageRequest *request, Run *run)
{
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  run->loop = loop;
  at_image_model_generate_async (model, request, on_step, run, run->cancel_at_step2,
                                 on_generated, run);
  g_main_loop_run (loop);
  run->loop = NULL;
}

static AtImageResult *
generate_ok (AtImageModel *model, const AtImageRequest *request)
{
  Run run = { 0 };

  generate (model, request, &run);
  g_assert_no_error (run.error);
  g_assert_nonnull (run.result);
  return run.result;
}

static void
small_request (AtImageRequest *request, gint64 seed)
{
  at_image_request_init (request);
  request->prompt = "a red fox in the snow, (watercolor:1.2)";
  request->negative_prompt = "blurry";
  request->width = SIZE;
  request->height = SIZE + 16;
  request->steps = 3;
  request->seed = seed;
}

static AtImageModel *
load_fixture (AtSdFixtureLayout layout, const char *name)
{
  AtSdFixture fixture = { .layout = layout, .seed = 7 };
  g_autofree char *path = write_fixture (name, &fixture);
  g_autoptr (GError) error = NULL;
  AtImageModel *model = load (path, &error);

  g_assert_no_error (error);
  return model;
}

static void
test_seed_determinism (void)
{
  g_autoptr (AtImageModel) model = load_fixture (AT_SD_FIXTURE_SD1, "sd1.safetensors");
  AtImageRequest request;
  g_autoptr (AtImageResult) a = NULL, b = NULL, c = NULL;
  Run run = { 0 };

  g_assert_cmpstr (at_image_model_get_name (model), ==, "sd1");
  g_assert_cmpuint (strlen (at_image_model_get_hash (model)), ==, 10);
  g_assert_false (at_image_model_is_inpainting (model));
  g_assert_cmpuint (at_image_model_get_gpu_bytes (model), >, 0);

  small_request (&request, 42);
  request.previews = TRUE;
  generate (model, &request, &run);
  g_assert_no_error (run.error);
  a = run.result;
  g_assert_cmpuint (a->width, ==, SIZE);
  g_assert_cmpuint (a->height, ==, SIZE + 16);
  g_assert_cmpint (a->seed, ==, 42);
  g_assert_cmpuint (run.n_steps_seen, ==, 3);
  g_assert_cmpuint (run.n_previews, ==, 3);
  g_assert_cmpuint (run.preview_width, ==, SIZE / 8);
  g_assert_cmpstr (a->params->sampler, ==, "Euler a");
  g_assert_cmpint (a->params->seed, ==, 42);
  g_assert_cmpstr (a->params->model, ==, "sd1");

  /* Same seed, same image, bit for bit; another seed, another image. */
  b = generate_ok (model, &request);
  g_assert_cmpmem (a->pixels, SIZE * (SIZE + 16) * 3, b->pixels, SIZE * (SIZE + 16) * 3);
  request.seed = 43;
  c = generate_ok (model, &request);
  g_assert_true (memcmp (a->pixels, c->pixels, SIZE * (SIZE + 16) * 3) != 0);

  /* Releasing the UNet and VAE frees their memory; the next image uploads them again and
   * is the same image. */
  {
    const guint64 before = at_engine_get_memory_used (engine, NULL);
    g_autoptr (AtImageResult) again = NULL;

    at_image_model_release_gpu (model);
    request.seed = 42;
    again = generate_ok (model, &request);
    g_assert_cmpmem (a->pixels, SIZE * (SIZE + 16) * 3, again->pixels, SIZE * (SIZE + 16) * 3);
    g_assert_cmpuint (at_engine_get_memory_used (engine, NULL), <=, before);
  }
}

/* A random seed is chosen and reported. */
static void
test_random_seed_and_png (void)
{
  g_autoptr (AtImageModel) model = load_fixture (AT_SD_FIXTURE_SD1, "sd1-png.safetensors");
  g_autofree char *png = g_build_filename (dir, "out.png", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtImageResult) result = NULL;
  g_autoptr (AtGenerationParams) params = NULL;
  g_autofree guint8 *pixels = NULL;
  g_autofree char *text = NULL;
  AtImageRequest request;
  guint w, h;

  small_request (&request, -1);
  request.sampler = "DPM++ 2M Karras";
  result = generate_ok (model, &request);
  g_assert_cmpint (result->seed, >=, 0);
  g_assert_true (at_image_result_save_png (result, png, &error));
  g_assert_no_error (error);
  pixels = at_png_read (png, &w, &h, &text, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (w, ==, result->width);
  g_assert_cmpuint (h, ==, result->height);
  for (gsize i = 0; i < (gsize)w * h; i++)
    g_assert_cmpmem (pixels + i * 4, 3, result->pixels + i * 3, 3);
  params = at_generation_params_parse (text);
  g_assert_cmpstr (params->prompt, ==, request.prompt);
  g_assert_cmpstr (params->negative_prompt, ==, "blurry");
  g_assert_cmpint (params->seed, ==, result->seed);
  g_assert_cmpstr (params->sampler, ==, "DPM++ 2M");
  g_assert_cmpstr (params->schedule_type, ==, "Karras");
  g_assert_cmpint (params->steps, ==, 3);
  g_assert_cmpuint (params->width, ==, SIZE);
  g_assert_cmpuint (params->height, ==, SIZE + 16);
  g_assert_cmpstr (params->model_hash, ==, at_image_model_get_hash (model));
}

/* One Euler step with CFG, computed on the CPU from the references of every part, against
 * the pipeline on the GPU. With one step from sigma_max to 0 Euler's result is the
 * model's x0 estimate: denoised = x - sigma * (uncond + cfg (cond - uncond)). */
static void
test_one_step_against_reference (void)
{
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .seed = 11 };
  g_autofree char *path = write_fixture ("sd1-ref.safetensors", &fixture);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtImageModel) model = load (path, &error);
  g_autoptr (AtSafetensors) st = at_safetensors_open (path, &error);
  g_autoptr (AtImageResult) result = NULL;
  g_autoptr (AtRng) rng = at_rng_new (5);
  AtClipTextFile clip;
  AtUnetFile unet;
  AtVaeFile vae;
  AtNoiseSchedule schedule;
  AtImageRequest request;
  const guint lw = SIZE / 8, lh = SIZE / 8;
  const gsize n = (gsize)lw * lh * 4, pixels = SIZE * SIZE;
  g_autofree float *x = g_new (float, n), *in = g_new (float, 2 * n), *out = g_new (float, 2 * n);
  g_autofree float *context = NULL, *rgb = g_new (float, pixels * 3);
  g_autofree guint8 *expected = g_malloc (pixels * 3);
  g_autofree float *sigmas = NULL;
  guint n_sampler_steps, mismatches = 0;
  gint32 ids[2][AT_CLIP_CONTEXT];
  const double cfg = 5.0;
  AtDenoiserScalings sc;
  float t, timesteps[2];
  gint64 n_embd;

  g_assert_no_error (error);
  g_assert_true (at_clip_text_file_init (&clip, st, &error));
  g_assert_true (at_unet_file_init (&unet, st, at_image_model_get_info (model), &error));
  g_assert_true (at_vae_file_init (&vae, st, &error));
  g_assert_no_error (error);
  n_embd = clip.info.clip.n_embd;

  /* Prompts without emphasis, so the windows are plain ids: "a cat" and "" as CLIP
   * tokenizes them (49406 BOS, 320 "a", 2368 "cat", 49407 EOS padding). */
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < AT_CLIP_CONTEXT; i++)
      ids[b][i] = i == 0 ? 49406 : 49407;
  ids[0][1] = 320;
  ids[0][2] = 2368;
  context = g_new (float, 2 * AT_CLIP_CONTEXT * n_embd);
  at_ref_clip_text_encode (&clip, ids[0], 1, context);
  at_ref_clip_text_encode (&clip, ids[1], 1, context + AT_CLIP_CONTEXT * n_embd);

  at_noise_schedule_init_sd (&schedule);
  sigmas = at_noise_schedule_sigmas (&schedule, AT_SCHEDULE_NORMAL, 1, &n_sampler_steps, &error);
  g_assert_no_error (error);
  at_rng_randn (rng, x, n);
  for (gsize i = 0; i < n; i++)
    x[i] *= sigmas[0];
  sc = at_denoiser_scalings (AT_PREDICTION_EPSILON, sigmas[0]);
  t = (float)at_noise_schedule_sigma_to_t (&schedule, sigmas[0]);
  timesteps[0] = timesteps[1] = t;
  for (gsize i = 0; i < n; i++)
    in[i] = in[n + i] = x[i] * (float)sc.c_in;
  at_ref_unet_forward (&unet, in, lw, lh, 2, timesteps, context, AT_CLIP_CONTEXT, out);
  for (gsize i = 0; i < n; i++)
    {
      double eps = out[n + i] + cfg * (out[i] - out[n + i]);

      x[i] = (float)((sc.c_skip * x[i] + sc.c_out * eps) / 0.18215);
    }
  at_ref_vae_decode (&vae, x, lw, lh, rgb);
  for (gsize i = 0; i < pixels; i++)
    for (int c = 0; c < 3; c++)
      expected[i * 3 + c] = (guint8)CLAMP ((rgb[c * pixels + i] + 1.0f) * 127.5f + 0.5f, 0, 255);

  at_image_request_init (&request);
  request.prompt = "a cat";
  request.width = request.height = SIZE;
  request.steps = 1;
  request.cfg_scale = cfg;
  request.sampler = "Euler";
  request.seed = 5;
  result = generate_ok (model, &request);
  /* F16 weights and F32 GPU arithmetic against double references: a pixel may round to
   * the next value; a systematic error would move most of them by more. */
  for (gsize i = 0; i < pixels * 3; i++)
    if (ABS ((int)result->pixels[i] - (int)expected[i]) > 2)
      mismatches++;
  g_assert_cmpuint (mismatches, <=, pixels * 3 / 100);

  at_clip_text_file_clear (&clip);
  at_unet_file_clear (&unet);
  at_vae_file_clear (&vae);
}

static guint8 *
gradient_image (guint width, guint height)
{
  guint8 *rgb = g_malloc ((gsize)width * height * 3);

  for (guint y = 0; y < height; y++)
    for (guint x = 0; x < width; x++)
      {
        guint8 *p = rgb + ((gsize)y * width + x) * 3;

        p[0] = (guint8)(x * 255 / width);
        p[1] = (guint8)(y * 255 / height);
        p[2] = 128;
      }
  return rgb;
}

static void
check_img2img_and_mask (AtImageModel *model)
{
  const gsize pixels = SIZE * SIZE;
  g_autofree guint8 *init = gradient_image (SIZE, SIZE);
  g_autofree guint8 *mask = g_malloc0 (pixels);
  g_autoptr (AtImageResult) img2img = NULL, inpainted = NULL;
  AtImageRequest request;
  guint changed_inside = 0;

  small_request (&request, 3);
  request.width = request.height = SIZE;
  request.steps = 4;
  request.init_image = init;
  request.strength = 0.5;
  img2img = generate_ok (model, &request);
  g_assert_cmpfloat (img2img->params->denoising_strength, ==, 0.5);

  /* Repaint the left half only: the right half comes back exactly. */
  for (gsize i = 0; i < pixels; i++)
    mask[i] = i % SIZE < SIZE / 2 ? 255 : 0;
  request.mask = mask;
  inpainted = generate_ok (model, &request);
  for (gsize i = 0; i < pixels; i++)
    if (mask[i] == 0)
      g_assert_cmpmem (inpainted->pixels + i * 3, 3, init + i * 3, 3);
    else
      changed_inside += memcmp (inpainted->pixels + i * 3, init + i * 3, 3) != 0;
  g_assert_cmpuint (changed_inside, >, pixels / 4);
}

static void
test_img2img_and_masked (void)
{
  g_autoptr (AtImageModel) model = load_fixture (AT_SD_FIXTURE_SD1, "sd1-img2img.safetensors");

  check_img2img_and_mask (model);
}

static void
test_inpainting_checkpoint (void)
{
  AtSdFixtureUnet unet = { .in_channels = 9 };
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .seed = 9, .unet = &unet };
  g_autofree char *path = write_fixture ("sd1-inpainting.safetensors", &fixture);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtImageModel) model = load (path, &error);
  g_autoptr (AtImageResult) plain = NULL;
  AtImageRequest request;

  g_assert_no_error (error);
  g_assert_true (at_image_model_is_inpainting (model));
  check_img2img_and_mask (model);
  /* txt2img with an inpainting checkpoint: everything is repainted. */
  small_request (&request, 4);
  plain = generate_ok (model, &request);
  g_assert_cmpuint (plain->width, ==, SIZE);
}

static void
test_sd2_v_prediction (void)
{
  g_autoptr (AtImageModel) model = load_fixture (AT_SD_FIXTURE_SD2, "sd2.safetensors");
  g_autoptr (AtImageResult) eps = NULL, v = NULL;
  AtImageRequest request;

  g_assert_cmpint (at_image_model_get_info (model)->family, ==, AT_SD_FAMILY_SD2);
  small_request (&request, 8);
  request.sampler = "DDIM";
  request.prediction = AT_SD_PREDICTION_EPSILON;
  eps = generate_ok (model, &request);
  request.prediction = AT_SD_PREDICTION_V;
  v = generate_ok (model, &request);
  g_assert_true (memcmp (eps->pixels, v->pixels, eps->width * eps->height * 3) != 0);
}

/* A LoRA on the UNet and the text encoder: weight 0 is the plain model bit for bit, a
 * weight changes the image, and going back to no LoRA restores the model exactly. */
static void
test_lora (void)
{
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .seed = 13 };
  g_autofree char *path = write_fixture ("sd1-lora.safetensors", &fixture);
  g_autofree char *lora_path = g_build_filename (dir, "style.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtSafetensors) st = at_safetensors_open (path, &error);
  const AtLoraFixtureModule modules[] = {
    { "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k",
      "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight" },
    { "lora_unet_down_blocks_0_resnets_0_conv1",
      "model.diffusion_model.input_blocks.1.0.in_layers.2.weight" },
    { "lora_te_text_model_encoder_layers_0_mlp_fc1",
      "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight", .alpha = 2 },
  };
  g_autoptr (AtImageModel) model = NULL;
  g_autoptr (AtImageResult) plain = NULL, zero = NULL, styled = NULL, back = NULL;
  AtImageLora lora = { lora_path, 0.0f };
  AtImageRequest request;
  const gsize bytes = SIZE * (SIZE + 16) * 3;

  g_assert_no_error (error);
  g_assert_true (at_lora_fixture_write (st, modules, G_N_ELEMENTS (modules), AT_TYPE_F16, 3,
                                        lora_path, &error));
  g_assert_no_error (error);
  model = load (path, &error);
  g_assert_no_error (error);
  small_request (&request, 21);
  plain = generate_ok (model, &request);
  request.loras = &lora;
  request.n_loras = 1;
  zero = generate_ok (model, &request);
  g_assert_cmpmem (plain->pixels, bytes, zero->pixels, bytes);
  lora.weight = 1.0f;
  styled = generate_ok (model, &request);
  g_assert_true (memcmp (plain->pixels, styled->pixels, bytes) != 0);
  g_assert_nonnull (strstr (at_generation_params_get_extra (styled->params, "LoRA"),
                            "style.safetensors: 1"));
  request.n_loras = 0;
  back = generate_ok (model, &request);
  g_assert_cmpmem (plain->pixels, bytes, back->pixels, bytes);
}

static void
expect_refused (AtImageModel *model, const AtImageRequest *request, const char *words)
{
  Run run = { 0 };

  generate (model, request, &run);
  g_assert_error (run.error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (run.error->message, words));
  g_assert_cmpuint (run.n_steps_seen, ==, 0);
  g_clear_error (&run.error);
}

static void
test_bad_requests_and_cancel (void)
{
  g_autoptr (AtImageModel) model = load_fixture (AT_SD_FIXTURE_SD1, "sd1-bad.safetensors");
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  guint8 mask[64 * 64] = { 0 };
  AtImageRequest request;
  Run run = { 0 };

  small_request (&request, 1);
  request.width = 65;
  expect_refused (model, &request, "multiples of 8");
  small_request (&request, 1);
  request.height = 56;
  expect_refused (model, &request, "at least 64");
  small_request (&request, 1);
  request.steps = 0;
  expect_refused (model, &request, "between 1 and 150");
  small_request (&request, 1);
  request.sampler = "Heun++";
  expect_refused (model, &request, "unknown sampler");
  small_request (&request, 1);
  request.mask = mask;
  expect_refused (model, &request, "needs an image");

  /* Cancelled between steps: no image, the right error. */
  small_request (&request, 1);
  request.steps = 6;
  run.cancel_at_step2 = cancellable;
  generate (model, &request, &run);
  g_assert_error (run.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (run.result);
  g_assert_cmpuint (run.n_steps_seen, <, 6);
  g_clear_error (&run.error);
}

static void
test_unsupported_and_missing (void)
{
  AtSdFixture sdxl = { .layout = AT_SD_FIXTURE_SDXL };
  g_autofree char *path = write_fixture ("sdxl.safetensors", &sdxl);
  g_autofree char *missing = g_build_filename (dir, "nothing.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtImageModel) model = load (path, &error);

  g_assert_null (model);
  g_assert_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "not supported yet"));
  g_clear_error (&error);
  g_assert_null (load (missing, &error));
  g_assert_nonnull (error);
}

static void
remove_dir (const char *path)
{
  g_autoptr (GDir) d = g_dir_open (path, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *file = g_build_filename (path, name, NULL);

      g_unlink (file);
    }
  g_rmdir (path);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int status;

  at_test_init (&argc, &argv);
  engine = at_engine_new (NULL, &error);
  g_assert_no_error (error);
  dir = g_dir_make_tmp ("test-image-model-XXXXXX", &error);
  g_assert_no_error (error);
  g_test_add_func ("/image-model/seed-determinism", test_seed_determinism);
  g_test_add_func ("/image-model/random-seed-and-png", test_random_seed_and_png);
  g_test_add_func ("/image-model/one-step-against-reference", test_one_step_against_reference);
  g_test_add_func ("/image-model/img2img-and-masked", test_img2img_and_masked);
  g_test_add_func ("/image-model/inpainting-checkpoint", test_inpainting_checkpoint);
  g_test_add_func ("/image-model/sd2-v-prediction", test_sd2_v_prediction);
  g_test_add_func ("/image-model/lora", test_lora);
  g_test_add_func ("/image-model/bad-requests-and-cancel", test_bad_requests_and_cancel);
  g_test_add_func ("/image-model/unsupported-and-missing", test_unsupported_and_missing);
  status = g_test_run ();
  /* Every model is gone: the engine's GPU must hold nothing. */
  g_assert_cmpuint (at_engine_get_memory_used (engine, NULL), ==, 0);
  g_object_unref (engine);
  remove_dir (dir);
  g_free (dir);
  return status;
}
