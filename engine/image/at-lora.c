/* at-lora.c: kohya LoRA files and their merge into checkpoint weights. */
#include "image/at-lora.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "at-error.h"
#include "ref/at-ref.h"

#define UNET_PREFIX "model.diffusion_model."
#define SD1_TE_PREFIX "cond_stage_model.transformer."
#define SD2_LAYERS_PREFIX "cond_stage_model.model.transformer.resblocks."

#define DOWN_SUFFIX ".lora_down.weight"
#define UP_SUFFIX ".lora_up.weight"
#define ALPHA_SUFFIX ".alpha"

typedef struct
{
  char *name; /* as the file spells it: "lora_unet_..." */
  const AtSafetensorsTensor *down, *up, *alpha;
  gint64 rank;
  gint64 in;    /* elements of one row of the layer's weight: c_in (times kh kw for a conv) */
  gint64 out;   /* rows of the layer's weight */
  double scale; /* alpha / rank */
} Module;

struct _AtLora
{
  AtSafetensors *st;
  GPtrArray *modules; /* Module*, sorted by name */
};

static gboolean G_GNUC_PRINTF (4, 5)
    fail (GError **error, AtError code, const char *file, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, AT_ERROR, code, "%s: %s", file, message);
  return FALSE;
}

static void
module_free (Module *m)
{
  g_free (m->name);
  g_free (m);
}

void
at_lora_free (AtLora *lora)
{
  if (lora == NULL)
    return;
  g_clear_pointer (&lora->modules, g_ptr_array_unref);
  g_clear_pointer (&lora->st, at_safetensors_free);
  g_free (lora);
}

const char *
at_lora_get_name (AtLora *lora)
{
  return at_safetensors_get_name (lora->st);
}

guint
at_lora_get_n_modules (AtLora *lora)
{
  return lora->modules->len;
}

/* t's elements as floats (F32, F16 or BF16); free with g_free. */
static float *
read_floats (const AtSafetensorsTensor *t)
{
  float *values = g_new (float, MAX (t->n_elements, 1));

  at_ref_dequantize_row (t->type, t->data, values, t->n_elements);
  return values;
}

/* The module a LoRA tensor belongs to, and which of its tensors it is. */
static Module *
module_for (GHashTable *by_name, GPtrArray *modules, const char *tensor, gsize suffix_len)
{
  g_autofree char *name = g_strndup (tensor, strlen (tensor) - suffix_len);
  Module *m = g_hash_table_lookup (by_name, name);

  if (m == NULL)
    {
      m = g_new0 (Module, 1);
      m->name = g_steal_pointer (&name);
      g_ptr_array_add (modules, m);
      g_hash_table_insert (by_name, m->name, m);
    }
  return m;
}

/* Rank, row length and rows from the factors' shapes, which must agree: down [in, rank]
 * or [kw, kh, c_in, rank], up [rank, out] or [1, 1, rank, out] in ggml order. */
static gboolean
check_module (AtSafetensors *st, Module *m, GError **error)
{
  const char *file = at_safetensors_get_name (st);
  const AtSafetensorsTensor *down = m->down, *up = m->up;
  gint64 up_rank;

  if (down == NULL || up == NULL)
    return fail (error, AT_ERROR_INVALID_FILE, file, "module '%s' has no %s", m->name,
                 down == NULL ? "lora_down weight" : "lora_up weight");
  if (!at_safetensors_tensor_check_supported (st, down, error)
      || !at_safetensors_tensor_check_supported (st, up, error)
      || (m->alpha != NULL && !at_safetensors_tensor_check_supported (st, m->alpha, error)))
    return FALSE;
  if ((down->n_dims != 2 && down->n_dims != 4) || (up->n_dims != 2 && up->n_dims != 4)
      || (up->n_dims == 4 && (up->ne[0] != 1 || up->ne[1] != 1)))
    return fail (error, AT_ERROR_INVALID_FILE, file,
                 "module '%s': lora_down must be a matrix or a conv kernel and lora_up a "
                 "matrix or a 1x1 conv kernel",
                 m->name);
  m->rank = down->ne[down->n_dims - 1];
  up_rank = up->ne[up->n_dims - 2];
  if (m->rank != up_rank || m->rank == 0)
    return fail (error, AT_ERROR_INVALID_FILE, file,
                 "module '%s': lora_down has rank %" G_GINT64_FORMAT
                 " but lora_up %" G_GINT64_FORMAT,
                 m->name, m->rank, up_rank);
  m->in = down->n_elements / m->rank;
  m->out = up->ne[up->n_dims - 1];
  m->scale = 1.0;
  if (m->alpha != NULL)
    {
      g_autofree float *alpha = NULL;

      if (m->alpha->n_elements != 1)
        return fail (error, AT_ERROR_INVALID_FILE, file,
                     "module '%s': alpha is not a single number", m->name);
      alpha = read_floats (m->alpha);
      m->scale = alpha[0] / (double)m->rank;
    }
  return TRUE;
}

/* Takes st. */
static AtLora *
lora_from_safetensors (AtSafetensors *st, GError **error)
{
  g_autoptr (AtLora) lora = g_new0 (AtLora, 1);
  g_autoptr (GHashTable) by_name = g_hash_table_new (g_str_hash, g_str_equal);
  const char *display_name = at_safetensors_get_name (st);
  const char *unknown = NULL;
  gboolean has_factor = FALSE;

  lora->st = st;
  lora->modules = g_ptr_array_new_with_free_func ((GDestroyNotify)module_free);
  for (guint i = 0; i < at_safetensors_get_n_tensors (lora->st); i++)
    {
      const AtSafetensorsTensor *t = at_safetensors_get_tensor (lora->st, i);

      if (g_str_has_suffix (t->name, DOWN_SUFFIX))
        module_for (by_name, lora->modules, t->name, strlen (DOWN_SUFFIX))->down = t;
      else if (g_str_has_suffix (t->name, UP_SUFFIX))
        module_for (by_name, lora->modules, t->name, strlen (UP_SUFFIX))->up = t;
      else if (g_str_has_suffix (t->name, ALPHA_SUFFIX))
        module_for (by_name, lora->modules, t->name, strlen (ALPHA_SUFFIX))->alpha = t;
      else if (unknown == NULL)
        unknown = t->name;
      has_factor
          |= g_str_has_suffix (t->name, DOWN_SUFFIX) || g_str_has_suffix (t->name, UP_SUFFIX);
    }
  if (!has_factor)
    {
      fail (error, AT_ERROR_INVALID_FILE, display_name,
            "not a LoRA: it has no '<module>" DOWN_SUFFIX "' and '<module>" UP_SUFFIX "' tensors");
      return NULL;
    }
  if (unknown != NULL)
    {
      fail (error, AT_ERROR_UNSUPPORTED, display_name,
            "tensor '%s' is not part of a LoRA module (" DOWN_SUFFIX ", " UP_SUFFIX
            ", " ALPHA_SUFFIX "); other network types (LoHa, LoKr, DoRA) are not supported",
            unknown);
      return NULL;
    }
  for (guint i = 0; i < lora->modules->len; i++)
    if (!check_module (lora->st, lora->modules->pdata[i], error))
      return NULL;
  return g_steal_pointer (&lora);
}

AtLora *
at_lora_new_from_bytes (GBytes *bytes, const char *display_name, GError **error)
{
  AtSafetensors *st = at_safetensors_new_from_bytes (bytes, display_name, error);

  return st != NULL ? lora_from_safetensors (st, error) : NULL;
}

AtLora *
at_lora_open (const char *path, GError **error)
{
  AtSafetensors *st = at_safetensors_open (path, error);

  return st != NULL ? lora_from_safetensors (st, error) : NULL;
}

/* --- Module names to checkpoint tensors -------------------------------------------- */

/* Where a module lands: a tensor, or one of n_parts equal slices of it along its
 * outermost dimension (OpenCLIP's fused q, k, v). */
typedef struct
{
  const AtSafetensorsTensor *tensor;
  guint part, n_parts;
} Target;

static void
add_target (GHashTable *targets, char *key, const AtSafetensorsTensor *t, guint part, guint n_parts)
{
  Target *target = g_new (Target, 1);

  *target = (Target){ t, part, n_parts };
  g_hash_table_replace (targets, key, target);
}

/* "lora_unet_" + the name under prefix without ".weight", with '.' written '_'. */
static char *
module_key (const char *lora_prefix, const char *rest)
{
  g_autofree char *stem = g_strndup (rest, strlen (rest) - strlen (".weight"));

  g_strdelimit (stem, ".", '_');
  return g_strconcat (lora_prefix, stem, NULL);
}

/* The HF CLIP names kohya gives OpenCLIP's layers (resblocks.N.<rest>). */
static void
add_openclip_aliases (GHashTable *targets, const AtSafetensorsTensor *t, const char *rest)
{
  static const struct
  {
    const char *openclip, *hf[3];
  } aliases[] = {
    { "attn.in_proj_weight", { "self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj" } },
    { "attn.out_proj.weight", { "self_attn_out_proj" } },
    { "mlp.c_fc.weight", { "mlp_fc1" } },
    { "mlp.c_proj.weight", { "mlp_fc2" } },
  };
  const char *dot = strchr (rest, '.');
  int layer;

  if (dot == NULL || sscanf (rest, "%d.", &layer) != 1)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (aliases); i++)
    {
      guint n_parts = aliases[i].hf[1] != NULL ? 3 : 1;

      if (strcmp (dot + 1, aliases[i].openclip) != 0)
        continue;
      for (guint part = 0; part < n_parts; part++)
        add_target (
            targets,
            g_strdup_printf ("lora_te_text_model_encoder_layers_%d_%s", layer, aliases[i].hf[part]),
            t, part, n_parts);
    }
}

/* Module key -> Target for every weight a LoRA can change. */
static GHashTable *
build_targets (AtSafetensors *checkpoint, const AtSdCheckpointInfo *info)
{
  GHashTable *targets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  for (guint i = 0; i < at_safetensors_get_n_tensors (checkpoint); i++)
    {
      const AtSafetensorsTensor *t = at_safetensors_get_tensor (checkpoint, i);

      if (g_str_has_prefix (t->name, UNET_PREFIX) && g_str_has_suffix (t->name, ".weight"))
        add_target (targets, module_key ("lora_unet_", t->name + strlen (UNET_PREFIX)), t, 0, 1);
      else if (info->family == AT_SD_FAMILY_SD1 && g_str_has_prefix (t->name, SD1_TE_PREFIX)
               && g_str_has_suffix (t->name, ".weight"))
        add_target (targets, module_key ("lora_te_", t->name + strlen (SD1_TE_PREFIX)), t, 0, 1);
      else if (info->family == AT_SD_FAMILY_SD2 && g_str_has_prefix (t->name, SD2_LAYERS_PREFIX))
        add_openclip_aliases (targets, t, t->name + strlen (SD2_LAYERS_PREFIX));
    }
  return targets;
}

/* The UNet's res blocks per level: the input blocks between conv_in (input_blocks.0)
 * and the first downsampler (input_blocks.N.0.op), or all of them with one level. */
static int
count_res_blocks (AtSafetensors *checkpoint)
{
  int last = 0;

  for (int k = 1;; k++)
    {
      g_autofree char *op = g_strdup_printf (UNET_PREFIX "input_blocks.%d.0.op.weight", k);
      g_autofree char *block = g_strdup_printf (UNET_PREFIX "input_blocks.%d.", k);
      gboolean present = FALSE;

      if (at_safetensors_lookup (checkpoint, op) != NULL)
        return k - 1;
      for (guint i = 0; i < at_safetensors_get_n_tensors (checkpoint) && !present; i++)
        present = g_str_has_prefix (at_safetensors_get_tensor (checkpoint, i)->name, block);
      if (!present)
        return last;
      last = k;
    }
}

/* The LDM name of a diffusers resnet layer. */
static const char *
resnet_layer (const char *diffusers)
{
  static const char *const map[][2] = {
    { "conv1", "in_layers_2" },          { "conv2", "out_layers_3" },
    { "norm1", "in_layers_0" },          { "norm2", "out_layers_0" },
    { "time_emb_proj", "emb_layers_1" }, { "conv_shortcut", "skip_connection" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (map); i++)
    if (strcmp (diffusers, map[i][0]) == 0)
      return map[i][1];
  return diffusers;
}

/* sscanf with a trailing %n: the offset past a full match of format, or -1. */
#define MATCH(name, format, ...) (end = -1, sscanf (name, format "%n", __VA_ARGS__, &end), end)

/* The LDM key of a diffusers UNet module name (after "lora_unet_"), or NULL. With nr
 * res blocks per level, level i's input blocks are 1 + i (nr + 1) + j (its downsampler
 * the one after them) and its output blocks i (nr + 1) + j, the upsampler in the last;
 * the middle block is resnet, attention, resnet. */
static char *
diffusers_to_ldm (const char *name, int nr, GHashTable *targets)
{
  int i, j, end;

  if (MATCH (name, "down_blocks_%d_resnets_%d_", &i, &j) > 0)
    return g_strdup_printf ("lora_unet_input_blocks_%d_0_%s", 1 + i * (nr + 1) + j,
                            resnet_layer (name + end));
  if (MATCH (name, "down_blocks_%d_attentions_%d_", &i, &j) > 0)
    return g_strdup_printf ("lora_unet_input_blocks_%d_1_%s", 1 + i * (nr + 1) + j, name + end);
  if (MATCH (name, "down_blocks_%d_downsamplers_0_conv", &i) > 0 && name[end] == '\0')
    return g_strdup_printf ("lora_unet_input_blocks_%d_0_op", (i + 1) * (nr + 1));
  if (MATCH (name, "mid_block_resnets_%d_", &j) > 0)
    return g_strdup_printf ("lora_unet_middle_block_%d_%s", 2 * j, resnet_layer (name + end));
  if (g_str_has_prefix (name, "mid_block_attentions_0_"))
    return g_strconcat ("lora_unet_middle_block_1_", name + strlen ("mid_block_attentions_0_"),
                        NULL);
  if (MATCH (name, "up_blocks_%d_resnets_%d_", &i, &j) > 0)
    return g_strdup_printf ("lora_unet_output_blocks_%d_0_%s", i * (nr + 1) + j,
                            resnet_layer (name + end));
  if (MATCH (name, "up_blocks_%d_attentions_%d_", &i, &j) > 0)
    return g_strdup_printf ("lora_unet_output_blocks_%d_1_%s", i * (nr + 1) + j, name + end);
  if (MATCH (name, "up_blocks_%d_upsamplers_0_conv", &i) > 0 && name[end] == '\0')
    {
      /* Second in its block after a resnet alone, third after resnet and attention. */
      char *key = g_strdup_printf ("lora_unet_output_blocks_%d_1_conv", i * (nr + 1) + nr);

      if (!g_hash_table_contains (targets, key))
        key[strlen (key) - strlen ("1_conv")] = '2';
      return key;
    }
  if (strcmp (name, "conv_in") == 0)
    return g_strdup ("lora_unet_input_blocks_0_0");
  if (strcmp (name, "conv_out") == 0)
    return g_strdup ("lora_unet_out_2");
  if (MATCH (name, "time_embedding_linear_%d", &i) > 0 && name[end] == '\0')
    return g_strdup_printf ("lora_unet_time_embed_%d", 2 * i - 2);
  return NULL;
}

#undef MATCH

static const Target *
find_target (GHashTable *targets, const char *module, int nr)
{
  const Target *target = g_hash_table_lookup (targets, module);
  g_autofree char *ldm = NULL;

  if (target != NULL || !g_str_has_prefix (module, "lora_unet_"))
    return target;
  ldm = diffusers_to_ldm (module + strlen ("lora_unet_"), nr, targets);
  return ldm != NULL ? g_hash_table_lookup (targets, ldm) : NULL;
}

/* --- Merging ----------------------------------------------------------------------- */

typedef struct
{
  const Module *module;
  const Target *target;
  double scale; /* the LoRA's weight times alpha / rank */
} Contribution;

/* The rows of a target and the length of each, in PyTorch's terms: [out, in (kh kw)]. */
static void
target_shape (const Target *target, gint64 *rows, gint64 *row_length)
{
  const AtSafetensorsTensor *t = target->tensor;
  const gint64 outer = t->n_dims > 0 ? t->ne[t->n_dims - 1] : 1;

  *rows = outer / target->n_parts;
  *row_length = t->n_elements / MAX (outer, 1);
}

static char *
describe_shape (const AtSafetensorsTensor *t)
{
  GString *s = g_string_new ("[");

  for (guint i = 0; i < t->n_dims; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", t->ne[t->n_dims - 1 - i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static gboolean
check_fits (AtLora *lora, const Module *m, const Target *target, AtSafetensors *checkpoint,
            GError **error)
{
  const AtSafetensorsTensor *t = target->tensor;
  gint64 rows, row_length;
  g_autofree char *shape = describe_shape (t);

  target_shape (target, &rows, &row_length);
  if (t->n_dims < 2 || t->ne[t->n_dims - 1] % target->n_parts != 0 || rows != m->out
      || row_length != m->in)
    return fail (error, AT_ERROR_INVALID_FILE, at_lora_get_name (lora),
                 "module '%s' changes a [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                 "] weight, but '%s' in %s is %s%s",
                 m->name, m->out, m->in, t->name, at_safetensors_get_name (checkpoint), shape,
                 target->n_parts > 1 ? " (a third of it)" : "");
  return at_safetensors_tensor_check_supported (checkpoint, t, error);
}

/* x rounded to float with round-to-odd: the result differs from x only in its last bit
 * being set, so a second rounding to F16 or BF16 rounds as x itself would (float has
 * more than twice their precision plus two bits): one rounding in all. */
static float
round_to_odd (double x)
{
  float f = (float)x;
  guint32 bits;

  if ((double)f == x || !isfinite (f))
    return f;
  memcpy (&bits, &f, 4);
  if ((bits & 1) == 0)
    f = nextafterf (f, (double)f < x ? INFINITY : -INFINITY);
  return f;
}

/* The tensor's new bytes: its weights plus every contribution, in double. */
static GBytes *
merge (const AtSafetensorsTensor *t, GPtrArray *contributions)
{
  const gint64 n = t->n_elements;
  g_autofree float *w = read_floats (t);
  g_autofree double *sum = g_new (double, n);
  g_autofree float *rounded = g_new (float, n);
  guint8 *bytes = g_malloc (t->size);

  for (gint64 i = 0; i < n; i++)
    sum[i] = w[i];
  for (guint c = 0; c < contributions->len; c++)
    {
      const Contribution *co = contributions->pdata[c];
      const Module *m = co->module;
      g_autofree float *up = read_floats (m->up);
      g_autofree float *down = read_floats (m->down);
      double *rows = sum + co->target->part * m->out * m->in;

      /* up [out][rank] · down [rank][in], row by row so the inner loop runs along memory. */
      for (gint64 o = 0; o < m->out; o++)
        for (gint64 r = 0; r < m->rank; r++)
          {
            const double u = co->scale * up[o * m->rank + r];
            const float *d = down + r * m->in;
            double *row = rows + o * m->in;

            for (gint64 i = 0; i < m->in; i++)
              row[i] += u * d[i];
          }
    }
  for (gint64 i = 0; i < n; i++)
    rounded[i] = t->type == AT_TYPE_F32 ? (float)sum[i] : round_to_odd (sum[i]);
  at_ref_quantize_row (t->type, rounded, bytes, n);
  return g_bytes_new_take (bytes, t->size);
}

static void
contribution_list_free (gpointer list)
{
  g_ptr_array_unref (list);
}

/* Collects what each tensor receives: tensor -> GPtrArray of Contribution. */
static gboolean
collect (AtSafetensors *checkpoint, GHashTable *targets, int nr, AtLora *const *loras,
         const float *weights, guint n, GHashTable *by_tensor, GPtrArray *unmatched, GError **error)
{
  for (guint l = 0; l < n; l++)
    for (guint i = 0; i < loras[l]->modules->len; i++)
      {
        const Module *m = loras[l]->modules->pdata[i];
        const Target *target = find_target (targets, m->name, nr);
        GPtrArray *list;
        Contribution *co;

        if (target == NULL)
          {
            g_ptr_array_add (unmatched,
                             g_strdup_printf ("%s: %s", at_lora_get_name (loras[l]), m->name));
            continue;
          }
        if (!check_fits (loras[l], m, target, checkpoint, error))
          return FALSE;
        if (weights[l] == 0.0f)
          continue;
        if (!(list = g_hash_table_lookup (by_tensor, target->tensor)))
          {
            list = g_ptr_array_new_with_free_func (g_free);
            g_hash_table_insert (by_tensor, (gpointer)target->tensor, list);
          }
        co = g_new (Contribution, 1);
        *co = (Contribution){ m, target, weights[l] * m->scale };
        g_ptr_array_add (list, co);
      }
  return TRUE;
}

gboolean
at_lora_apply (AtSafetensors *checkpoint, const AtSdCheckpointInfo *info, AtLora *const *loras,
               const float *weights, guint n, guint *n_patched, char ***unmatched, GError **error)
{
  g_autoptr (GHashTable) targets = build_targets (checkpoint, info);
  g_autoptr (GHashTable) by_tensor
      = g_hash_table_new_full (NULL, NULL, NULL, contribution_list_free);
  g_autoptr (GPtrArray) missing = g_ptr_array_new_with_free_func (g_free);
  guint patched = 0;

  at_safetensors_reset_tensor_data (checkpoint);
  if (!collect (checkpoint, targets, count_res_blocks (checkpoint), loras, weights, n, by_tensor,
                missing, error))
    return FALSE;
  /* In the checkpoint's order, so that the work (and a failure) is the same every time. */
  for (guint i = 0; i < at_safetensors_get_n_tensors (checkpoint); i++)
    {
      const AtSafetensorsTensor *t = at_safetensors_get_tensor (checkpoint, i);
      GPtrArray *list = g_hash_table_lookup (by_tensor, t);
      g_autoptr (GBytes) merged = NULL;

      if (list == NULL)
        continue;
      merged = merge (t, list);
      if (!at_safetensors_set_tensor_data (checkpoint, t->name, merged, error))
        {
          at_safetensors_reset_tensor_data (checkpoint);
          return FALSE;
        }
      patched++;
    }
  if (n_patched != NULL)
    *n_patched = patched;
  if (unmatched != NULL)
    {
      g_ptr_array_add (missing, NULL);
      *unmatched = (char **)g_ptr_array_steal (missing, NULL);
    }
  return TRUE;
}
