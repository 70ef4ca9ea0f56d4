/* The Stable Diffusion UNet on tiny random-weight checkpoints with the real LDM tensor
 * names: hyper-parameters read off the shapes, a ResBlock, a SpatialTransformer and whole
 * forward passes on the GPU against the CPU reference (SD 1.x and 2.x layouts, the
 * 9-channel inpainting input, three levels at odd latent sizes), determinism, malformed
 * files. */
#include <math.h>
#include <string.h>

#include "at-error.h"
#include "at-test.h"
#include "fixtures/sd-fixture.h"
#include "image/at-sd-checkpoint.h"
#include "image/at-unet.h"
#include "ref/at-ref-unet.h"

#define UNET "model.diffusion_model."
/* The CLIP window: the context the pipeline passes. */
#define N_CTX 77

/* F16 weights on both sides (the reference reads the same halves), F32 activations: the
 * GPU sums in F32 where the reference sums in double, over up to 9 x 256 conv taps and
 * through ~60 dependent ops, GroupNorm and LayerNorm keeping errors relative. lavapipe
 * lands at ~2e-6 of the output's scale; 1e-3 leaves room for other devices' summation
 * orders (and GEMMs staging activations in F16), while an attention scale off by sqrt 2
 * shows as 3e-2 in one SpatialTransformer and the skip joined in the wrong order as 1. */
#define TOLERANCE 1e-3

static const AtSdFixtureUnet three_levels = {
  .n_levels = 3,
  .channel_mult = { 1, 2, 2 },
  .n_res_blocks = 2,
  .n_attention_levels = 2,
};

static const AtSdFixtureUnet inpainting = { .in_channels = 9 };

typedef struct
{
  AtSafetensors *st;
  AtUnetFile file;
} Checkpoint;

/* The fixture's checkpoint, opened, and its family in info. */
static AtSafetensors *
open_fixture (const AtSdFixture *fixture, AtSdCheckpointInfo *info)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = at_sd_fixture_build (fixture, &error);
  AtSafetensors *st;

  g_assert_no_error (error);
  st = at_safetensors_new_from_bytes (bytes, "model.safetensors", &error);
  g_assert_no_error (error);
  g_assert_true (at_sd_checkpoint_detect (st, info, &error));
  return st;
}

static void
checkpoint_open_typed (Checkpoint *c, AtSdFixtureLayout layout, const AtSdFixtureUnet *unet,
                       const char *matrix_dtype)
{
  AtSdFixture fixture = { .layout = layout,
                          .seed = at_test_seed (),
                          .n_layer = 1,
                          .with_unet = TRUE,
                          .unet = unet,
                          .matrix_dtype = matrix_dtype };
  g_autoptr (GError) error = NULL;
  AtSdCheckpointInfo info;

  c->st = open_fixture (&fixture, &info);
  g_assert_true (at_unet_file_init (&c->file, c->st, &info, &error));
  g_assert_no_error (error);
}

static void
checkpoint_open (Checkpoint *c, AtSdFixtureLayout layout, const AtSdFixtureUnet *unet)
{
  checkpoint_open_typed (c, layout, unet, NULL);
}

static void
checkpoint_close (Checkpoint *c)
{
  at_unet_file_clear (&c->file);
  at_safetensors_free (c->st);
}

static AtUnetModel *
model_new (Checkpoint *c)
{
  g_autoptr (GError) error = NULL;
  AtUnetModel *model = at_unet_model_new (at_test_gpu (), c->st, &c->file.info, &error);

  g_assert_no_error (error);
  return model;
}

static void
test_hparams (void)
{
  Checkpoint c;
  const AtUnetHParams *hp = &c.file.hp;

  checkpoint_open (&c, AT_SD_FIXTURE_SD1, NULL);
  g_assert_cmpint (hp->in_channels, ==, 4);
  g_assert_cmpint (hp->out_channels, ==, 4);
  g_assert_cmpint (hp->model_channels, ==, 64);
  g_assert_cmpint (hp->context_dim, ==, 128);
  g_assert_cmpint (hp->n_levels, ==, 2);
  g_assert_cmpint (hp->level_channels[0], ==, 64);
  g_assert_cmpint (hp->level_channels[1], ==, 128);
  g_assert_cmpint (hp->n_res_blocks, ==, 1);
  g_assert_true (hp->level_attention[0] && hp->level_attention[1]);
  g_assert_cmpint (hp->transformer_depth, ==, 1);
  /* SD 1.x: 8 heads whatever the width. */
  g_assert_cmpint (hp->head_dim_per_level[0], ==, 8);
  g_assert_cmpint (hp->head_dim_per_level[1], ==, 16);
  g_assert_false (hp->linear_proj);
  g_assert_cmpint (c.file.n_input_blocks, ==, 4);
  g_assert_cmpint (c.file.n_output_blocks, ==, 4);
  g_assert_nonnull (c.file.input_blocks[2].down_w);
  g_assert_nonnull (c.file.input_blocks[3].res.skip_w);
  g_assert_null (c.file.input_blocks[1].res.skip_w);
  g_assert_nonnull (c.file.output_blocks[1].up_w);
  checkpoint_close (&c);

  checkpoint_open (&c, AT_SD_FIXTURE_SD1, &three_levels);
  g_assert_cmpint (hp->n_levels, ==, 3);
  g_assert_cmpint (hp->level_channels[2], ==, 128);
  g_assert_cmpint (hp->n_res_blocks, ==, 2);
  g_assert_true (hp->level_attention[0] && hp->level_attention[1]);
  g_assert_false (hp->level_attention[2]);
  g_assert_cmpint (c.file.n_input_blocks, ==, 9);
  g_assert_cmpint (c.file.n_output_blocks, ==, 9);
  /* Without attention the Upsample is the output block's second part. */
  g_assert_false (c.file.output_blocks[2].has_attn);
  g_assert_nonnull (c.file.output_blocks[2].up_w);
  checkpoint_close (&c);

  checkpoint_open (&c, AT_SD_FIXTURE_SD2, NULL);
  g_assert_true (hp->linear_proj);
  g_assert_cmpint (hp->head_dim_per_level[0], ==, 64);
  g_assert_cmpint (hp->head_dim_per_level[1], ==, 64);
  checkpoint_close (&c);

  checkpoint_open (&c, AT_SD_FIXTURE_SD1, &inpainting);
  g_assert_cmpint (hp->in_channels, ==, 9);
  g_assert_cmpint (hp->out_channels, ==, 4);
  {
    g_autoptr (AtUnetModel) model = model_new (&c);

    g_assert_cmpmem (at_unet_model_get_hparams (model), sizeof *hp, hp, sizeof *hp);
    g_assert_cmpuint (at_unet_model_get_weight_bytes (model), >, 0);
    g_assert_cmpuint (at_unet_model_get_activation_bytes (model), ==, 0);
    /* Every FLOP scales with the batch. */
    g_assert_cmpfloat (at_unet_model_forward_flops (model, 9, 7, 2, N_CTX), ==,
                       2 * at_unet_model_forward_flops (model, 9, 7, 1, N_CTX));
  }
  checkpoint_close (&c);
}

/* x, two different timesteps, context. */
typedef struct
{
  float *x, *context;
  float timesteps[2];
} Inputs;

static void
inputs_init (Inputs *in, gint64 x_size, gint64 context_dim)
{
  in->x = at_test_random_floats (x_size, -1.0f, 1.0f);
  in->context = at_test_random_floats (context_dim * N_CTX * 2, -1.0f, 1.0f);
  in->timesteps[0] = 999.0f;
  in->timesteps[1] = 37.5f;
}

static void
inputs_clear (Inputs *in)
{
  g_free (in->x);
  g_free (in->context);
}

/* The part of input_blocks.index at width x height, n = 2. */
static void
check_block (AtSdFixtureLayout layout, int index, gboolean attention, gint64 width, gint64 height)
{
  Checkpoint c;
  g_autoptr (GError) error = NULL;
  g_autofree char *what = NULL;

  checkpoint_open (&c, layout, NULL);
  {
    const AtUnetBlockTensors *b = &c.file.input_blocks[index];
    const gint64 c_in = attention ? b->attn.channels : b->res.c_in;
    const gint64 c_out = attention ? c_in : b->res.c_out;
    const gsize n_out = width * height * c_out * 2;
    g_autoptr (AtUnetModel) model = model_new (&c);
    g_autofree float *got = g_new (float, n_out), *want = g_new (float, n_out);
    Inputs in;

    inputs_init (&in, width * height * c_in * 2, c.file.hp.context_dim);
    g_assert_true (at_unet_model_forward_block (model, index, attention, in.x, width, height, 2,
                                                in.timesteps, in.context, N_CTX, got, &error));
    g_assert_no_error (error);
    at_ref_unet_forward_block (&c.file, index, attention, in.x, width, height, 2, in.timesteps,
                               in.context, N_CTX, want);
    what = g_strdup_printf (
        "%s input_blocks.%d %s %ldx%ld", layout == AT_SD_FIXTURE_SD2 ? "SD2" : "SD1", index,
        attention ? "SpatialTransformer" : "ResBlock", (long)width, (long)height);
    at_test_assert_close (what, got, want, n_out, TOLERANCE);
    /* The block did something: its output is not its input. */
    if (c_in == c_out)
      g_assert_cmpfloat (at_test_rel_l2 (got, in.x, n_out), >, 0.05);
    inputs_clear (&in);
  }
  checkpoint_close (&c);
}

static void
test_res_block (void)
{
  check_block (AT_SD_FIXTURE_SD1, 1, FALSE, 9, 7);
  /* 64 to 128 channels: the 1x1 skip connection. */
  check_block (AT_SD_FIXTURE_SD1, 3, FALSE, 5, 4);
}

static void
test_spatial_transformer (void)
{
  check_block (AT_SD_FIXTURE_SD1, 1, TRUE, 9, 7);
  check_block (AT_SD_FIXTURE_SD1, 3, TRUE, 5, 4);
  /* Linear projections, heads of 64. */
  check_block (AT_SD_FIXTURE_SD2, 3, TRUE, 5, 4);
}

typedef struct
{
  const char *name;
  AtSdFixtureLayout layout;
  const AtSdFixtureUnet *unet;
  gint64 width, height;
  const char *matrix_dtype; /* NULL: F16 */
} ForwardCase;

static void
test_forward (gconstpointer data)
{
  const ForwardCase *fc = data;
  Checkpoint c;
  g_autoptr (GError) error = NULL;

  checkpoint_open_typed (&c, fc->layout, fc->unet, fc->matrix_dtype);
  {
    const AtUnetHParams *hp = &c.file.hp;
    const gsize n_out = fc->width * fc->height * hp->out_channels * 2;
    g_autoptr (AtUnetModel) model = model_new (&c);
    g_autofree float *got = g_new (float, n_out), *want = g_new (float, n_out);
    g_autofree float *again = g_new (float, n_out), *swapped = g_new (float, n_out);
    Inputs in;

    inputs_init (&in, fc->width * fc->height * hp->in_channels * 2, hp->context_dim);
    g_assert_true (at_unet_model_forward (model, in.x, fc->width, fc->height, 2, in.timesteps,
                                          in.context, N_CTX, got, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (at_unet_model_get_activation_bytes (model), >, 0);
    at_ref_unet_forward (&c.file, in.x, fc->width, fc->height, 2, in.timesteps, in.context, N_CTX,
                         want);
    at_test_assert_close (fc->name, got, want, n_out, TOLERANCE);

    /* The same again is the same to the bit, also after a run at another shape. */
    g_assert_true (at_unet_model_forward (model, in.x, fc->width, fc->height, 2, in.timesteps,
                                          in.context, N_CTX, again, &error));
    g_assert_cmpmem (got, n_out * sizeof (float), again, n_out * sizeof (float));
    g_assert_true (
        at_unet_model_forward (model, in.x, 4, 2, 1, in.timesteps, in.context, 3, again, &error));
    g_assert_no_error (error);
    g_assert_true (at_unet_model_forward (model, in.x, fc->width, fc->height, 2, in.timesteps,
                                          in.context, N_CTX, again, &error));
    g_assert_cmpmem (got, n_out * sizeof (float), again, n_out * sizeof (float));

    /* Each sample has its own timestep: swapping them changes both outputs. */
    {
      const float swapped_t[2] = { in.timesteps[1], in.timesteps[0] };

      g_assert_true (at_unet_model_forward (model, in.x, fc->width, fc->height, 2, swapped_t,
                                            in.context, N_CTX, swapped, &error));
      g_assert_cmpfloat (at_test_rel_l2 (swapped, got, n_out / 2), >, 1e-3);
      g_assert_cmpfloat (at_test_rel_l2 (swapped + n_out / 2, got + n_out / 2, n_out / 2), >, 1e-3);
    }
    inputs_clear (&in);
  }
  checkpoint_close (&c);
}

static void
assert_invalid (const char *omit, const char *misshape)
{
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1,
                          .n_layer = 1,
                          .with_unet = TRUE,
                          .omit_tensor = omit,
                          .misshape_tensor = misshape };
  g_autoptr (GError) error = NULL;
  AtSdCheckpointInfo info;
  g_autoptr (AtSafetensors) st = open_fixture (&fixture, &info);

  g_assert_null (at_unet_model_new (at_test_gpu (), st, &info, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, omit ? omit : misshape));
}

static void
test_malformed (void)
{
  assert_invalid (UNET "output_blocks.2.1.transformer_blocks.0.attn2.to_v.weight", NULL);
  assert_invalid (UNET "middle_block.2.out_layers.3.bias", NULL);
  assert_invalid (UNET "out.2.weight", NULL);
  assert_invalid (UNET "time_embed.2.weight", NULL);
  /* The levels are read off the ResBlocks: one missing cuts its level short. */
  assert_invalid (UNET "input_blocks.3.0.in_layers.2.weight", NULL);
  assert_invalid (UNET "input_blocks.1.0.in_layers.2.weight", NULL);
  assert_invalid (NULL, UNET "input_blocks.3.0.skip_connection.weight");
  assert_invalid (NULL, UNET "output_blocks.1.2.conv.weight");
  assert_invalid (NULL, UNET "input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight");
  assert_invalid (NULL, UNET "middle_block.1.proj_in.weight");
}

static void
test_bad_arguments (void)
{
  Checkpoint c;
  g_autoptr (GError) error = NULL;
  float x[4] = { 0 }, t[1] = { 0 }, out[4];

  checkpoint_open (&c, AT_SD_FIXTURE_SD1, NULL);
  {
    g_autoptr (AtUnetModel) model = model_new (&c);

    g_assert_false (at_unet_model_forward (model, x, 0, 1, 1, t, x, 1, out, &error));
    g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
    g_clear_error (&error);
    g_assert_false (
        at_unet_model_forward_block (model, 2, FALSE, x, 1, 1, 1, t, x, 1, out, &error));
    g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  }
  checkpoint_close (&c);
}

int
main (int argc, char **argv)
{
  static const ForwardCase forward_cases[] = {
    /* 9 x 7 -> 5 x 4 and back: the Upsample meets the odd skip sizes. */
    { "/image/unet/forward-sd1", AT_SD_FIXTURE_SD1, NULL, 9, 7 },
    { "/image/unet/forward-sd2", AT_SD_FIXTURE_SD2, NULL, 7, 9 },
    { "/image/unet/forward-inpaint", AT_SD_FIXTURE_SD1, &inpainting, 6, 5 },
    /* 9 x 7 -> 5 x 4 -> 3 x 2, a level without attention, two ResBlocks a level. */
    { "/image/unet/forward-three-levels", AT_SD_FIXTURE_SD1, &three_levels, 9, 7 },
    /* BF16 conv weights become F16 on the GPU (exactly, at these magnitudes); F32 ones
     * stay F32. */
    { "/image/unet/forward-bf16", AT_SD_FIXTURE_SD1, NULL, 5, 6, "BF16" },
    { "/image/unet/forward-f32", AT_SD_FIXTURE_SD2, NULL, 4, 4, "F32" },
  };

  at_test_init (&argc, &argv);
  g_test_add_func ("/image/unet/hparams", test_hparams);
  g_test_add_func ("/image/unet/res-block", test_res_block);
  g_test_add_func ("/image/unet/spatial-transformer", test_spatial_transformer);
  for (gsize i = 0; i < G_N_ELEMENTS (forward_cases); i++)
    g_test_add_data_func (forward_cases[i].name, &forward_cases[i], test_forward);
  g_test_add_func ("/image/unet/malformed", test_malformed);
  g_test_add_func ("/image/unet/bad-arguments", test_bad_arguments);
  return at_test_run ();
}
