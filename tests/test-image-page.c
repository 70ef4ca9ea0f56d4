/* test-image-page.c: the Image page in the studio's real window under Xvfb, with a tiny
 * random-weight checkpoint in a temporary models folder: a file that is no checkpoint is
 * refused with a message and the prompt kept; Generate shows the step previews, then the
 * picture, which lands in the library with A1111's parameters in its PNG; Cancel keeps
 * nothing; a library picture's prompt and seed come back through win.reuse-asset. First,
 * every page fits beside the sidebar in the window's default width. */
#include <glib/gstdio.h>

#include "atelier-application.h"
#include "atelier-image-page.h"
#include "atelier-window.h"
#include "fixtures/sd-fixture.h"
#include "formats/at-png.h"

/* Four VAE levels: the picture is 8× the latent, as with real checkpoints. */
static const AtSdFixtureVae tiny_vae = { .ch = 32, .n_levels = 4, .ch_mult = { 1, 1, 1, 1 } };

static const char prompt[] = "a lighthouse at dusk, oil painting";

static char *system_data_dirs;

typedef gboolean (*Condition) (gpointer data);

static gboolean
deadline_passed (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

#define wait_until(condition, data) (g_test_message ("waiting at line %d", __LINE__), \
                                    wait_until_func (condition, data))

static void
wait_until_func (Condition condition, gpointer data)
{
  gboolean timed_out = FALSE;
  guint source = g_timeout_add_seconds (30, deadline_passed, &timed_out);

  while (!condition (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (timed_out);
  g_source_remove (source);
}

static gpointer
page_child (AtelierImagePage *page, const char *name)
{
  GObject *child = gtk_widget_get_template_child (GTK_WIDGET (page), ATELIER_TYPE_IMAGE_PAGE,
                                                  name);

  g_assert_nonnull (child);
  return child;
}

static gboolean
is_mapped (gpointer data)
{
  return gtk_widget_get_mapped (GTK_WIDGET (data));
}

static gboolean
is_allocated (gpointer data)
{
  return gtk_widget_get_width (GTK_WIDGET (data)) > 0;
}

static gboolean
two_models_listed (gpointer data)
{
  return g_list_model_get_n_items (page_child (data, "model_names")) == 2;
}

static gboolean
page_idle (gpointer data)
{
  return !atelier_image_page_is_busy (data);
}

static gboolean
stepping (gpointer data)
{
  return g_str_has_prefix (gtk_label_get_text (page_child (data, "step_label")), "Step ");
}

typedef struct
{
  AtelierLibrary *library;
  guint n_items;
} Count;

static gboolean
library_has (gpointer data)
{
  Count *count = data;

  return g_list_model_get_n_items (G_LIST_MODEL (count->library)) == count->n_items;
}

/* A label under widget whose text holds part: a toast is a label in the overlay. */
static gboolean
find_label (GtkWidget *widget, const char *part)
{
  if (GTK_IS_LABEL (widget) && strstr (gtk_label_get_text (GTK_LABEL (widget)), part) != NULL)
    return TRUE;
  for (GtkWidget *c = gtk_widget_get_first_child (widget); c != NULL;
       c = gtk_widget_get_next_sibling (c))
    if (find_label (c, part))
      return TRUE;
  return FALSE;
}

static guint
n_children (GtkWidget *widget)
{
  guint n = 0;

  for (GtkWidget *c = gtk_widget_get_first_child (widget); c != NULL;
       c = gtk_widget_get_next_sibling (c))
    n++;
  return n;
}

static char *
buffer_text (GtkTextView *view)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (view);
  GtkTextIter start, end;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

static void
select_model (AtelierImagePage *page, const char *name)
{
  GtkStringList *names = page_child (page, "model_names");

  for (guint i = 0; i < g_list_model_get_n_items (G_LIST_MODEL (names)); i++)
    if (g_str_equal (gtk_string_list_get_string (names, i), name))
      {
        adw_combo_row_set_selected (page_child (page, "model_row"), i);
        return;
      }
  g_assert_not_reached ();
}

/* The sizes of the textures the canvas showed, in order. */
static void
on_paintable (GtkPicture *picture, GParamSpec *pspec, GArray *sizes)
{
  GdkPaintable *paintable = gtk_picture_get_paintable (picture);
  int size[2];

  if (paintable == NULL)
    return;
  g_assert_true (GDK_IS_TEXTURE (paintable));
  size[0] = gdk_texture_get_width (GDK_TEXTURE (paintable));
  size[1] = gdk_texture_get_height (GDK_TEXTURE (paintable));
  g_array_append_vals (sizes, size, 2);
}

/* What a person can type into a spin button is snapped to its steps of 8. */
static void
check_side_snaps (GtkSpinButton *spin)
{
  gtk_editable_set_text (GTK_EDITABLE (spin), "100");
  gtk_spin_button_update (spin);
  g_assert_cmpint (gtk_spin_button_get_value_as_int (spin) % 8, ==, 0);
  gtk_editable_set_text (GTK_EDITABLE (spin), "13");
  gtk_spin_button_update (spin);
  g_assert_cmpint (gtk_spin_button_get_value_as_int (spin), ==, 64);
}

static void
write_checkpoint (const char *path)
{
  g_autoptr (GError) error = NULL;
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .seed = 5, .with_unet = TRUE,
                          .with_vae = TRUE, .vae = &tiny_vae };

  g_assert_true (at_sd_fixture_write (&fixture, path, &error));
  g_assert_no_error (error);
}

/* Safetensors in form, a LoRA's keys, no checkpoint in content. */
static void
write_lora (const char *path)
{
  static const char header[] =
    "{\"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight\":"
    "{\"dtype\":\"F32\",\"shape\":[4,8],\"data_offsets\":[0,128]}}";
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  guint64 length = GUINT64_TO_LE (sizeof header - 1);
  guint8 zeros[128] = { 0 };

  g_byte_array_append (bytes, (const guint8 *) &length, sizeof length);
  g_byte_array_append (bytes, (const guint8 *) header, sizeof header - 1);
  g_byte_array_append (bytes, zeros, sizeof zeros);
  g_assert_true (g_file_set_contents (path, (const char *) bytes->data, bytes->len, NULL));
}

/* Each page's narrowest width fits beside the sidebar in the window's default width, so
 * that the leaflet does not fold there and hide the page behind the sidebar. */
static void
check_pages_fit (GtkWindow *window)
{
  static const char *const pages[] = { "write", "image", "audio", "gallery", "models" };
  GtkWidget *stack = GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (window),
                                                                ATELIER_TYPE_WINDOW, "stack"));
  GtkWidget *leaflet = GTK_WIDGET (gtk_widget_get_template_child (GTK_WIDGET (window),
                                                                  ATELIER_TYPE_WINDOW,
                                                                  "leaflet"));
  g_autoptr (GListModel) leaflet_pages = G_LIST_MODEL (adw_leaflet_get_pages (ADW_LEAFLET (leaflet)));
  g_autoptr (AdwLeafletPage) first = g_list_model_get_item (leaflet_pages, 0);
  int sidebar = 0;

  wait_until (is_allocated, window);
  gtk_widget_measure (adw_leaflet_page_get_child (first), GTK_ORIENTATION_HORIZONTAL, -1,
                      &sidebar, NULL, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (pages); i++)
    {
      GtkWidget *page = gtk_stack_get_child_by_name (GTK_STACK (stack), pages[i]);
      int min = 0;

      gtk_widget_measure (page, GTK_ORIENTATION_HORIZONTAL, -1, &min, NULL, NULL, NULL);
      g_test_message ("page %s: at least %d px beside the sidebar's %d in %d", pages[i], min,
                      sidebar, gtk_widget_get_width (leaflet));
      g_assert_cmpint (sidebar + min, <, gtk_widget_get_width (leaflet));
    }
  g_assert_false (adw_leaflet_get_folded (ADW_LEAFLET (leaflet)));
}

static void
test_generate (void)
{
  g_autofree char *library_folder = g_build_filename (g_get_user_data_dir (), "test-library",
                                                      NULL);
  g_autofree char *models_folder = g_build_filename (g_get_user_data_dir (), "test-models",
                                                     NULL);
  g_autofree char *checkpoint = g_build_filename (models_folder, "tiny-sd.safetensors", NULL);
  g_autofree char *lora = g_build_filename (models_folder, "a-lora.safetensors", NULL);
  g_autoptr (GSettings) settings = g_settings_new ("org.atelier.Atelier");
  g_autoptr (AtelierApplication) app = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) sizes = g_array_new (FALSE, FALSE, sizeof (int));
  g_autoptr (AtelierAsset) asset = NULL;
  g_autoptr (AtGenerationParams) params = NULL;
  g_autofree guint8 *pixels = NULL;
  g_autofree char *infotext = NULL;
  g_autofree char *kept = NULL;
  g_autofree char *reused = NULL;
  AtelierLibrary *library;
  AtelierImagePage *page;
  GtkWindow *window;
  Count count;
  guint width = 0, height = 0, n_sizes;

  g_assert_cmpint (g_mkdir_with_parents (models_folder, 0755), ==, 0);
  write_checkpoint (checkpoint);
  write_lora (lora);

  /* The isolated folders hide the system's too: GTK needs its MIME data and icons. */
  g_setenv ("XDG_DATA_DIRS", system_data_dirs, TRUE);
  g_setenv ("ATELIER_LIBRARY_DIR", library_folder, TRUE);
  g_settings_set_string (settings, "models-folder", models_folder);
  app = atelier_application_new ();
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  g_assert_no_error (error);
  g_application_activate (G_APPLICATION (app));
  window = gtk_application_get_active_window (GTK_APPLICATION (app));
  g_assert_true (ATELIER_IS_WINDOW (window));
  wait_until (is_mapped, window);
  check_pages_fit (window);
  g_action_group_activate_action (G_ACTION_GROUP (window), "show-page",
                                  g_variant_new_string ("image"));
  page = ATELIER_IMAGE_PAGE (gtk_widget_get_template_child (GTK_WIDGET (window),
                                                            ATELIER_TYPE_WINDOW,
                                                            "image_page"));
  library = atelier_application_get_library (app, &error);
  g_assert_no_error (error);
  count.library = library;
  wait_until (two_models_listed, page);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (page_child (page, "page_stack")), ==,
                   "studio");

  /* A picture's sides are whole latents: the spin buttons take nothing else. */
  check_side_snaps (page_child (page, "width_spin"));
  check_side_snaps (page_child (page, "height_spin"));

  gtk_text_buffer_set_text (gtk_text_view_get_buffer (page_child (page, "prompt_view")), prompt,
                            -1);
  gtk_spin_button_set_value (page_child (page, "width_spin"), 64);
  gtk_spin_button_set_value (page_child (page, "height_spin"), 64);
  gtk_spin_button_set_value (page_child (page, "steps_spin"), 2);
  gtk_spin_button_set_value (page_child (page, "batch_spin"), 1);
  gtk_editable_set_text (page_child (page, "seed_entry"), "4242");
  gtk_toggle_button_set_active (page_child (page, "seed_lock"), TRUE);

  /* A LoRA is no checkpoint: said so, and the prompt stays. */
  select_model (page, "a-lora.safetensors");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "image.generate", NULL));
  g_assert_true (atelier_image_page_is_busy (page));
  wait_until (page_idle, page);
  g_assert_true (find_label (GTK_WIDGET (page), "The model could not be loaded"));
  g_assert_true (find_label (GTK_WIDGET (page), "a-lora.safetensors"));
  kept = buffer_text (page_child (page, "prompt_view"));
  g_assert_cmpstr (kept, ==, prompt);
  count.n_items = 0;
  g_assert_true (library_has (&count));

  /* Generated: the steps' previews, then the picture, in the strip and the library. */
  select_model (page, "tiny-sd.safetensors");
  g_signal_connect (page_child (page, "picture"), "notify::paintable",
                    G_CALLBACK (on_paintable), sizes);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "image.generate", NULL));
  /* The first Generate loads the checkpoint. */
  g_assert_true (gtk_widget_get_visible (page_child (page, "load_box")));
  wait_until (page_idle, page);
  g_assert_false (gtk_widget_get_visible (page_child (page, "load_box")));
  g_assert_false (gtk_widget_get_visible (page_child (page, "progress_box")));
  n_sizes = sizes->len / 2;
  for (guint i = 0; i < n_sizes; i++)
    g_test_message ("canvas texture %u: %dx%d", i, g_array_index (sizes, int, 2 * i),
                    g_array_index (sizes, int, 2 * i + 1));
  /* One preview per step (the latent's projection, 1/8 of the sides), then the picture. */
  g_assert_cmpuint (n_sizes, ==, 3);
  for (guint i = 0; i < 4; i++)
    g_assert_cmpint (g_array_index (sizes, int, i), ==, 8);
  g_assert_cmpint (g_array_index (sizes, int, 4), ==, 64);
  g_assert_cmpint (g_array_index (sizes, int, 5), ==, 64);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (page_child (page, "canvas_stack")), ==,
                   "image");
  g_assert_true (gtk_revealer_get_reveal_child (page_child (page, "results_revealer")));
  g_assert_cmpuint (n_children (page_child (page, "results_box")), ==, 1);

  count.n_items = 1;
  wait_until (library_has, &count);
  asset = g_list_model_get_item (G_LIST_MODEL (library), 0);
  g_assert_cmpint (atelier_asset_get_kind (asset), ==, ATELIER_ASSET_IMAGE);
  g_assert_cmpstr (atelier_asset_get_prompt (asset), ==, prompt);
  g_assert_cmpint (atelier_asset_get_seed (asset), ==, 4242);
  g_assert_true (g_str_has_prefix (atelier_asset_get_path (asset), library_folder));
  pixels = at_png_read (atelier_asset_get_path (asset), &width, &height, &infotext, NULL,
                        &error);
  g_assert_no_error (error);
  g_assert_cmpuint (width, ==, 64);
  g_assert_cmpuint (height, ==, 64);
  g_test_message ("parameters: %s", infotext);
  params = at_generation_params_parse (infotext);
  g_assert_cmpstr (params->prompt, ==, prompt);
  g_assert_cmpint (params->steps, ==, 2);
  g_assert_cmpuint (params->width, ==, 64);
  g_assert_cmpuint (params->height, ==, 64);
  g_assert_cmpint (params->seed, ==, 4242);
  g_assert_cmpstr (params->model, ==, "tiny-sd");

  /* Cancelled after its first step: nothing more in the strip or the library. */
  gtk_spin_button_set_value (page_child (page, "steps_spin"), 150);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "image.generate", NULL));
  wait_until (stepping, page);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "image.cancel", NULL));
  wait_until (page_idle, page);
  g_assert_false (gtk_widget_get_visible (page_child (page, "progress_box")));
  g_assert_cmpuint (n_children (page_child (page, "results_box")), ==, 1);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 1);

  /* From the gallery: the picture's prompt, seed and steps come back into the panel. */
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (page_child (page, "prompt_view")),
                            "something else", -1);
  gtk_editable_set_text (page_child (page, "seed_entry"), "7");
  g_action_group_activate_action (G_ACTION_GROUP (window), "show-page",
                                  g_variant_new_string ("gallery"));
  g_action_group_activate_action (G_ACTION_GROUP (window), "reuse-asset",
                                  g_variant_new_int64 (atelier_asset_get_id (asset)));
  reused = buffer_text (page_child (page, "prompt_view"));
  g_assert_cmpstr (reused, ==, prompt);
  g_assert_cmpstr (gtk_editable_get_text (page_child (page, "seed_entry")), ==, "4242");
  g_assert_cmpint (gtk_spin_button_get_value_as_int (page_child (page, "steps_spin")), ==, 2);
  g_assert_cmpint (gtk_spin_button_get_value_as_int (page_child (page, "width_spin")), ==, 64);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (GTK_STACK (gtk_widget_get_template_child (
                     GTK_WIDGET (window), ATELIER_TYPE_WINDOW, "stack"))), ==, "image");

  gtk_window_destroy (window);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

int
main (int argc, char **argv)
{
  const char *data_dirs = g_getenv ("XDG_DATA_DIRS");

  system_data_dirs = g_strdup (data_dirs != NULL ? data_dirs : "/usr/local/share:/usr/share");
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  g_test_add_func ("/app/image-page/generate", test_generate);
  return g_test_run ();
}
