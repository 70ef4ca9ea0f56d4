/* atelier-image-params.c: the Image page's settings as plain data (see the header). */
#include "config.h"

#include <math.h>

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>

#include "at-error.h"
#include "atelier-export.h"
#include "atelier-image-params.h"

const AtelierSizePreset atelier_image_size_presets[] = {
  { 512, 512 }, { 768, 768 }, { 512, 768 }, { 768, 512 }, { 1024, 1024 },
};
const guint atelier_image_n_size_presets = G_N_ELEMENTS (atelier_image_size_presets);

const char *const atelier_image_samplers[] = {
  "Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DDIM", "LCM", NULL,
};

/* A1111 1.9 and later write the Karras schedule as its own key. */
#define KARRAS_SUFFIX " Karras"

static void
clear_lora (gpointer data)
{
  AtImageLora *lora = data;

  g_free ((char *) lora->path);
}

AtelierImageSettings *
atelier_image_settings_new (void)
{
  AtelierImageSettings *s = g_new0 (AtelierImageSettings, 1);

  s->prompt = g_strdup ("");
  s->negative_prompt = g_strdup ("");
  s->width = 512;
  s->height = 512;
  s->steps = 20;
  s->cfg_scale = 7;
  s->sampler = g_strdup ("Euler a");
  s->seed = -1;
  s->batch_count = 1;
  s->strength = 0.75;
  s->loras = g_array_new (FALSE, FALSE, sizeof (AtImageLora));
  g_array_set_clear_func (s->loras, clear_lora);
  return s;
}

void
atelier_image_settings_free (AtelierImageSettings *s)
{
  g_free (s->prompt);
  g_free (s->negative_prompt);
  g_free (s->model);
  g_free (s->sampler);
  g_array_unref (s->loras);
  g_free (s);
}

void
atelier_image_settings_add_lora (AtelierImageSettings *s, const char *path, double weight)
{
  AtImageLora lora = { .path = g_strdup (path), .weight = weight };

  g_array_append_val (s->loras, lora);
}

AtelierImageSettings *
atelier_image_settings_copy (const AtelierImageSettings *s)
{
  AtelierImageSettings *copy = g_memdup2 (s, sizeof *s);

  copy->prompt = g_strdup (s->prompt);
  copy->negative_prompt = g_strdup (s->negative_prompt);
  copy->model = g_strdup (s->model);
  copy->sampler = g_strdup (s->sampler);
  copy->loras = g_array_new (FALSE, FALSE, sizeof (AtImageLora));
  g_array_set_clear_func (copy->loras, clear_lora);
  for (guint i = 0; i < s->loras->len; i++)
    {
      const AtImageLora *lora = &g_array_index (s->loras, AtImageLora, i);

      atelier_image_settings_add_lora (copy, lora->path, lora->weight);
    }
  return copy;
}

guint
atelier_image_round_side (double value)
{
  double rounded = round (value / ATELIER_IMAGE_SIDE_STEP) * ATELIER_IMAGE_SIDE_STEP;

  return (guint) CLAMP (rounded, ATELIER_IMAGE_MIN_SIDE, ATELIER_IMAGE_MAX_SIDE);
}

int
atelier_image_size_preset_find (guint width, guint height)
{
  for (guint i = 0; i < atelier_image_n_size_presets; i++)
    if (atelier_image_size_presets[i].width == width
        && atelier_image_size_presets[i].height == height)
      return (int) i;
  return -1;
}

static gboolean
is_known_sampler (const char *name)
{
  return name != NULL && g_strv_contains (atelier_image_samplers, name);
}

static gboolean
side_is_valid (guint side)
{
  return side >= ATELIER_IMAGE_MIN_SIDE && side <= ATELIER_IMAGE_MAX_SIDE
         && side % ATELIER_IMAGE_SIDE_STEP == 0;
}

gboolean
atelier_image_settings_check (const AtelierImageSettings *s, GError **error)
{
  if (!side_is_valid (s->width) || !side_is_valid (s->height))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   _("%u × %u is not a size Stable Diffusion can make: use multiples of 8 "
                     "from %u to %u pixels"),
                   s->width, s->height, ATELIER_IMAGE_MIN_SIDE, ATELIER_IMAGE_MAX_SIDE);
      return FALSE;
    }
  if (s->steps < 1 || s->steps > ATELIER_IMAGE_MAX_STEPS)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   _("%u steps: choose from 1 to %u"), s->steps, ATELIER_IMAGE_MAX_STEPS);
      return FALSE;
    }
  if (!(s->cfg_scale >= ATELIER_IMAGE_MIN_CFG && s->cfg_scale <= ATELIER_IMAGE_MAX_CFG))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   _("A CFG scale of %g: choose from %g to %g"), s->cfg_scale,
                   ATELIER_IMAGE_MIN_CFG, ATELIER_IMAGE_MAX_CFG);
      return FALSE;
    }
  if (!is_known_sampler (s->sampler))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   _("The sampler “%s” is not one Atelier has"), s->sampler);
      return FALSE;
    }
  if (s->img2img && !(s->strength > 0 && s->strength <= 1))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   _("A strength of %g: choose more than 0 and at most 1"), s->strength);
      return FALSE;
    }
  return TRUE;
}

gint64
atelier_image_settings_seed_for (const AtelierImageSettings *s, guint index, GRand *rand)
{
  if (s->seed_locked && s->seed >= 0)
    return (s->seed + index) & ATELIER_IMAGE_MAX_SEED;
  return g_rand_int (rand);
}

void
atelier_image_settings_fill_request (const AtelierImageSettings *s, gint64 seed,
                                     AtImageRequest *request)
{
  *request = (AtImageRequest) {
    .prompt = s->prompt,
    .negative_prompt = s->negative_prompt,
    .width = s->width,
    .height = s->height,
    .steps = s->steps,
    .cfg_scale = s->cfg_scale,
    .sampler = s->sampler,
    .seed = seed,
    .prediction = AT_SD_PREDICTION_UNKNOWN,
    .strength = s->strength,
    .loras = (const AtImageLora *) s->loras->data,
    .n_loras = s->loras->len,
  };
}

AtGenerationParams *
atelier_image_settings_to_params (const AtelierImageSettings *s)
{
  AtGenerationParams *p = at_generation_params_new ();

  g_free (p->prompt);
  p->prompt = g_strdup (s->prompt);
  g_free (p->negative_prompt);
  p->negative_prompt = g_strdup (s->negative_prompt);
  p->steps = s->steps;
  if (g_str_has_suffix (s->sampler, KARRAS_SUFFIX))
    {
      p->sampler = g_strndup (s->sampler, strlen (s->sampler) - strlen (KARRAS_SUFFIX));
      p->schedule_type = g_strdup ("Karras");
    }
  else
    p->sampler = g_strdup (s->sampler);
  p->cfg_scale = s->cfg_scale;
  p->seed = s->seed;
  p->width = s->width;
  p->height = s->height;
  p->model = g_strdup (s->model);
  if (s->img2img)
    p->denoising_strength = s->strength;
  return p;
}

static void
set_string (char **field, const char *value)
{
  if (value == NULL)
    return;
  g_free (*field);
  *field = g_strdup (value);
}

void
atelier_image_settings_apply_params (AtelierImageSettings *s, const AtGenerationParams *p)
{
  set_string (&s->prompt, p->prompt);
  set_string (&s->negative_prompt, p->negative_prompt);
  set_string (&s->model, p->model);
  if (p->steps >= 1 && p->steps <= ATELIER_IMAGE_MAX_STEPS)
    s->steps = p->steps;
  if (p->cfg_scale >= ATELIER_IMAGE_MIN_CFG && p->cfg_scale <= ATELIER_IMAGE_MAX_CFG)
    s->cfg_scale = p->cfg_scale;
  if (p->sampler != NULL)
    {
      g_autofree char *name = NULL;

      name = g_strcmp0 (p->schedule_type, "Karras") == 0
             ? g_strconcat (p->sampler, KARRAS_SUFFIX, NULL)
             : g_strdup (p->sampler);
      /* A sampler Atelier lacks leaves the panel's: the rest still reproduces closely. */
      if (is_known_sampler (name))
        set_string (&s->sampler, name);
    }
  if (p->seed >= 0 && p->seed <= ATELIER_IMAGE_MAX_SEED)
    {
      s->seed = p->seed;
      s->seed_locked = TRUE;
    }
  if (p->width > 0 && p->height > 0)
    {
      s->width = atelier_image_round_side (p->width);
      s->height = atelier_image_round_side (p->height);
    }
  if (p->denoising_strength > 0 && p->denoising_strength <= 1)
    s->strength = p->denoising_strength;
}

char *
atelier_image_parameters_json (const char *infotext, const AtelierImageSettings *s)
{
  g_autofree char *base = atelier_export_parameters_json (infotext);
  g_autoptr (JsonNode) root = json_from_string (base, NULL);
  JsonObject *object = json_node_get_object (root);
  JsonArray *loras = json_array_new ();

  for (guint i = 0; i < s->loras->len; i++)
    {
      const AtImageLora *lora = &g_array_index (s->loras, AtImageLora, i);
      JsonObject *item = json_object_new ();

      json_object_set_string_member (item, "path", lora->path);
      json_object_set_double_member (item, "weight", lora->weight);
      json_array_add_object_element (loras, item);
    }
  json_object_set_array_member (object, "loras", loras);
  return json_to_string (root, FALSE);
}

/* The library's JSON fields as A1111 parameters, for a JSON object without infotext. */
static AtGenerationParams *
params_from_json (JsonObject *object)
{
  AtGenerationParams *p = at_generation_params_new ();

  set_string (&p->prompt, json_object_get_string_member_with_default (object, "prompt", NULL));
  set_string (&p->negative_prompt,
              json_object_get_string_member_with_default (object, "negative_prompt", NULL));
  p->steps = json_object_get_int_member_with_default (object, "steps", 0);
  p->sampler = g_strdup (json_object_get_string_member_with_default (object, "sampler", NULL));
  p->schedule_type = g_strdup (json_object_get_string_member_with_default (object,
                                                                           "schedule_type",
                                                                           NULL));
  p->cfg_scale = json_object_get_double_member_with_default (object, "cfg_scale", -1);
  p->seed = json_object_get_int_member_with_default (object, "seed", -1);
  p->width = json_object_get_int_member_with_default (object, "width", 0);
  p->height = json_object_get_int_member_with_default (object, "height", 0);
  p->model = g_strdup (json_object_get_string_member_with_default (object, "model", NULL));
  p->denoising_strength =
    json_object_get_double_member_with_default (object, "denoising_strength", -1);
  return p;
}

void
atelier_image_settings_apply_parameters (AtelierImageSettings *s, const char *parameters)
{
  g_autoptr (JsonNode) root = json_from_string (parameters, NULL);
  g_autoptr (AtGenerationParams) p = NULL;
  const char *infotext;
  JsonObject *object;
  JsonNode *loras;

  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      p = at_generation_params_parse (parameters);
      atelier_image_settings_apply_params (s, p);
      return;
    }
  object = json_node_get_object (root);
  /* The infotext keeps what the JSON fields leave out (extras such as "Clip skip"). */
  infotext = json_object_get_string_member_with_default (object, "infotext", NULL);
  if (infotext != NULL)
    p = at_generation_params_parse (infotext);
  else
    p = params_from_json (object);
  atelier_image_settings_apply_params (s, p);

  loras = json_object_get_member (object, "loras");
  if (loras == NULL || !JSON_NODE_HOLDS_ARRAY (loras))
    return;
  g_array_set_size (s->loras, 0);
  for (guint i = 0; i < json_array_get_length (json_node_get_array (loras)); i++)
    {
      JsonNode *node = json_array_get_element (json_node_get_array (loras), i);
      JsonObject *item = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
      const char *path = item != NULL
                         ? json_object_get_string_member_with_default (item, "path", NULL)
                         : NULL;

      if (path != NULL)
        atelier_image_settings_add_lora (s, path,
                                         json_object_get_double_member_with_default (item,
                                                                                     "weight",
                                                                                     1));
    }
}
