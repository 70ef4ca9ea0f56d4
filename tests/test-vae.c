/* The SD VAE on tiny random-weight checkpoints with ldm's tensor names: single blocks,
 * whole decodes and encodes against the CPU reference, tiling, cancellation and
 * malformed files. */
#include <math.h>
#include <string.h>

#include "at-error.h"
#include "at-test.h"
#include "fixtures/sd-fixture.h"
#include "image/at-vae.h"
#include "ref/at-ref-vae.h"

#define VAE "first_stage_model."

/* The GPU and the reference share the weights and sum in F32 and double: group norms
 * keep the errors relative, and a few dozen convolutions over up to ~600 terms each
 * leave ~1e-6. 1e-4 leaves room for other devices' summation orders while a wrong
 * padding, tap or scale is off by 1e-2 or more. */
#define TOLERANCE 1e-4

static AtSafetensors *
open_fixture (const AtSdFixture *fixture)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = at_sd_fixture_build (fixture, &error);
  AtSafetensors *st;

  g_assert_no_error (error);
  st = at_safetensors_new_from_bytes (bytes, "model.safetensors", &error);
  g_assert_no_error (error);
  return st;
}

typedef struct
{
  AtSafetensors *st;
  AtVaeFile file;
  AtVaeModel *model;
} Vae;

static void
vae_open (Vae *v, const AtSdFixtureVae *shape)
{
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1,
                          .seed = at_test_seed (),
                          .n_embd = 64,
                          .n_layer = 1,
                          .with_vae = TRUE,
                          .vae = shape };
  g_autoptr (GError) error = NULL;

  v->st = open_fixture (&fixture);
  g_assert_true (at_vae_file_init (&v->file, v->st, &error));
  g_assert_no_error (error);
  v->model = at_vae_model_new (at_test_gpu (), v->st, &error);
  g_assert_no_error (error);
}

static void
vae_close (Vae *v)
{
  at_vae_model_free (v->model);
  at_vae_file_clear (&v->file);
  at_safetensors_free (v->st);
}

static void
test_hparams (void)
{
  Vae v;
  const AtVaeHParams *hp;
  guint64 expected_bytes = 0;

  vae_open (&v, NULL);
  hp = at_vae_model_get_hparams (v.model);
  g_assert_cmpint (hp->ch, ==, 32);
  g_assert_cmpint (hp->n_levels, ==, 2);
  g_assert_cmpint (hp->level_channels[0], ==, 32);
  g_assert_cmpint (hp->level_channels[1], ==, 64);
  g_assert_cmpint (hp->n_res_blocks, ==, 1);
  g_assert_cmpint (hp->z_channels, ==, 4);
  g_assert_cmpint (hp->downscale, ==, 2);
  g_assert_true (hp->has_encoder);
  /* Every VAE tensor on the GPU, F16 as it is and vectors as F32. */
  for (guint i = 0; i < at_safetensors_get_n_tensors (v.st); i++)
    {
      const AtSafetensorsTensor *t = at_safetensors_get_tensor (v.st, i);

      if (g_str_has_prefix (t->name, VAE))
        expected_bytes += t->n_dims == 1 ? 4 * (gsize)t->n_elements : t->size;
    }
  g_assert_cmpuint (at_vae_model_get_weight_bytes (v.model), ==, expected_bytes);
  g_assert_cmpuint (at_vae_model_get_peak_activation_bytes (v.model), ==, 0);
  vae_close (&v);

  /* Shapes from the tensors: three levels, decoder only. */
  const AtSdFixtureVae deeper = { .ch = 32,
                                  .n_levels = 3,
                                  .ch_mult = { 1, 1, 2 },
                                  .n_res_blocks = 2,
                                  .z_channels = 8,
                                  .decoder_only = TRUE };
  vae_open (&v, &deeper);
  hp = at_vae_model_get_hparams (v.model);
  g_assert_cmpint (hp->n_levels, ==, 3);
  g_assert_cmpint (hp->level_channels[1], ==, 32);
  g_assert_cmpint (hp->level_channels[2], ==, 64);
  g_assert_cmpint (hp->n_res_blocks, ==, 2);
  g_assert_cmpint (hp->z_channels, ==, 8);
  g_assert_cmpint (hp->downscale, ==, 4);
  g_assert_false (hp->has_encoder);
  /* post_quant_conv 1x1 and conv_in 3x3 at 5x3 latent pixels, 4 (64 to 64) mid convs,
   * q k v proj_out and the two attention products, then level 2 (3 blocks 64 to 64),
   * its upsample conv, level 1 (64 to 32 with a shortcut, then 32 to 32), its
   * upsample, level 0 (3 blocks 32 to 32) and conv_out, at 4 and 16 times the
   * pixels. */
  {
    const double n = 15, c3 = 2.0 * 9;
    const double want = 2.0 * 8 * 8 * n + c3 * 8 * 64 * n + 4 * c3 * 64 * 64 * n
                        + 4 * 2.0 * 64 * 64 * n + 2 * 2.0 * 64 * n * n + 6 * c3 * 64 * 64 * n
                        + c3 * 64 * 64 * 4 * n
                        + (c3 * 64 * 32 + 2.0 * 64 * 32 + 5 * c3 * 32 * 32) * 4 * n
                        + c3 * 32 * 32 * 16 * n + 6 * c3 * 32 * 32 * 16 * n + c3 * 32 * 3 * 16 * n;

    g_assert_cmpfloat_with_epsilon (at_vae_model_decode_flops (v.model, 5, 3), want, 1e-9 * want);
  }
  vae_close (&v);
}

typedef struct
{
  const char *block;
  gint64 w, h, c_in, c_out;
  gint64 attn_chunk;
  gboolean linear_attention;
} BlockCase;

static void
test_block (gconstpointer data)
{
  const BlockCase *c = data;
  const AtSdFixtureVae shape = { .linear_attention = c->linear_attention };
  const gsize n_in = c->w * c->h * c->c_in, n_out = c->w * c->h * c->c_out;
  g_autofree float *x = at_test_random_floats (n_in, -2, 2);
  g_autofree float *got = g_new (float, n_out), *want = g_new (float, n_out);
  g_autoptr (GError) error = NULL;
  Vae v;

  vae_open (&v, &shape);
  at_vae_model_set_attn_chunk (v.model, c->attn_chunk);
  g_assert_true (at_vae_model_run_block (v.model, c->block, x, c->w, c->h, got, &error));
  g_assert_no_error (error);
  at_ref_vae_block (&v.file, c->block, x, c->w, c->h, want);
  at_test_assert_close (c->block, got, want, n_out, TOLERANCE);
  /* The block did something. */
  if (c->c_in == c->c_out)
    g_assert_cmpfloat (at_test_rel_l2 (got, x, n_out), >, 0.05);

  g_assert_false (
      at_vae_model_run_block (v.model, "decoder.up.2.block.0", x, c->w, c->h, got, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  vae_close (&v);
}

static float *
random_latent (gint64 w, gint64 h, gint64 z)
{
  /* Latents divided by SD's 0.18215 have a standard deviation of a few units. */
  return at_test_random_floats (w * h * z, -3, 3);
}

typedef struct
{
  const char *name;
  AtSdFixtureVae shape;
  gint64 w, h; /* latent */
  gint64 attn_chunk;
} CoderCase;

static void
test_decode (gconstpointer data)
{
  const CoderCase *c = data;
  Vae v;

  vae_open (&v, &c->shape);
  const AtVaeHParams *hp = at_vae_model_get_hparams (v.model);
  const gsize n = (gsize)c->w * c->h * hp->downscale * hp->downscale * 3;
  g_autofree float *latent = random_latent (c->w, c->h, hp->z_channels);
  g_autofree float *got = g_new (float, n), *want = g_new (float, n);
  g_autoptr (GError) error = NULL;

  at_vae_model_set_attn_chunk (v.model, c->attn_chunk);
  g_assert_true (at_vae_model_decode (v.model, latent, c->w, c->h, 0, got, NULL, &error));
  g_assert_no_error (error);
  at_ref_vae_decode (&v.file, latent, c->w, c->h, want);
  at_test_assert_close (c->name, got, want, n, TOLERANCE);
  g_assert_cmpuint (at_vae_model_get_peak_activation_bytes (v.model), >, 0);
  vae_close (&v);
}

static void
test_encode (gconstpointer data)
{
  const CoderCase *c = data;
  Vae v;

  vae_open (&v, &c->shape);
  const AtVaeHParams *hp = at_vae_model_get_hparams (v.model);
  const gint64 w = c->w * hp->downscale, h = c->h * hp->downscale;
  const gsize n = (gsize)c->w * c->h * hp->z_channels;
  g_autofree float *rgb = at_test_random_floats (w * h * 3, -1, 1);
  g_autofree float *noise = at_test_random_floats (n, -2, 2);
  g_autofree float *got = g_new (float, n), *want = g_new (float, n);
  g_autofree float *mean = g_new (float, n);
  g_autoptr (GError) error = NULL;

  at_vae_model_set_attn_chunk (v.model, c->attn_chunk);
  g_assert_true (at_vae_model_encode (v.model, rgb, w, h, 0, NULL, mean, NULL, &error));
  g_assert_no_error (error);
  at_ref_vae_encode (&v.file, rgb, w, h, NULL, want);
  at_test_assert_close (c->name, mean, want, n, TOLERANCE);

  g_assert_true (at_vae_model_encode (v.model, rgb, w, h, 0, noise, got, NULL, &error));
  at_ref_vae_encode (&v.file, rgb, w, h, noise, want);
  at_test_assert_close (c->name, got, want, n, TOLERANCE);
  /* The noise moved the latent. */
  g_assert_cmpfloat (at_test_rel_l2 (got, mean, n), >, 0.05);

  /* Not a multiple of the downscale. */
  g_assert_false (at_vae_model_encode (v.model, rgb, w - 1, h, 0, NULL, got, NULL, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  vae_close (&v);
}

static void
test_tiled (void)
{
  const gint64 w = 40, h = 24, ds = 2;
  const gsize n = (gsize)w * ds * h * ds * 3;
  g_autofree float *latent = random_latent (w, h, 4);
  g_autofree float *whole = g_new (float, n), *got = g_new (float, n);
  g_autoptr (GError) error = NULL;
  Vae v;

  vae_open (&v, NULL);
  g_assert_true (at_vae_model_decode (v.model, latent, w, h, 0, whole, NULL, &error));
  g_assert_no_error (error);
  /* One tile covering the image is the untiled decode, bit for bit. */
  g_assert_true (at_vae_model_decode (v.model, latent, w, h, 64, got, NULL, &error));
  g_assert_cmpmem (got, n * sizeof (float), whole, n * sizeof (float));

  /* Tiles of 16 with an overlap of 4: 3 x 2 of them, starting at x 0, 12, 24 and y 0,
   * 8. Where one tile alone covers the image the result is that tile's own decode, bit
   * for bit: the first tile's [0, 12) x [0, 8) and the last's [28, 40) x [16, 24). */
  g_assert_true (at_vae_model_decode (v.model, latent, w, h, 16, got, NULL, &error));
  g_assert_no_error (error);
  {
    const gint64 corners[2][2] = { { 0, 0 }, { 24, 8 } };
    const gint64 alone[2][4] = { { 0, 12, 0, 8 }, { 28, 40, 16, 24 } };

    for (int t = 0; t < 2; t++)
      {
        const gint64 x0 = corners[t][0], y0 = corners[t][1], tw = 16 * ds;
        g_autofree float *crop = g_new (float, 16 * 16 * 4);
        g_autofree float *tile = g_new (float, tw *tw * 3);

        for (gint64 c = 0; c < 4; c++)
          for (gint64 y = 0; y < 16; y++)
            memcpy (crop + (c * 16 + y) * 16, latent + (c * h + y0 + y) * w + x0,
                    16 * sizeof (float));
        g_assert_true (at_vae_model_decode (v.model, crop, 16, 16, 0, tile, NULL, &error));
        for (gint64 c = 0; c < 3; c++)
          for (gint64 y = alone[t][2] * ds; y < alone[t][3] * ds; y++)
            for (gint64 x = alone[t][0] * ds; x < alone[t][1] * ds; x++)
              g_assert_cmpfloat (got[(c * h * ds + y) * w * ds + x], ==,
                                 tile[(c * tw + y - y0 * ds) * tw + x - x0 * ds]);
      }
  }
  /* Each tile's group norms and attention see only the tile and its convolutions see
   * zeros past its edges, so the tiled image differs from the whole one everywhere, by
   * ~0.2 on this random model whose every block is as strong as the residual (trained
   * VAEs are much less sensitive); 0.4 still catches a misplaced or unblended tile. */
  g_test_message ("tiled decode against untiled: relative L2 %.3g", at_test_rel_l2 (got, whole, n));
  g_assert_cmpfloat (at_test_rel_l2 (got, whole, n), <, 0.4);

  /* Encoding in tiles likewise. */
  {
    const gsize nz = (gsize)w * h * 4;
    g_autofree float *rgb = at_test_random_floats (n, -1, 1);
    g_autofree float *z_whole = g_new (float, nz), *z_tiled = g_new (float, nz);

    g_assert_true (
        at_vae_model_encode (v.model, rgb, w * ds, h * ds, 0, NULL, z_whole, NULL, &error));
    g_assert_true (
        at_vae_model_encode (v.model, rgb, w * ds, h * ds, 1000, NULL, z_tiled, NULL, &error));
    g_assert_cmpmem (z_tiled, nz * sizeof (float), z_whole, nz * sizeof (float));
    g_assert_true (
        at_vae_model_encode (v.model, rgb, w * ds, h * ds, 32, NULL, z_tiled, NULL, &error));
    g_assert_no_error (error);
    g_test_message ("tiled encode against untiled: relative L2 %.3g",
                    at_test_rel_l2 (z_tiled, z_whole, nz));
    g_assert_cmpfloat (at_test_rel_l2 (z_tiled, z_whole, nz), <, 0.4);
  }
  vae_close (&v);
}

static void
test_cancel (void)
{
  g_autofree float *latent = random_latent (16, 16, 4);
  g_autofree float *rgb = g_new (float, 32 * 32 * 3);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GError) error = NULL;
  Vae v;

  vae_open (&v, NULL);
  g_cancellable_cancel (cancellable);
  g_assert_false (at_vae_model_decode (v.model, latent, 16, 16, 8, rgb, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_false (
      at_vae_model_encode (v.model, rgb, 32, 32, 16, NULL, latent, cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  vae_close (&v);
}

static void
assert_invalid (const AtSdFixture *fixture, const char *message_part)
{
  g_autoptr (AtSafetensors) st = open_fixture (fixture);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtVaeModel) model = at_vae_model_new (at_test_gpu (), st, &error);

  g_assert_null (model);
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, message_part));
}

static void
test_malformed (void)
{
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .n_embd = 64, .n_layer = 1 };
  const AtSdFixtureVae decoder_only = { .decoder_only = TRUE };

  assert_invalid (&fixture, "no VAE in this checkpoint");
  fixture.with_vae = TRUE;
  fixture.misshape_tensor = VAE "decoder.up.0.block.1.conv2.weight";
  assert_invalid (&fixture, fixture.misshape_tensor);
  fixture.misshape_tensor = VAE "encoder.mid.attn_1.k.weight";
  assert_invalid (&fixture, fixture.misshape_tensor);
  fixture.misshape_tensor = VAE "encoder.down.0.downsample.conv.bias";
  assert_invalid (&fixture, fixture.misshape_tensor);
  fixture.misshape_tensor = NULL;
  fixture.omit_tensor = VAE "decoder.up.0.block.0.nin_shortcut.weight";
  assert_invalid (&fixture, fixture.omit_tensor);
  fixture.omit_tensor = VAE "quant_conv.bias";
  assert_invalid (&fixture, fixture.omit_tensor);

  /* Decoding only: encoding is refused. */
  fixture.omit_tensor = NULL;
  fixture.vae = &decoder_only;
  {
    g_autoptr (AtSafetensors) st = open_fixture (&fixture);
    g_autoptr (GError) error = NULL;
    g_autoptr (AtVaeModel) model = at_vae_model_new (at_test_gpu (), st, &error);
    float rgb[4 * 4 * 3] = { 0 }, latent[2 * 2 * 4];

    g_assert_no_error (error);
    g_assert_false (at_vae_model_encode (model, rgb, 4, 4, 0, NULL, latent, NULL, &error));
    g_assert_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED);
  }
}

int
main (int argc, char **argv)
{
  at_test_init (&argc, &argv);
  g_test_add_func ("/image/vae/hparams", test_hparams);
  static const BlockCase blocks[] = {
    { "decoder.mid.block_1", 7, 5, 64, 64, 0, FALSE },
    { "decoder.up.0.block.0", 9, 6, 64, 32, 0, FALSE }, /* nin_shortcut */
    { "encoder.down.1.block.0", 6, 4, 32, 64, 0, FALSE },
    { "decoder.mid.attn_1", 13, 11, 64, 64, 0, FALSE },
    /* 143 queries in chunks of 40: three whole and a partial one. */
    { "decoder.mid.attn_1", 13, 11, 64, 64, 40, FALSE },
    { "encoder.mid.attn_1", 9, 7, 64, 64, 17, TRUE },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (blocks); i++)
    {
      g_autofree char *path = g_strdup_printf ("/image/vae/block/%s/%zu", blocks[i].block, i);

      g_test_add_data_func (path, &blocks[i], test_block);
    }
  static const CoderCase coders[] = {
    { "tiny", { 0 }, 12, 7, 0 },
    { "three levels, chunked attention",
      { .ch = 32, .n_levels = 3, .ch_mult = { 1, 2, 2 }, .n_res_blocks = 1, .z_channels = 4 },
      6,
      5,
      7 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (coders); i++)
    {
      g_autofree char *decode = g_strdup_printf ("/image/vae/decode/%zu", i);
      g_autofree char *encode = g_strdup_printf ("/image/vae/encode/%zu", i);

      g_test_add_data_func (decode, &coders[i], test_decode);
      g_test_add_data_func (encode, &coders[i], test_encode);
    }
  g_test_add_func ("/image/vae/tiled", test_tiled);
  g_test_add_func ("/image/vae/cancel", test_cancel);
  g_test_add_func ("/image/vae/malformed", test_malformed);
  return at_test_run ();
}
