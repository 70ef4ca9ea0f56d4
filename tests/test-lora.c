/* kohya LoRA files merged into tiny checkpoints: text-encoder modules of SD 1.x and SD 2.x
 * (OpenCLIP's fused in_proj sliced), diffusers- and LDM-named UNet modules on UNets of one
 * and two res blocks per level, two LoRAs at once, reapplying and resetting, and bad
 * files. Every patched weight is checked against a double-precision computation made
 * here from the LoRA file's own tensors. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "at-error.h"
#include "at-test.h"
#include "fixtures/lora-fixture.h"
#include "fixtures/sd-fixture.h"
#include "formats/at-safetensors-writer.h"
#include "image/at-lora.h"
#include "ref/at-ref.h"

#define SD1_LAYERS "cond_stage_model.transformer.text_model.encoder.layers."
#define SD2_LAYERS "cond_stage_model.model.transformer.resblocks."
#define UNET "model.diffusion_model."

static char *tmp_dir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmp_dir, name, NULL);
}

static AtSafetensors *
open_sd_fixture (AtSdFixtureLayout layout, const char *matrix_dtype, AtSdCheckpointInfo *info)
{
  AtSdFixture fixture
      = { .layout = layout, .seed = at_test_seed (), .n_embd = 64, .matrix_dtype = matrix_dtype };
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = at_sd_fixture_build (&fixture, &error);
  AtSafetensors *st;

  g_assert_no_error (error);
  st = at_safetensors_new_from_bytes (bytes, "model.safetensors", &error);
  g_assert_no_error (error);
  g_assert_true (at_sd_checkpoint_detect (st, info, &error));
  return st;
}

static AtLora *
write_lora (AtSafetensors *checkpoint, const AtLoraFixtureModule *modules, guint n, AtType type,
            const char *name)
{
  g_autofree char *path = tmp_path (name);
  g_autoptr (GError) error = NULL;
  AtLora *lora;

  g_assert_true (at_lora_fixture_write (checkpoint, modules, n, type, g_rand_int (at_test_rand ()),
                                        path, &error));
  g_assert_no_error (error);
  lora = at_lora_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (at_lora_get_n_modules (lora), ==, n);
  g_assert_cmpstr (at_lora_get_name (lora), ==, name);
  return lora;
}

/* --- The reference ------------------------------------------------------------------ */

typedef struct
{
  const char *lora; /* file name under tmp_dir */
  const char *module;
  guint part, n_parts;
  double weight;
} Expected;

static double *
read_doubles (const AtSafetensorsTensor *t)
{
  g_autofree float *f = g_new (float, MAX (t->n_elements, 1));
  double *d = g_new (double, MAX (t->n_elements, 1));

  at_ref_dequantize_row (t->type, t->data, f, t->n_elements);
  for (gint64 i = 0; i < t->n_elements; i++)
    d[i] = f[i];
  return d;
}

/* want += weight * alpha / rank * up · down over the rows of the part. */
static void
add_module (double *want, gint64 row_length, const Expected *e)
{
  g_autofree char *path = tmp_path (e->lora);
  g_autofree char *down_name = g_strconcat (e->module, ".lora_down.weight", NULL);
  g_autofree char *up_name = g_strconcat (e->module, ".lora_up.weight", NULL);
  g_autofree char *alpha_name = g_strconcat (e->module, ".alpha", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtSafetensors) st = at_safetensors_open (path, &error);
  const AtSafetensorsTensor *down, *up, *alpha;
  g_autofree double *d = NULL, *u = NULL, *a = NULL;
  gint64 rank, out;

  g_assert_no_error (error);
  down = at_safetensors_lookup (st, down_name);
  up = at_safetensors_lookup (st, up_name);
  alpha = at_safetensors_lookup (st, alpha_name);
  g_assert_nonnull (down);
  g_assert_nonnull (up);
  rank = down->ne[down->n_dims - 1];
  out = up->ne[up->n_dims - 1];
  g_assert_cmpint (down->n_elements, ==, rank * row_length);
  d = read_doubles (down);
  u = read_doubles (up);
  a = alpha != NULL ? read_doubles (alpha) : NULL;
  for (gint64 o = 0; o < out; o++)
    for (gint64 i = 0; i < row_length; i++)
      {
        double sum = 0;

        for (gint64 r = 0; r < rank; r++)
          sum += u[o * rank + r] * d[r * row_length + i];
        want[(e->part * out + o) * row_length + i]
            += e->weight * (a != NULL ? a[0] : (double)rank) / (double)rank * sum;
      }
}

/* Half a unit in the last place of x in type: the most a correct rounding moves it. */
static double
half_ulp (AtType type, double x)
{
  const int mantissa = type == AT_TYPE_F32 ? 24 : type == AT_TYPE_F16 ? 11 : 8;
  const int min_exp = type == AT_TYPE_F16 ? -13 : -125;
  int e;

  frexp (x, &e);
  return ldexp (0.5, MAX (e, min_exp) - mantissa);
}

/* Tensor name of checkpoint now reads the pristine copy's weights plus the expected
 * modules, each element rounded once: within half an ulp of the double result (plus
 * 1e-12 relative for the order of the double sums). */
static void
check_patched (AtSafetensors *checkpoint, AtSafetensors *pristine, const char *name,
               const Expected *expected, guint n)
{
  const AtSafetensorsTensor *t = at_safetensors_lookup (checkpoint, name);
  const AtSafetensorsTensor *original = at_safetensors_lookup (pristine, name);
  g_autofree double *want = NULL;
  g_autofree float *got = NULL;
  gint64 row_length;

  g_assert_nonnull (t);
  g_assert_nonnull (original);
  g_assert_true (t->data != original->data);
  want = read_doubles (original);
  got = g_new (float, t->n_elements);
  row_length = t->n_elements / t->ne[t->n_dims - 1];
  for (guint i = 0; i < n; i++)
    add_module (want, row_length, &expected[i]);
  at_ref_dequantize_row (t->type, t->data, got, t->n_elements);
  for (gint64 i = 0; i < t->n_elements; i++)
    if (fabs (got[i] - want[i]) > half_ulp (t->type, want[i]) + 1e-12 * fabs (want[i]))
      g_error ("%s[%" G_GINT64_FORMAT "] = %.9g, want %.12g", name, i, got[i], want[i]);
}

/* Every tensor of checkpoint but those in `except` (NULL-terminated, may be NULL) holds
 * exactly the pristine bytes. */
static void
check_unchanged (AtSafetensors *checkpoint, AtSafetensors *pristine, const char *const *except)
{
  for (guint i = 0; i < at_safetensors_get_n_tensors (checkpoint); i++)
    {
      const AtSafetensorsTensor *t = at_safetensors_get_tensor (checkpoint, i);
      const AtSafetensorsTensor *o = at_safetensors_get_tensor (pristine, i);

      if (except != NULL && g_strv_contains (except, t->name))
        continue;
      g_assert_cmpstr (t->name, ==, o->name);
      if (memcmp (t->data, o->data, t->size) != 0)
        g_error ("%s changed", t->name);
    }
}

static guint
apply (AtSafetensors *checkpoint, const AtSdCheckpointInfo *info, AtLora *const *loras,
       const float *weights, guint n, char ***unmatched)
{
  g_autoptr (GError) error = NULL;
  guint n_patched = G_MAXUINT;

  g_assert_true (
      at_lora_apply (checkpoint, info, loras, weights, n, &n_patched, unmatched, &error));
  g_assert_no_error (error);
  return n_patched;
}

/* --- Text encoders ------------------------------------------------------------------- */

static void
test_sd1_text_encoder (void)
{
  AtSdCheckpointInfo info;
  g_autoptr (AtSafetensors) st = open_sd_fixture (AT_SD_FIXTURE_SD1, NULL, &info);
  g_autoptr (AtSafetensors) pristine = open_sd_fixture (AT_SD_FIXTURE_SD1, NULL, &info);
  const AtLoraFixtureModule modules[] = {
    { "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
      SD1_LAYERS "0.self_attn.q_proj.weight", .alpha = 2 },
    { "lora_te_text_model_encoder_layers_0_self_attn_out_proj",
      SD1_LAYERS "0.self_attn.out_proj.weight", .rank = 1, .alpha = 1 },
    { "lora_te_text_model_encoder_layers_1_mlp_fc2", SD1_LAYERS "1.mlp.fc2.weight", .rank = 8 },
    /* Layers the checkpoint does not have: listed, not an error. */
    { "lora_te_text_model_encoder_layers_5_mlp_fc1", SD1_LAYERS "1.mlp.fc1.weight" },
    { "lora_te2_text_model_encoder_layers_0_mlp_fc1", SD1_LAYERS "1.mlp.fc1.weight" },
  };
  g_autoptr (AtLora) lora
      = write_lora (st, modules, G_N_ELEMENTS (modules), AT_TYPE_F16, "sd1.safetensors");
  const float weight = 0.75f, zero = 0.0f;
  g_auto (GStrv) unmatched = NULL;
  const char *patched[]
      = { SD1_LAYERS "0.self_attn.q_proj.weight", SD1_LAYERS "0.self_attn.out_proj.weight",
          SD1_LAYERS "1.mlp.fc2.weight", NULL };

  g_assert_cmpuint (apply (st, &info, &lora, &weight, 1, &unmatched), ==, 3);
  g_assert_cmpstrv (
      unmatched,
      ((const char *[]){ "sd1.safetensors: lora_te2_text_model_encoder_layers_0_mlp_fc1",
                         "sd1.safetensors: lora_te_text_model_encoder_layers_5_mlp_fc1", NULL }));
  for (guint i = 0; i < 3; i++)
    {
      Expected e = { "sd1.safetensors", modules[i].module, 0, 1, weight };

      check_patched (st, pristine, patched[i], &e, 1);
    }
  check_unchanged (st, pristine, patched);

  /* Applying again starts from the file: the same result, not twice the change. */
  g_autofree guint8 *first = g_memdup2 (at_safetensors_lookup (st, patched[0])->data,
                                        at_safetensors_lookup (st, patched[0])->size);
  g_assert_cmpuint (apply (st, &info, &lora, &weight, 1, NULL), ==, 3);
  g_assert_cmpmem (at_safetensors_lookup (st, patched[0])->data,
                   at_safetensors_lookup (st, patched[0])->size, first,
                   at_safetensors_lookup (st, patched[0])->size);

  /* Weight 0 and an empty set both give the file's bytes back exactly. */
  g_assert_cmpuint (apply (st, &info, &lora, &zero, 1, NULL), ==, 0);
  check_unchanged (st, pristine, NULL);
  g_assert_cmpuint (apply (st, &info, &lora, &weight, 1, NULL), ==, 3);
  g_assert_cmpuint (apply (st, &info, NULL, NULL, 0, NULL), ==, 0);
  check_unchanged (st, pristine, NULL);
}

/* SD 2.x: kohya names the OpenCLIP layers as HF CLIP ones; q, k and v are thirds of
 * in_proj_weight, fc1 and fc2 are c_fc and c_proj. */
static void
test_sd2_text_encoder (void)
{
  AtSdCheckpointInfo info;
  g_autoptr (AtSafetensors) st = open_sd_fixture (AT_SD_FIXTURE_SD2, NULL, &info);
  g_autoptr (AtSafetensors) pristine = open_sd_fixture (AT_SD_FIXTURE_SD2, NULL, &info);
  const AtLoraFixtureModule modules[] = {
    { "lora_te_text_model_encoder_layers_0_self_attn_q_proj", SD2_LAYERS "0.attn.in_proj_weight", 3,
      .alpha = 3 },
    { "lora_te_text_model_encoder_layers_0_self_attn_v_proj", SD2_LAYERS "0.attn.in_proj_weight", 3,
      .rank = 2 },
    { "lora_te_text_model_encoder_layers_1_self_attn_k_proj", SD2_LAYERS "1.attn.in_proj_weight",
      3 },
    { "lora_te_text_model_encoder_layers_1_self_attn_out_proj",
      SD2_LAYERS "1.attn.out_proj.weight" },
    { "lora_te_text_model_encoder_layers_0_mlp_fc1", SD2_LAYERS "0.mlp.c_fc.weight" },
    { "lora_te_text_model_encoder_layers_1_mlp_fc2", SD2_LAYERS "1.mlp.c_proj.weight" },
  };
  g_autoptr (AtLora) lora
      = write_lora (st, modules, G_N_ELEMENTS (modules), AT_TYPE_F32, "sd2.safetensors");
  const float weight = -1.25f;
  g_auto (GStrv) unmatched = NULL;
  const char *patched[] = { SD2_LAYERS "0.attn.in_proj_weight",  SD2_LAYERS "1.attn.in_proj_weight",
                            SD2_LAYERS "1.attn.out_proj.weight", SD2_LAYERS "0.mlp.c_fc.weight",
                            SD2_LAYERS "1.mlp.c_proj.weight",    NULL };
  const Expected layer0[] = { { "sd2.safetensors", modules[0].module, 0, 3, weight },
                              { "sd2.safetensors", modules[1].module, 2, 3, weight } };
  const Expected layer1 = { "sd2.safetensors", modules[2].module, 1, 3, weight };
  const AtSafetensorsTensor *t, *o;

  g_assert_cmpuint (apply (st, &info, &lora, &weight, 1, &unmatched), ==, 5);
  g_assert_cmpstrv (unmatched, ((const char *[]){ NULL }));
  check_patched (st, pristine, patched[0], layer0, 2);
  check_patched (st, pristine, patched[1], &layer1, 1);
  for (guint i = 3; i < 6; i++)
    {
      Expected e = { "sd2.safetensors", modules[i].module, 0, 1, weight };

      check_patched (st, pristine, patched[i - 1], &e, 1);
    }
  check_unchanged (st, pristine, patched);
  /* The thirds no module touches keep their bits: k of layer 0, q and v of layer 1. */
  t = at_safetensors_lookup (st, patched[0]);
  o = at_safetensors_lookup (pristine, patched[0]);
  g_assert_cmpmem (t->data + t->size / 3, t->size / 3, o->data + o->size / 3, o->size / 3);
  t = at_safetensors_lookup (st, patched[1]);
  o = at_safetensors_lookup (pristine, patched[1]);
  g_assert_cmpmem (t->data, t->size / 3, o->data, o->size / 3);
  g_assert_cmpmem (t->data + 2 * t->size / 3, t->size / 3, o->data + 2 * o->size / 3, o->size / 3);
}

/* Two LoRAs at once on a BF16 checkpoint, sharing one tensor. */
static void
test_two_loras (void)
{
  AtSdCheckpointInfo info;
  g_autoptr (AtSafetensors) st = open_sd_fixture (AT_SD_FIXTURE_SD1, "BF16", &info);
  g_autoptr (AtSafetensors) pristine = open_sd_fixture (AT_SD_FIXTURE_SD1, "BF16", &info);
  const AtLoraFixtureModule a_modules[] = {
    { "lora_te_text_model_encoder_layers_0_self_attn_k_proj",
      SD1_LAYERS "0.self_attn.k_proj.weight", .rank = 4, .alpha = 1 },
    { "lora_te_text_model_encoder_layers_1_mlp_fc1", SD1_LAYERS "1.mlp.fc1.weight" },
  };
  const AtLoraFixtureModule b_modules[] = {
    { "lora_te_text_model_encoder_layers_0_self_attn_k_proj",
      SD1_LAYERS "0.self_attn.k_proj.weight", .rank = 16, .alpha = 8 },
    { "lora_te_text_model_encoder_layers_0_mlp_fc2", SD1_LAYERS "0.mlp.fc2.weight", .rank = 2 },
  };
  g_autoptr (AtLora) a = write_lora (st, a_modules, 2, AT_TYPE_F16, "a.safetensors");
  g_autoptr (AtLora) b = write_lora (st, b_modules, 2, AT_TYPE_BF16, "b.safetensors");
  AtLora *loras[] = { a, b };
  const float weights[] = { 0.5f, -1.5f };
  const Expected shared[] = { { "a.safetensors", a_modules[0].module, 0, 1, 0.5 },
                              { "b.safetensors", b_modules[0].module, 0, 1, -1.5 } };
  const Expected fc1 = { "a.safetensors", a_modules[1].module, 0, 1, 0.5 };
  const Expected fc2 = { "b.safetensors", b_modules[1].module, 0, 1, -1.5 };
  const char *patched[] = { a_modules[0].tensor, a_modules[1].tensor, b_modules[1].tensor, NULL };

  g_assert_cmpuint (apply (st, &info, loras, weights, 2, NULL), ==, 3);
  check_patched (st, pristine, patched[0], shared, 2);
  check_patched (st, pristine, patched[1], &fc1, 1);
  check_patched (st, pristine, patched[2], &fc2, 1);
  check_unchanged (st, pristine, patched);
}

/* --- UNet names ---------------------------------------------------------------------- */

typedef struct
{
  const char *name; /* under model.diffusion_model. */
  gint64 ne[4];     /* ggml order; ne[2] = 0: a matrix */
} UnetTensor;

/* A checkpoint of just these UNet tensors, F16, and a second copy left untouched. */
static void
open_unet (const UnetTensor *tensors, guint n, AtSafetensors **st, AtSafetensors **pristine)
{
  g_autoptr (AtSafetensorsWriter) writer = at_safetensors_writer_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *path = tmp_path ("unet.safetensors");

  for (guint i = 0; i < n; i++)
    {
      const guint n_dims = tensors[i].ne[2] ? 4 : 2;
      const gint64 count = tensors[i].ne[0] * tensors[i].ne[1]
                           * (n_dims == 4 ? tensors[i].ne[2] * tensors[i].ne[3] : 1);
      g_autofree float *values = at_test_random_floats (count, -1, 1);
      guint16 *data = g_new (guint16, count);
      g_autofree char *name = g_strconcat (UNET, tensors[i].name, NULL);

      at_ref_quantize_row (AT_TYPE_F16, values, data, count);
      g_autoptr (GBytes) bytes = g_bytes_new_take (data, count * 2);
      g_assert_true (at_safetensors_writer_add_tensor (writer, name, AT_TYPE_F16, n_dims,
                                                       tensors[i].ne, bytes, &error));
    }
  g_assert_true (at_safetensors_writer_write (writer, path, &error));
  *st = at_safetensors_open (path, &error);
  g_assert_no_error (error);
  *pristine = at_safetensors_open (path, &error);
  g_assert_no_error (error);
}

typedef struct
{
  const char *module;
  const char *tensor; /* under model.diffusion_model. */
  gboolean flat;
} UnetModule;

/* Every module lands on its tensor and changes it as the reference says. */
static void
check_unet_mapping (const UnetTensor *tensors, guint n_tensors, const UnetModule *modules,
                    guint n_modules)
{
  g_autoptr (AtSafetensors) st = NULL;
  g_autoptr (AtSafetensors) pristine = NULL;
  g_autofree AtLoraFixtureModule *fm = g_new0 (AtLoraFixtureModule, n_modules);
  g_auto (GStrv) full = g_new0 (char *, n_modules + 1);
  g_autoptr (AtLora) lora = NULL;
  g_auto (GStrv) unmatched = NULL;
  const AtSdCheckpointInfo info = { .family = AT_SD_FAMILY_SD1 };
  const float weight = 0.8f;

  open_unet (tensors, n_tensors, &st, &pristine);
  for (guint i = 0; i < n_modules; i++)
    {
      full[i] = g_strconcat (UNET, modules[i].tensor, NULL);
      fm[i] = (AtLoraFixtureModule){ modules[i].module, full[i], .rank = 1 + i % 4,
                                     .alpha = i % 2 ? 0 : 0.5 * (i + 1), .flat = modules[i].flat };
    }
  lora = write_lora (st, fm, n_modules, AT_TYPE_F16, "unet-lora.safetensors");
  g_assert_cmpuint (apply (st, &info, &lora, &weight, 1, &unmatched), ==, n_modules);
  g_assert_cmpstrv (unmatched, ((const char *[]){ NULL }));
  for (guint i = 0; i < n_modules; i++)
    {
      Expected e = { "unet-lora.safetensors", modules[i].module, 0, 1, weight };

      check_patched (st, pristine, full[i], &e, 1);
    }
  check_unchanged (st, pristine, (const char *const *)full);
}

/* Two res blocks per level, as SD 1.x and 2.x have: the A1111 numbering. */
static void
test_unet_two_res_blocks (void)
{
  static const UnetTensor tensors[] = {
    { "input_blocks.0.0.weight", { 3, 3, 4, 8 } },
    { "input_blocks.1.0.in_layers.2.weight", { 3, 3, 8, 8 } },
    { "input_blocks.1.1.proj_in.weight", { 1, 1, 8, 8 } },
    { "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight", { 8, 8 } },
    { "input_blocks.2.0.in_layers.2.weight", { 3, 3, 8, 8 } },
    { "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight", { 12, 8 } },
    { "input_blocks.3.0.op.weight", { 3, 3, 8, 8 } },
    { "input_blocks.4.0.skip_connection.weight", { 1, 1, 8, 16 } },
    { "input_blocks.5.1.proj_out.weight", { 1, 1, 16, 16 } },
    { "middle_block.0.emb_layers.1.weight", { 32, 16 } },
    { "middle_block.1.proj_in.weight", { 1, 1, 16, 16 } },
    { "middle_block.2.out_layers.3.weight", { 3, 3, 16, 16 } },
    { "output_blocks.0.0.in_layers.2.weight", { 3, 3, 32, 16 } },
    { "output_blocks.2.1.conv.weight", { 3, 3, 16, 16 } },
    { "output_blocks.3.1.transformer_blocks.0.ff.net.2.weight", { 32, 8 } },
    { "output_blocks.5.1.proj_in.weight", { 1, 1, 8, 8 } },
    { "output_blocks.5.2.conv.weight", { 3, 3, 8, 8 } },
    { "time_embed.0.weight", { 8, 32 } },
    { "out.2.weight", { 3, 3, 8, 4 } },
  };
  static const UnetModule modules[] = {
    { "lora_unet_conv_in", "input_blocks.0.0.weight" },
    { "lora_unet_down_blocks_0_resnets_0_conv1", "input_blocks.1.0.in_layers.2.weight" },
    { "lora_unet_down_blocks_0_attentions_0_proj_in", "input_blocks.1.1.proj_in.weight", TRUE },
    { "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
      "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight" },
    { "lora_unet_down_blocks_0_attentions_1_transformer_blocks_0_attn2_to_k",
      "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight" },
    { "lora_unet_down_blocks_0_downsamplers_0_conv", "input_blocks.3.0.op.weight" },
    { "lora_unet_down_blocks_1_resnets_0_conv_shortcut",
      "input_blocks.4.0.skip_connection.weight" },
    { "lora_unet_input_blocks_5_1_proj_out", "input_blocks.5.1.proj_out.weight", TRUE },
    { "lora_unet_mid_block_resnets_0_time_emb_proj", "middle_block.0.emb_layers.1.weight" },
    { "lora_unet_mid_block_attentions_0_proj_in", "middle_block.1.proj_in.weight", TRUE },
    { "lora_unet_mid_block_resnets_1_conv2", "middle_block.2.out_layers.3.weight" },
    { "lora_unet_up_blocks_0_resnets_0_conv1", "output_blocks.0.0.in_layers.2.weight" },
    { "lora_unet_up_blocks_0_upsamplers_0_conv", "output_blocks.2.1.conv.weight" },
    { "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_ff_net_2",
      "output_blocks.3.1.transformer_blocks.0.ff.net.2.weight" },
    { "lora_unet_up_blocks_1_upsamplers_0_conv", "output_blocks.5.2.conv.weight" },
    { "lora_unet_time_embedding_linear_1", "time_embed.0.weight" },
    { "lora_unet_conv_out", "out.2.weight" },
  };

  check_unet_mapping (tensors, G_N_ELEMENTS (tensors), modules, G_N_ELEMENTS (modules));
}

/* One res block per level: the numbering follows the checkpoint, not SD's 3s. */
static void
test_unet_one_res_block (void)
{
  static const UnetTensor tensors[] = {
    { "input_blocks.0.0.weight", { 3, 3, 4, 8 } },
    { "input_blocks.1.0.in_layers.2.weight", { 3, 3, 8, 8 } },
    { "input_blocks.1.1.proj_in.weight", { 1, 1, 8, 8 } },
    { "input_blocks.2.0.op.weight", { 3, 3, 8, 8 } },
    { "input_blocks.3.0.in_layers.2.weight", { 3, 3, 8, 16 } },
    { "input_blocks.3.1.proj_in.weight", { 1, 1, 16, 16 } },
    { "output_blocks.0.0.in_layers.2.weight", { 3, 3, 32, 16 } },
    { "output_blocks.1.1.conv.weight", { 3, 3, 16, 16 } },
    { "output_blocks.2.1.proj_in.weight", { 1, 1, 8, 8 } },
    { "output_blocks.3.0.out_layers.3.weight", { 3, 3, 8, 8 } },
  };
  static const UnetModule modules[] = {
    { "lora_unet_down_blocks_0_resnets_0_conv1", "input_blocks.1.0.in_layers.2.weight" },
    { "lora_unet_down_blocks_0_downsamplers_0_conv", "input_blocks.2.0.op.weight" },
    { "lora_unet_down_blocks_1_resnets_0_conv1", "input_blocks.3.0.in_layers.2.weight" },
    { "lora_unet_down_blocks_1_attentions_0_proj_in", "input_blocks.3.1.proj_in.weight" },
    { "lora_unet_up_blocks_0_upsamplers_0_conv", "output_blocks.1.1.conv.weight" },
    { "lora_unet_up_blocks_1_attentions_0_proj_in", "output_blocks.2.1.proj_in.weight", TRUE },
    { "lora_unet_up_blocks_1_resnets_1_conv2", "output_blocks.3.0.out_layers.3.weight" },
  };

  check_unet_mapping (tensors, G_N_ELEMENTS (tensors), modules, G_N_ELEMENTS (modules));
}

/* --- Bad files ----------------------------------------------------------------------- */

/* A LoRA file of the given tensors (ggml shapes; n_dims 0 is a scalar), F32 zeros. */
static char *
write_raw (const char *file, const char *const *names, const guint *n_dims,
           const gint64 (*shapes)[4], guint n)
{
  g_autoptr (AtSafetensorsWriter) writer = at_safetensors_writer_new ();
  g_autoptr (GError) error = NULL;
  char *path = tmp_path (file);

  for (guint i = 0; i < n; i++)
    {
      gint64 count = 1;

      for (guint d = 0; d < n_dims[i]; d++)
        count *= shapes[i][d];
      g_autoptr (GBytes) bytes = g_bytes_new_take (g_new0 (float, count), count * 4);
      g_assert_true (at_safetensors_writer_add_tensor (writer, names[i], AT_TYPE_F32, n_dims[i],
                                                       shapes[i], bytes, &error));
    }
  g_assert_true (at_safetensors_writer_write (writer, path, &error));
  return path;
}

static void
assert_open_fails (const char *path, int code, const char *fragment)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtLora) lora = at_lora_open (path, &error);

  g_assert_null (lora);
  g_assert_error (error, AT_ERROR, code);
  if (strstr (error->message, fragment) == NULL)
    g_error ("expected '%s' in: %s", fragment, error->message);
}

static void
test_bad_files (void)
{
  static const gint64 shapes[][4] = { { 8, 4 }, { 3, 8 }, { 1 }, { 8, 4 } };
  static const guint matrices[] = { 2, 2, 1, 2 };
  const char *mismatched[] = { "m.lora_down.weight", "m.lora_up.weight" };
  const char *no_up[] = { "m.lora_down.weight", "m.alpha" };
  const char *loha[] = { "m.lora_down.weight", "m.lora_up.weight", "m.alpha", "n.hada_w1_a" };
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .n_embd = 64 };
  g_autofree char *checkpoint_path = tmp_path ("model.safetensors");
  g_autofree char *path = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_true (at_sd_fixture_write (&fixture, checkpoint_path, &error));
  assert_open_fails (checkpoint_path, AT_ERROR_INVALID_FILE,
                     "model.safetensors: not a LoRA: it has no '<module>.lora_down.weight'");
  g_free (path);
  path = write_raw ("rank.safetensors", mismatched, matrices, shapes, 2);
  assert_open_fails (path, AT_ERROR_INVALID_FILE,
                     "rank.safetensors: module 'm': lora_down has rank 4 but lora_up 3");
  g_free (path);
  path = write_raw ("no-up.safetensors", no_up, (const guint[]){ 2, 0 }, shapes, 2);
  assert_open_fails (path, AT_ERROR_INVALID_FILE, "module 'm' has no lora_up weight");
  g_free (path);
  path = write_raw ("loha.safetensors", loha, (const guint[]){ 2, 2, 0, 2 },
                    (const gint64[][4]){ { 8, 4 }, { 4, 8 }, { 1 }, { 8, 4 } }, 4);
  assert_open_fails (path, AT_ERROR_UNSUPPORTED, "tensor 'n.hada_w1_a' is not part of a LoRA");
  g_free (path);
  path = write_raw ("alpha.safetensors", loha, (const guint[]){ 2, 2, 1 },
                    (const gint64[][4]){ { 8, 4 }, { 4, 8 }, { 2 } }, 3);
  assert_open_fails (path, AT_ERROR_INVALID_FILE, "module 'm': alpha is not a single number");
  assert_open_fails ("/nonexistent/x.safetensors", AT_ERROR_INVALID_FILE, "x.safetensors: ");
}

/* A module shaped for another tensor: an error naming both, the checkpoint left reset. */
static void
test_shape_mismatch (void)
{
  AtSdCheckpointInfo info;
  g_autoptr (AtSafetensors) st = open_sd_fixture (AT_SD_FIXTURE_SD1, NULL, &info);
  g_autoptr (AtSafetensors) pristine = open_sd_fixture (AT_SD_FIXTURE_SD1, NULL, &info);
  const AtLoraFixtureModule good[] = {
    { "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
      SD1_LAYERS "0.self_attn.q_proj.weight" },
  };
  const AtLoraFixtureModule bad[] = {
    { "lora_te_text_model_encoder_layers_0_mlp_fc1", SD1_LAYERS "0.mlp.fc2.weight" },
  };
  g_autoptr (AtLora) good_lora = write_lora (st, good, 1, AT_TYPE_F16, "good.safetensors");
  g_autoptr (AtLora) bad_lora = write_lora (st, bad, 1, AT_TYPE_F16, "bad.safetensors");
  AtLora *both[] = { good_lora, bad_lora };
  const float weights[] = { 1.0f, 1.0f };
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (apply (st, &info, both, weights, 1, NULL), ==, 1);
  g_assert_false (at_lora_apply (st, &info, both, weights, 2, NULL, NULL, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_FILE);
  g_assert_cmpstr (error->message, ==,
                   "bad.safetensors: module 'lora_te_text_model_encoder_layers_0_mlp_fc1' "
                   "changes a [64, 256] weight, but '" SD1_LAYERS "0.mlp.fc1.weight' in "
                   "model.safetensors is [256, 64]");
  check_unchanged (st, pristine, NULL);
}

static void
test_set_tensor_data (void)
{
  AtSdCheckpointInfo info;
  g_autoptr (AtSafetensors) st = open_sd_fixture (AT_SD_FIXTURE_SD1, NULL, &info);
  const char *name = SD1_LAYERS "0.layer_norm1.weight";
  const AtSafetensorsTensor *t = at_safetensors_lookup (st, name);
  const guint8 *file_data = t->data;
  g_autoptr (GBytes) right = g_bytes_new_take (g_malloc0 (t->size), t->size);
  g_autoptr (GBytes) wrong = g_bytes_new_take (g_malloc0 (t->size + 4), t->size + 4);
  GError *error = NULL;

  g_assert_false (at_safetensors_set_tensor_data (st, name, wrong, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (at_safetensors_set_tensor_data (st, "nothing", right, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_true (at_safetensors_set_tensor_data (st, name, right, &error));
  g_assert_true (t->data == g_bytes_get_data (right, NULL));
  at_safetensors_reset_tensor_data (st);
  g_assert_true (t->data == file_data);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int status;

  at_test_init (&argc, &argv);
  tmp_dir = g_dir_make_tmp ("test-lora-XXXXXX", &error);
  g_assert_no_error (error);
  g_test_add_func ("/lora/set-tensor-data", test_set_tensor_data);
  g_test_add_func ("/lora/sd1-text-encoder", test_sd1_text_encoder);
  g_test_add_func ("/lora/sd2-text-encoder", test_sd2_text_encoder);
  g_test_add_func ("/lora/two-loras", test_two_loras);
  g_test_add_func ("/lora/unet-two-res-blocks", test_unet_two_res_blocks);
  g_test_add_func ("/lora/unet-one-res-block", test_unet_one_res_block);
  g_test_add_func ("/lora/bad-files", test_bad_files);
  g_test_add_func ("/lora/shape-mismatch", test_shape_mismatch);
  status = at_test_run ();
  g_autoptr (GDir) dir = g_dir_open (tmp_dir, 0, NULL);
  for (const char *name; dir != NULL && (name = g_dir_read_name (dir)) != NULL;)
    {
      g_autofree char *path = tmp_path (name);

      g_unlink (path);
    }
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return status;
}
