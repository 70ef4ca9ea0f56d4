/* test-image-params.c: the Image page's settings without a window — sizes, checks,
 * seeds of a batch, the request, A1111 infotext and the library's JSON both ways. */
#include <math.h>

#include <json-glib/json-glib.h>

#include "at-error.h"
#include "atelier-image-params.h"

static void
test_round_side (void)
{
  static const struct
  {
    double in;
    guint out;
  } cases[] = {
    { 512, 512 }, { 515, 512 }, { 516, 520 }, { 523.9, 520 }, { 0, 64 }, { -40, 64 },
    { 63, 64 }, { 100, 104 }, { 2047, 2048 }, { 5000, 2048 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpuint (atelier_image_round_side (cases[i].in), ==, cases[i].out);
}

static void
test_presets (void)
{
  g_assert_cmpuint (atelier_image_n_size_presets, ==, 5);
  g_assert_cmpint (atelier_image_size_preset_find (512, 512), ==, 0);
  g_assert_cmpint (atelier_image_size_preset_find (512, 768), ==, 2);
  g_assert_cmpint (atelier_image_size_preset_find (768, 512), ==, 3);
  g_assert_cmpint (atelier_image_size_preset_find (1024, 1024), ==, 4);
  g_assert_cmpint (atelier_image_size_preset_find (640, 512), ==, -1);
  for (guint i = 0; i < atelier_image_n_size_presets; i++)
    {
      g_assert_cmpuint (atelier_image_size_presets[i].width % 8, ==, 0);
      g_assert_cmpuint (atelier_image_size_presets[i].height % 8, ==, 0);
    }
}

static void
assert_refused (AtelierImageSettings *s, const char *word)
{
  g_autoptr (GError) error = NULL;

  g_assert_false (atelier_image_settings_check (s, &error));
  g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, word));
}

static void
test_check (void)
{
  g_autoptr (AtelierImageSettings) s = atelier_image_settings_new ();
  g_autoptr (GError) error = NULL;

  g_assert_true (atelier_image_settings_check (s, &error));
  g_assert_no_error (error);

  s->width = 516;
  assert_refused (s, "516");
  s->width = 56;
  assert_refused (s, "multiples of 8");
  s->width = 2056;
  assert_refused (s, "2048");
  s->width = 64;
  s->height = 2048;
  g_assert_true (atelier_image_settings_check (s, NULL));

  s->steps = 0;
  assert_refused (s, "steps");
  s->steps = 151;
  assert_refused (s, "150");
  s->steps = 150;
  s->cfg_scale = 0.5;
  assert_refused (s, "CFG");
  s->cfg_scale = NAN;
  assert_refused (s, "CFG");
  s->cfg_scale = 30;
  g_free (s->sampler);
  s->sampler = g_strdup ("UniPC");
  assert_refused (s, "UniPC");
  g_free (s->sampler);
  s->sampler = g_strdup ("LCM");
  g_assert_true (atelier_image_settings_check (s, NULL));

  /* Strength only matters with a source image. */
  s->strength = 0;
  g_assert_true (atelier_image_settings_check (s, NULL));
  s->img2img = TRUE;
  assert_refused (s, "strength");
  s->strength = 1;
  g_assert_true (atelier_image_settings_check (s, NULL));
}

static void
test_seeds (void)
{
  g_autoptr (AtelierImageSettings) s = atelier_image_settings_new ();
  g_autoptr (GRand) rand = g_rand_new_with_seed (1);
  g_autoptr (GRand) same = g_rand_new_with_seed (1);
  gint64 first, second;

  /* Locked: the seed, then one more per image of the batch, wrapping at 2³². */
  s->seed = 42;
  s->seed_locked = TRUE;
  g_assert_cmpint (atelier_image_settings_seed_for (s, 0, rand), ==, 42);
  g_assert_cmpint (atelier_image_settings_seed_for (s, 1, rand), ==, 43);
  g_assert_cmpint (atelier_image_settings_seed_for (s, 3, rand), ==, 45);
  s->seed = ATELIER_IMAGE_MAX_SEED;
  g_assert_cmpint (atelier_image_settings_seed_for (s, 0, rand), ==, ATELIER_IMAGE_MAX_SEED);
  g_assert_cmpint (atelier_image_settings_seed_for (s, 1, rand), ==, 0);
  /* Locked calls took nothing from the generator. */
  g_assert_cmpuint (g_rand_int (rand), ==, g_rand_int (same));

  /* Unlocked: the generator's numbers, whatever the seed shown. */
  s->seed_locked = FALSE;
  s->seed = 42;
  first = atelier_image_settings_seed_for (s, 0, rand);
  second = atelier_image_settings_seed_for (s, 0, rand);
  g_assert_cmpint (first, ==, g_rand_int (same));
  g_assert_cmpint (second, ==, g_rand_int (same));
  g_assert_cmpint (first, !=, second);
  g_assert_cmpint (first, >=, 0);
  g_assert_cmpint (first, <=, ATELIER_IMAGE_MAX_SEED);

  /* Locked without a seed yet: random too. */
  s->seed_locked = TRUE;
  s->seed = -1;
  g_assert_cmpint (atelier_image_settings_seed_for (s, 0, rand), ==, g_rand_int (same));
}

static void
test_request (void)
{
  g_autoptr (AtelierImageSettings) s = atelier_image_settings_new ();
  AtImageRequest request;

  g_free (s->prompt);
  s->prompt = g_strdup ("a red fox in snow");
  g_free (s->negative_prompt);
  s->negative_prompt = g_strdup ("blurry");
  s->width = 768;
  s->height = 512;
  s->steps = 30;
  s->cfg_scale = 5.5;
  g_free (s->sampler);
  s->sampler = g_strdup ("DPM++ 2M Karras");
  s->strength = 0.4;
  atelier_image_settings_add_lora (s, "/models/loras/ink.safetensors", 0.8);
  atelier_image_settings_add_lora (s, "/models/loras/film.safetensors", -0.5);

  atelier_image_settings_fill_request (s, 1234, &request);
  g_assert_cmpstr (request.prompt, ==, "a red fox in snow");
  g_assert_cmpstr (request.negative_prompt, ==, "blurry");
  g_assert_cmpuint (request.width, ==, 768);
  g_assert_cmpuint (request.height, ==, 512);
  g_assert_cmpuint (request.steps, ==, 30);
  g_assert_cmpfloat (request.cfg_scale, ==, 5.5);
  g_assert_cmpstr (request.sampler, ==, "DPM++ 2M Karras");
  g_assert_cmpint (request.seed, ==, 1234);
  g_assert_cmpint (request.clip_skip, ==, 0);
  g_assert_null (request.init_image);
  g_assert_null (request.mask);
  g_assert_false (request.previews);
  g_assert_cmpfloat (request.strength, ==, 0.4);
  g_assert_cmpuint (request.n_loras, ==, 2);
  g_assert_cmpstr (request.loras[1].path, ==, "/models/loras/film.safetensors");
  g_assert_cmpfloat (request.loras[1].weight, ==, -0.5f);
}

static AtelierImageSettings *
filled_settings (void)
{
  AtelierImageSettings *s = atelier_image_settings_new ();

  g_free (s->prompt);
  s->prompt = g_strdup ("portrait of a cat, (oil painting:1.2), warm light");
  g_free (s->negative_prompt);
  s->negative_prompt = g_strdup ("blurry, lowres");
  s->model = g_strdup ("dreamshaper_8");
  s->width = 512;
  s->height = 768;
  s->steps = 25;
  s->cfg_scale = 6.5;
  g_free (s->sampler);
  s->sampler = g_strdup ("DPM++ 2M Karras");
  s->seed = 3141592653;
  s->img2img = TRUE;
  s->strength = 0.55;
  return s;
}

static void
assert_same_settings (const AtelierImageSettings *a, const AtelierImageSettings *b)
{
  g_assert_cmpstr (a->prompt, ==, b->prompt);
  g_assert_cmpstr (a->negative_prompt, ==, b->negative_prompt);
  g_assert_cmpstr (a->model, ==, b->model);
  g_assert_cmpuint (a->width, ==, b->width);
  g_assert_cmpuint (a->height, ==, b->height);
  g_assert_cmpuint (a->steps, ==, b->steps);
  g_assert_cmpfloat (a->cfg_scale, ==, b->cfg_scale);
  g_assert_cmpstr (a->sampler, ==, b->sampler);
  g_assert_cmpint (a->seed, ==, b->seed);
  g_assert_cmpfloat (a->strength, ==, b->strength);
}

/* Panel → infotext → panel gives the same values, and the text is what A1111 writes. */
static void
test_infotext_round_trip (void)
{
  g_autoptr (AtelierImageSettings) s = filled_settings ();
  g_autoptr (AtelierImageSettings) back = atelier_image_settings_new ();
  g_autoptr (AtGenerationParams) p = atelier_image_settings_to_params (s);
  g_autoptr (AtGenerationParams) parsed = NULL;
  g_autofree char *text = at_generation_params_to_text (p);

  g_assert_cmpstr (text, ==,
                   "portrait of a cat, (oil painting:1.2), warm light\n"
                   "Negative prompt: blurry, lowres\n"
                   "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, "
                   "Seed: 3141592653, Size: 512x768, Model: dreamshaper_8, "
                   "Denoising strength: 0.55");
  parsed = at_generation_params_parse (text);
  g_assert_false (back->seed_locked);
  atelier_image_settings_apply_params (back, parsed);
  assert_same_settings (s, back);
  g_assert_true (back->seed_locked);

  /* Without a source image there is no strength to write. */
  s->img2img = FALSE;
  g_clear_pointer (&p, at_generation_params_free);
  p = atelier_image_settings_to_params (s);
  g_assert_cmpfloat (p->denoising_strength, <, 0);
}

/* Infotext from A1111 itself: older "DPM++ 2M Karras" in one key, an odd size, a
 * sampler Atelier lacks, extras it does not know. */
static void
test_apply_a1111_text (void)
{
  g_autoptr (AtelierImageSettings) s = atelier_image_settings_new ();
  g_autoptr (AtGenerationParams) p = NULL;

  p = at_generation_params_parse ("a lighthouse at dusk\n"
                                  "Steps: 40, Sampler: DPM++ 2M Karras, CFG scale: 9, "
                                  "Seed: 7, Size: 601x450, Model hash: 879db523c3, "
                                  "Model: v1-5-pruned, Clip skip: 2, Version: v1.6.0");
  atelier_image_settings_apply_params (s, p);
  g_assert_cmpstr (s->prompt, ==, "a lighthouse at dusk");
  g_assert_cmpstr (s->negative_prompt, ==, "");
  g_assert_cmpuint (s->steps, ==, 40);
  g_assert_cmpstr (s->sampler, ==, "DPM++ 2M Karras");
  g_assert_cmpfloat (s->cfg_scale, ==, 9);
  g_assert_cmpint (s->seed, ==, 7);
  g_assert_cmpuint (s->width, ==, 600);
  g_assert_cmpuint (s->height, ==, 448);
  g_assert_cmpstr (s->model, ==, "v1-5-pruned");
  g_assert_cmpfloat (s->strength, ==, 0.75);

  g_clear_pointer (&p, at_generation_params_free);
  p = at_generation_params_parse ("x\nSteps: 500, Sampler: UniPC, CFG scale: 99, Seed: 1");
  atelier_image_settings_apply_params (s, p);
  g_assert_cmpstr (s->prompt, ==, "x");
  g_assert_cmpuint (s->steps, ==, 40);
  g_assert_cmpstr (s->sampler, ==, "DPM++ 2M Karras");
  g_assert_cmpfloat (s->cfg_scale, ==, 9);
  g_assert_cmpint (s->seed, ==, 1);
}

static void
test_json (void)
{
  g_autoptr (AtelierImageSettings) s = filled_settings ();
  g_autoptr (AtelierImageSettings) back = atelier_image_settings_new ();
  g_autoptr (AtGenerationParams) p = NULL;
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;
  g_autofree char *json = NULL;
  JsonObject *object;
  JsonArray *loras;

  atelier_image_settings_add_lora (s, "/loras/ink.safetensors", 0.75);
  p = atelier_image_settings_to_params (s);
  text = at_generation_params_to_text (p);
  json = atelier_image_parameters_json (text, s);
  g_test_message ("%s", json);

  root = json_from_string (json, NULL);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));
  object = json_node_get_object (root);
  g_assert_cmpstr (json_object_get_string_member (object, "infotext"), ==, text);
  g_assert_cmpstr (json_object_get_string_member (object, "prompt"), ==, s->prompt);
  g_assert_cmpint (json_object_get_int_member (object, "width"), ==, 512);
  g_assert_cmpint (json_object_get_int_member (object, "height"), ==, 768);
  g_assert_cmpint (json_object_get_int_member (object, "steps"), ==, 25);
  g_assert_cmpstr (json_object_get_string_member (object, "sampler"), ==, "DPM++ 2M");
  g_assert_cmpstr (json_object_get_string_member (object, "schedule_type"), ==, "Karras");
  g_assert_cmpfloat (json_object_get_double_member (object, "cfg_scale"), ==, 6.5);
  g_assert_cmpint (json_object_get_int_member (object, "seed"), ==, 3141592653);
  g_assert_cmpstr (json_object_get_string_member (object, "model"), ==, "dreamshaper_8");
  g_assert_cmpfloat (json_object_get_double_member (object, "denoising_strength"), ==, 0.55);
  loras = json_object_get_array_member (object, "loras");
  g_assert_cmpuint (json_array_get_length (loras), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (loras, 0),
                                                  "path"),
                   ==, "/loras/ink.safetensors");

  atelier_image_settings_apply_parameters (back, json);
  assert_same_settings (s, back);
  g_assert_cmpuint (back->loras->len, ==, 1);
  g_assert_cmpstr (g_array_index (back->loras, AtImageLora, 0).path, ==,
                   "/loras/ink.safetensors");
  g_assert_cmpfloat (g_array_index (back->loras, AtImageLora, 0).weight, ==, 0.75f);
}

/* The other shapes an asset's parameters come in: JSON fields without infotext, plain
 * A1111 text, "{}" and broken entries that change nothing. */
static void
test_parameters_shapes (void)
{
  g_autoptr (AtelierImageSettings) s = atelier_image_settings_new ();
  g_autoptr (AtelierImageSettings) untouched = atelier_image_settings_new ();

  atelier_image_settings_apply_parameters (s, "{\"prompt\": \"a boat\", \"steps\": 12, "
                                              "\"sampler\": \"Euler\", \"cfg_scale\": 4, "
                                              "\"seed\": 99, \"width\": 640, \"height\": 384, "
                                              "\"loras\": [3, {\"weight\": 1}, "
                                              "{\"path\": \"/l.safetensors\"}]}");
  g_assert_cmpstr (s->prompt, ==, "a boat");
  g_assert_cmpuint (s->steps, ==, 12);
  g_assert_cmpstr (s->sampler, ==, "Euler");
  g_assert_cmpfloat (s->cfg_scale, ==, 4);
  g_assert_cmpint (s->seed, ==, 99);
  g_assert_cmpuint (s->width, ==, 640);
  g_assert_cmpuint (s->height, ==, 384);
  g_assert_cmpuint (s->loras->len, ==, 1);
  g_assert_cmpfloat (g_array_index (s->loras, AtImageLora, 0).weight, ==, 1);

  atelier_image_settings_apply_parameters (s, "a tree\nNegative prompt: fog\n"
                                              "Steps: 8, Sampler: LCM, CFG scale: 1.5, "
                                              "Seed: 5");
  g_assert_cmpstr (s->prompt, ==, "a tree");
  g_assert_cmpstr (s->negative_prompt, ==, "fog");
  g_assert_cmpstr (s->sampler, ==, "LCM");
  g_assert_cmpuint (s->width, ==, 640);

  atelier_image_settings_apply_parameters (untouched, "{}");
  atelier_image_settings_apply_parameters (untouched, "{\"infotext\": 5, \"loras\": {}}");
  g_assert_cmpuint (untouched->steps, ==, 20);
  g_assert_cmpint (untouched->seed, ==, -1);
  g_assert_false (untouched->seed_locked);
}

static void
test_copy (void)
{
  g_autoptr (AtelierImageSettings) s = filled_settings ();
  g_autoptr (AtelierImageSettings) copy = NULL;

  atelier_image_settings_add_lora (s, "/a.safetensors", 0.5);
  copy = atelier_image_settings_copy (s);
  assert_same_settings (s, copy);
  g_assert_true (copy->prompt != s->prompt);
  g_array_set_size (s->loras, 0);
  g_assert_cmpuint (copy->loras->len, ==, 1);
  g_assert_cmpstr (g_array_index (copy->loras, AtImageLora, 0).path, ==, "/a.safetensors");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/app/image-params/round-side", test_round_side);
  g_test_add_func ("/app/image-params/presets", test_presets);
  g_test_add_func ("/app/image-params/check", test_check);
  g_test_add_func ("/app/image-params/seeds", test_seeds);
  g_test_add_func ("/app/image-params/request", test_request);
  g_test_add_func ("/app/image-params/infotext-round-trip", test_infotext_round_trip);
  g_test_add_func ("/app/image-params/apply-a1111-text", test_apply_a1111_text);
  g_test_add_func ("/app/image-params/json", test_json);
  g_test_add_func ("/app/image-params/parameters-shapes", test_parameters_shapes);
  g_test_add_func ("/app/image-params/copy", test_copy);
  return g_test_run ();
}
