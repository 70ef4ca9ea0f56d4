/* atelier-image-page.c: AtelierImagePage, built from ui/atelier-image-page.ui.
 *
 * One Generate makes a job: the panel's values copied (so that the user may go on
 * editing), the checkpoint loaded when the application holds another one, then the
 * batch's images one after another, each saved into the library as it lands. Generate
 * while a job runs queues another job with the panel's values at the time it starts. */
#include "config.h"

#include <math.h>

#include <glib/gi18n.h>

#include "at-error.h"
#include "atelier-image-page.h"
#include "atelier-image-params.h"
#include "atelier-mask-editor.h"
#include "atelier-model-files.h"
#include "image/at-image-model.h"

#define CHECKPOINT_SUFFIX ".safetensors"
/* A thumbnail in the strip of this session's pictures. */
#define THUMBNAIL_SIZE 72
/* An SD prompt is a handful of tags: about 60 words fit CLIP's first 75 tokens. */
#define WRITE_PROMPT_TOKENS 120

static const char write_prompt_system[] =
  "You write prompts for Stable Diffusion. Answer with the prompt alone: comma-separated "
  "descriptive tags for the subject and its details, the style or medium, the lighting "
  "and the composition. Under 60 words. No sentences, no quotes, no explanations.";

struct _AtelierImagePage
{
  AdwBin parent_instance;

  GtkStack *page_stack;
  AdwComboRow *model_row;
  GtkStringList *model_names;
  GtkTextView *prompt_view;
  GtkTextView *negative_view;
  AdwButtonContent *write_prompt_content;
  AdwComboRow *size_row;
  GtkStringList *size_names;
  GtkSpinButton *width_spin, *height_spin, *steps_spin, *cfg_spin, *batch_spin;
  AdwComboRow *sampler_row;
  GtkStringList *sampler_names;
  GtkEntry *seed_entry;
  GtkToggleButton *seed_lock;
  AdwPreferencesGroup *lora_group;
  AdwActionRow *source_row, *strength_row, *mask_row, *brush_row;
  GtkScale *strength_scale;
  GtkSwitch *mask_switch;
  GtkWidget *load_box;
  GtkProgressBar *load_progress;
  GtkLabel *queue_label;
  GtkStack *canvas_stack;
  AtelierMaskEditor *mask_editor;
  GtkPicture *picture;
  GtkWidget *progress_box;
  GtkLabel *step_label;
  GtkProgressBar *step_progress;
  GtkRevealer *results_revealer;
  GtkBox *results_box;

  AtelierApplication *app;
  GSettings *settings;
  char *models_folder;
  GPtrArray *lora_rows; /* AdwActionRow, each with "path" and "weight" (a GtkAdjustment) */
  GRand *rand;
  gboolean syncing_size; /* the size row and the spin buttons are setting each other */

  /* The job running, from Generate until its last image or an error. */
  AtelierImageSettings *job;
  char *job_model_file;
  guint8 *job_image, *job_mask;
  guint job_index;
  AtImageModel *model;
  GCancellable *load_cancellable;
  GCancellable *generate_cancellable;
  gint64 generate_started; /* monotonic µs */
  guint queued;

  GCancellable *write_cancellable;
  char *idea; /* the prompt before Write Prompt replaced it */
  gboolean write_replaced;
};

G_DEFINE_FINAL_TYPE (AtelierImagePage, atelier_image_page, ADW_TYPE_BIN)

static void start_job (AtelierImagePage *self);

/* The async callbacks hold a reference to the page, so they may run after the window
 * closed and the template's widgets are gone. */
static gboolean
is_disposed (AtelierImagePage *self)
{
  return self->picture == NULL;
}

static void show_error (AtelierImagePage *self, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
show_toast (AtelierImagePage *self, AdwToast *toast)
{
  adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (adw_bin_get_child (ADW_BIN (self))), toast);
}

static void
show_error (AtelierImagePage *self, const char *format, ...)
{
  g_autofree char *message = NULL;
  g_autofree char *markup = NULL;
  AdwToast *toast;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  /* A toast's title is markup; messages quote file names and prompts. */
  markup = g_markup_escape_text (message, -1);
  toast = adw_toast_new (markup);
  adw_toast_set_timeout (toast, 0);
  show_toast (self, toast);
}

static char *
buffer_text (GtkTextView *view)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (view);
  GtkTextIter start, end;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

static const char *
selected_model_file (AtelierImagePage *self)
{
  guint selected = adw_combo_row_get_selected (self->model_row);

  return gtk_string_list_get_string (self->model_names, selected);
}

static char *
model_stem (const char *file)
{
  return g_str_has_suffix (file, CHECKPOINT_SUFFIX)
         ? g_strndup (file, strlen (file) - strlen (CHECKPOINT_SUFFIX))
         : g_strdup (file);
}

static gboolean
job_running (AtelierImagePage *self)
{
  return self->job != NULL;
}

static void
update_actions (AtelierImagePage *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  gboolean has_source = atelier_mask_editor_get_image (self->mask_editor) != NULL;
  gboolean writing = self->write_cancellable != NULL;
  g_autofree char *queued = NULL;

  gtk_widget_action_set_enabled (widget, "image.generate",
                                 self->app != NULL
                                 && atelier_application_get_engine (self->app, NULL) != NULL
                                 && selected_model_file (self) != NULL && !writing);
  gtk_widget_action_set_enabled (widget, "image.cancel", job_running (self) || self->queued > 0);
  gtk_widget_action_set_enabled (widget, "image.clear-source", has_source);
  gtk_widget_action_set_enabled (widget, "image.clear-mask",
                                 atelier_mask_editor_has_mask (self->mask_editor));
  gtk_widget_set_sensitive (GTK_WIDGET (self->strength_row), has_source);
  gtk_widget_set_sensitive (GTK_WIDGET (self->mask_row), has_source);
  gtk_widget_set_sensitive (GTK_WIDGET (self->brush_row), has_source);
  gtk_widget_set_sensitive (GTK_WIDGET (self->model_row), !job_running (self));
  gtk_text_view_set_editable (self->prompt_view, !writing);
  adw_button_content_set_label (self->write_prompt_content,
                                writing ? _("_Stop Writing") : _("_Write Prompt"));
  gtk_widget_set_visible (self->load_box, self->load_cancellable != NULL);

  gtk_widget_set_visible (GTK_WIDGET (self->queue_label), self->queued > 0);
  /* Translators: on the Generate button, Generate pressed while a job ran. */
  queued = g_strdup_printf (_("%u queued"), self->queued);
  gtk_label_set_text (self->queue_label, queued);
}

/* --- the panel ---------------------------------------------------------------------- */

static void
set_buffer_text (GtkTextView *view, const char *text)
{
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (view), text, -1);
}

static void
on_lora_remove_clicked (GtkButton *button, AtelierImagePage *self)
{
  GtkWidget *row = gtk_widget_get_ancestor (GTK_WIDGET (button), ADW_TYPE_ACTION_ROW);

  g_ptr_array_remove (self->lora_rows, row);
  adw_preferences_group_remove (self->lora_group, row);
}

static void
add_lora_row (AtelierImagePage *self, const char *path, double weight)
{
  g_autofree char *name = g_path_get_basename (path);
  g_autofree char *remove_label = g_strdup_printf (_("Remove %s"), name);
  g_autofree char *weight_label = g_strdup_printf (_("Weight of %s"), name);
  GtkAdjustment *adjustment = gtk_adjustment_new (weight, -1, 2, 0.05, 0.25, 0);
  GtkWidget *row = adw_action_row_new ();
  GtkWidget *scale = gtk_scale_new (GTK_ORIENTATION_HORIZONTAL, adjustment);
  GtkWidget *remove = gtk_button_new_from_icon_name ("list-remove-symbolic");

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), name);
  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  gtk_widget_set_tooltip_text (row, path);
  gtk_scale_set_draw_value (GTK_SCALE (scale), TRUE);
  gtk_scale_set_digits (GTK_SCALE (scale), 2);
  gtk_scale_set_value_pos (GTK_SCALE (scale), GTK_POS_LEFT);
  gtk_scale_add_mark (GTK_SCALE (scale), 1, GTK_POS_BOTTOM, NULL);
  gtk_widget_set_size_request (scale, 120, -1);
  gtk_widget_set_valign (scale, GTK_ALIGN_CENTER);
  gtk_widget_set_tooltip_text (scale, _("How strongly the LoRA applies: 1 as trained, "
                                        "below 0 pushes away from it"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (scale), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  weight_label, -1);
  gtk_widget_set_valign (remove, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (remove, "flat");
  gtk_widget_set_tooltip_text (remove, _("Remove this LoRA"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (remove), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  remove_label, -1);
  g_signal_connect_object (remove, "clicked", G_CALLBACK (on_lora_remove_clicked), self, 0);
  adw_action_row_add_suffix (ADW_ACTION_ROW (row), scale);
  adw_action_row_add_suffix (ADW_ACTION_ROW (row), remove);
  g_object_set_data_full (G_OBJECT (row), "path", g_strdup (path), g_free);
  g_object_set_data (G_OBJECT (row), "weight", adjustment);

  adw_preferences_group_add (self->lora_group, row);
  g_ptr_array_add (self->lora_rows, row);
}

static void
clear_lora_rows (AtelierImagePage *self)
{
  while (self->lora_rows->len > 0)
    {
      GtkWidget *row = g_ptr_array_steal_index (self->lora_rows, self->lora_rows->len - 1);

      adw_preferences_group_remove (self->lora_group, row);
    }
}

/* The panel's values, or NULL with why they cannot be used. */
static AtelierImageSettings *
panel_settings (AtelierImagePage *self, GError **error)
{
  g_autoptr (AtelierImageSettings) s = atelier_image_settings_new ();
  const char *seed_text = gtk_editable_get_text (GTK_EDITABLE (self->seed_entry));
  const char *model_file = selected_model_file (self);
  guint64 seed;

  g_free (s->prompt);
  s->prompt = buffer_text (self->prompt_view);
  g_free (s->negative_prompt);
  s->negative_prompt = buffer_text (self->negative_view);
  s->model = model_file != NULL ? model_stem (model_file) : NULL;
  s->width = gtk_spin_button_get_value_as_int (self->width_spin);
  s->height = gtk_spin_button_get_value_as_int (self->height_spin);
  s->steps = gtk_spin_button_get_value_as_int (self->steps_spin);
  s->cfg_scale = gtk_spin_button_get_value (self->cfg_spin);
  g_free (s->sampler);
  s->sampler = g_strdup (gtk_string_list_get_string (self->sampler_names,
                                                     adw_combo_row_get_selected (self->sampler_row)));
  s->seed_locked = gtk_toggle_button_get_active (self->seed_lock);
  if (seed_text[0] != '\0')
    {
      if (!g_ascii_string_to_unsigned (seed_text, 10, 0, ATELIER_IMAGE_MAX_SEED, &seed, NULL))
        {
          g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                       _("The seed “%s” is not a whole number from 0 to 4294967295"),
                       seed_text);
          return NULL;
        }
      s->seed = seed;
    }
  s->batch_count = gtk_spin_button_get_value_as_int (self->batch_spin);
  s->img2img = atelier_mask_editor_get_image (self->mask_editor) != NULL;
  s->strength = gtk_range_get_value (GTK_RANGE (self->strength_scale));
  for (guint i = 0; i < self->lora_rows->len; i++)
    {
      GObject *row = g_ptr_array_index (self->lora_rows, i);

      atelier_image_settings_add_lora (s, g_object_get_data (row, "path"),
                                       gtk_adjustment_get_value (g_object_get_data (row,
                                                                                    "weight")));
    }
  return g_steal_pointer (&s);
}

static void
select_string (AdwComboRow *row, GtkStringList *list, const char *value)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (list));

  for (guint i = 0; i < n; i++)
    if (g_strcmp0 (gtk_string_list_get_string (list, i), value) == 0)
      {
        adw_combo_row_set_selected (row, i);
        return;
      }
}

static void
show_seed (AtelierImagePage *self, gint64 seed)
{
  g_autofree char *text = seed >= 0 ? g_strdup_printf ("%" G_GINT64_FORMAT, seed)
                                    : g_strdup ("");

  gtk_editable_set_text (GTK_EDITABLE (self->seed_entry), text);
}

/* Puts s into the panel; the model is chosen when the folder has it. */
static void
show_settings (AtelierImagePage *self, const AtelierImageSettings *s)
{
  guint n_models = g_list_model_get_n_items (G_LIST_MODEL (self->model_names));

  set_buffer_text (self->prompt_view, s->prompt);
  set_buffer_text (self->negative_view, s->negative_prompt);
  for (guint i = 0; s->model != NULL && i < n_models; i++)
    {
      g_autofree char *stem = model_stem (gtk_string_list_get_string (self->model_names, i));

      if (g_str_equal (stem, s->model))
        adw_combo_row_set_selected (self->model_row, i);
    }
  gtk_spin_button_set_value (self->width_spin, s->width);
  gtk_spin_button_set_value (self->height_spin, s->height);
  gtk_spin_button_set_value (self->steps_spin, s->steps);
  gtk_spin_button_set_value (self->cfg_spin, s->cfg_scale);
  select_string (self->sampler_row, self->sampler_names, s->sampler);
  show_seed (self, s->seed);
  gtk_toggle_button_set_active (self->seed_lock, s->seed_locked);
  gtk_range_set_value (GTK_RANGE (self->strength_scale), s->strength);
  clear_lora_rows (self);
  for (guint i = 0; i < s->loras->len; i++)
    {
      const AtImageLora *lora = &g_array_index (s->loras, AtImageLora, i);

      add_lora_row (self, lora->path, lora->weight);
    }
}

/* The values a new session starts from are the last ones generated with. */
static void
save_settings (AtelierImagePage *self, const AtelierImageSettings *s, const char *model_file)
{
  g_settings_delay (self->settings);
  g_settings_set_string (self->settings, "image-model", model_file);
  g_settings_set_int (self->settings, "image-width", s->width);
  g_settings_set_int (self->settings, "image-height", s->height);
  g_settings_set_int (self->settings, "image-steps", s->steps);
  g_settings_set_double (self->settings, "image-cfg", s->cfg_scale);
  g_settings_set_string (self->settings, "image-sampler", s->sampler);
  g_settings_set_string (self->settings, "image-negative-prompt", s->negative_prompt);
  g_settings_apply (self->settings);
}

static void
load_saved_settings (AtelierImagePage *self)
{
  g_autofree char *sampler = g_settings_get_string (self->settings, "image-sampler");
  g_autofree char *negative = g_settings_get_string (self->settings, "image-negative-prompt");

  gtk_spin_button_set_value (self->width_spin,
                             atelier_image_round_side (g_settings_get_int (self->settings,
                                                                           "image-width")));
  gtk_spin_button_set_value (self->height_spin,
                             atelier_image_round_side (g_settings_get_int (self->settings,
                                                                           "image-height")));
  gtk_spin_button_set_value (self->steps_spin, g_settings_get_int (self->settings, "image-steps"));
  gtk_spin_button_set_value (self->cfg_spin, g_settings_get_double (self->settings, "image-cfg"));
  select_string (self->sampler_row, self->sampler_names, sampler);
  set_buffer_text (self->negative_view, negative);
}

static void
on_size_preset_selected (AtelierImagePage *self)
{
  guint selected = adw_combo_row_get_selected (self->size_row);

  if (self->syncing_size || selected >= atelier_image_n_size_presets)
    return;
  self->syncing_size = TRUE;
  gtk_spin_button_set_value (self->width_spin, atelier_image_size_presets[selected].width);
  gtk_spin_button_set_value (self->height_spin, atelier_image_size_presets[selected].height);
  self->syncing_size = FALSE;
}

static void
on_size_changed (AtelierImagePage *self)
{
  int preset = atelier_image_size_preset_find (gtk_spin_button_get_value_as_int (self->width_spin),
                                               gtk_spin_button_get_value_as_int (self->height_spin));

  if (self->syncing_size)
    return;
  self->syncing_size = TRUE;
  /* The last entry is "Custom". */
  adw_combo_row_set_selected (self->size_row,
                              preset >= 0 ? (guint) preset : atelier_image_n_size_presets);
  self->syncing_size = FALSE;
}

static void
on_seed_lock_toggled (AtelierImagePage *self)
{
  gboolean locked = gtk_toggle_button_get_active (self->seed_lock);

  gtk_button_set_icon_name (GTK_BUTTON (self->seed_lock),
                            locked ? "changes-prevent-symbolic" : "changes-allow-symbolic");
}

static void
on_model_selected (AtelierImagePage *self)
{
  if (self->app != NULL)
    update_actions (self);
}

static void
randomize_seed_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (widget);

  show_seed (self, g_rand_int (self->rand));
}

/* --- LoRA and source image files ---------------------------------------------------- */

typedef void (*FileChosen) (AtelierImagePage *self, GFile *file);

static void
on_chooser_response (GtkNativeDialog *chooser, int response, gpointer user_data)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (user_data);
  FileChosen chosen = g_object_get_data (G_OBJECT (chooser), "chosen");

  if (response == GTK_RESPONSE_ACCEPT && !is_disposed (self))
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (chooser));

      chosen (self, file);
    }
  g_object_unref (chooser);
  g_object_unref (self);
}

static void
choose_file (AtelierImagePage *self, const char *title, GtkFileFilter *filter,
             GFile *folder, FileChosen chosen)
{
  GtkNativeDialog *chooser;

  chooser = GTK_NATIVE_DIALOG (
    gtk_file_chooser_native_new (title, GTK_WINDOW (gtk_widget_get_root (GTK_WIDGET (self))),
                                 GTK_FILE_CHOOSER_ACTION_OPEN, _("_Open"), _("_Cancel")));
  gtk_native_dialog_set_modal (chooser, TRUE);
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), filter);
  if (folder != NULL)
    gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (chooser), folder, NULL);
  g_object_set_data (G_OBJECT (chooser), "chosen", chosen);
  g_signal_connect (chooser, "response", G_CALLBACK (on_chooser_response), g_object_ref (self));
  gtk_native_dialog_show (chooser);
}

static void
lora_chosen (AtelierImagePage *self, GFile *file)
{
  g_autofree char *path = g_file_get_path (file);

  if (path != NULL)
    add_lora_row (self, path, 1);
}

static void
add_lora_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (widget);
  GtkFileFilter *filter = gtk_file_filter_new ();
  g_autoptr (GFile) folder = self->models_folder != NULL
                             ? g_file_new_for_path (self->models_folder)
                             : NULL;

  gtk_file_filter_set_name (filter, _("LoRA files (.safetensors)"));
  gtk_file_filter_add_suffix (filter, "safetensors");
  choose_file (self, _("Add a LoRA"), filter, folder, lora_chosen);
}

static void
set_source (AtelierImagePage *self, GdkTexture *texture, const char *name)
{
  atelier_mask_editor_set_image (self->mask_editor, texture);
  adw_action_row_set_subtitle (self->source_row, texture != NULL ? name : _("None"));
  if (texture != NULL)
    gtk_stack_set_visible_child_name (self->canvas_stack, "source");
  else
    {
      gtk_switch_set_active (self->mask_switch, FALSE);
      if (g_str_equal (gtk_stack_get_visible_child_name (self->canvas_stack), "source"))
        gtk_stack_set_visible_child_name (self->canvas_stack,
                                          gtk_picture_get_paintable (self->picture) != NULL
                                          ? "image" : "placeholder");
    }
  update_actions (self);
}

static void
source_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierImagePage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = g_file_load_bytes_finish (G_FILE (source), result, NULL, &error);
  g_autoptr (GdkTexture) texture = NULL;
  g_autofree char *name = g_file_get_basename (G_FILE (source));

  if (is_disposed (self))
    return;
  if (bytes != NULL)
    texture = gdk_texture_new_from_bytes (bytes, &error);
  if (texture == NULL)
    {
      show_error (self, _("%s could not be opened as a picture: %s"), name, error->message);
      return;
    }
  set_source (self, texture, name);
}

static void
load_source (AtelierImagePage *self, GFile *file)
{
  g_file_load_bytes_async (file, NULL, source_read, g_object_ref (self));
}

static void
open_source_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  GtkFileFilter *filter = gtk_file_filter_new ();

  gtk_file_filter_set_name (filter, _("Pictures"));
  gtk_file_filter_add_pixbuf_formats (filter);
  choose_file (ATELIER_IMAGE_PAGE (widget), _("Open a Source Image"), filter, NULL,
               load_source);
}

static void
clear_source_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  set_source (ATELIER_IMAGE_PAGE (widget), NULL, NULL);
}

static void
clear_mask_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  atelier_mask_editor_clear_mask (ATELIER_IMAGE_PAGE (widget)->mask_editor);
}

static void
on_mask_switch_active (AtelierImagePage *self)
{
  if (gtk_switch_get_active (self->mask_switch))
    gtk_stack_set_visible_child_name (self->canvas_stack, "source");
}

/* --- generating ------------------------------------------------------------------- */

static GdkTexture *
texture_from_rgb (const guint8 *pixels, guint width, guint height)
{
  g_autoptr (GBytes) bytes = g_bytes_new (pixels, (gsize) width * height * 3);

  return gdk_memory_texture_new (width, height, GDK_MEMORY_R8G8B8, bytes, (gsize) width * 3);
}

static void
show_picture (AtelierImagePage *self, GdkTexture *texture)
{
  gtk_picture_set_paintable (self->picture, GDK_PAINTABLE (texture));
  gtk_stack_set_visible_child_name (self->canvas_stack, "image");
}

/* Ends the job; the next queued one starts when start_next, else the queue is dropped. */
static void
end_job (AtelierImagePage *self, gboolean start_next)
{
  g_clear_pointer (&self->job, atelier_image_settings_free);
  g_clear_pointer (&self->job_model_file, g_free);
  g_clear_pointer (&self->job_image, g_free);
  g_clear_pointer (&self->job_mask, g_free);
  g_clear_object (&self->model);
  gtk_widget_set_visible (self->progress_box, FALSE);
  if (!start_next)
    self->queued = 0;
  update_actions (self);
  if (self->queued > 0)
    {
      self->queued--;
      start_job (self);
    }
}

typedef struct
{
  AtelierLibrary *library;
  AtImageResult *result;
  char *path;
  char *prompt;
  char *parameters;
  char *model;
  AtelierImagePage *page;
} SaveData;

static void
save_data_free (SaveData *data)
{
  g_object_unref (data->library);
  at_image_result_free (data->result);
  g_free (data->path);
  g_free (data->prompt);
  g_free (data->parameters);
  g_free (data->model);
  g_object_unref (data->page);
  g_free (data);
}

static void
save_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  SaveData *data = task_data;
  GError *error = NULL;

  if (at_image_result_save_png (data->result, data->path, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SaveData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr (GError) error = NULL;
  g_autoptr (AtelierAsset) asset = NULL;
  AtelierAssetInfo info = {
    .prompt = data->prompt,
    .parameters = data->parameters,
    .model = data->model,
    .seed = data->result->seed,
  };

  if (g_task_propagate_boolean (G_TASK (result), &error))
    asset = atelier_library_add (data->library, ATELIER_ASSET_IMAGE, data->path, &info, &error);
  if (asset == NULL && !is_disposed (data->page))
    show_error (data->page, _("The picture could not be saved: %s"), error->message);
}

/* Writes the PNG on a worker thread, then indexes it in the library. */
static void
save_result (AtelierImagePage *self, AtImageResult *result)
{
  g_autoptr (GError) error = NULL;
  AtelierLibrary *library = atelier_application_get_library (self->app, &error);
  g_autofree char *infotext = NULL;
  g_autoptr (GTask) task = NULL;
  SaveData *data;

  if (library == NULL)
    {
      show_error (self, _("The picture could not be saved: %s"), error->message);
      at_image_result_free (result);
      return;
    }
  infotext = at_generation_params_to_text (result->params);
  data = g_new0 (SaveData, 1);
  data->library = g_object_ref (library);
  data->path = atelier_library_new_path (library, ATELIER_ASSET_IMAGE, "png");
  data->prompt = g_strdup (self->job->prompt);
  data->parameters = atelier_image_parameters_json (infotext, self->job);
  data->model = g_strdup (at_image_model_get_name (self->model));
  data->page = g_object_ref (self);
  data->result = result;
  task = g_task_new (NULL, NULL, saved, NULL);
  g_task_set_task_data (task, data, (GDestroyNotify) save_data_free);
  g_task_run_in_thread (task, save_thread);
}

static void
on_thumbnail_clicked (GtkButton *button, AtelierImagePage *self)
{
  GtkPicture *thumbnail = GTK_PICTURE (gtk_button_get_child (button));

  show_picture (self, GDK_TEXTURE (gtk_picture_get_paintable (thumbnail)));
}

static void
add_thumbnail (AtelierImagePage *self, GdkTexture *texture, gint64 seed)
{
  g_autofree char *seed_text = g_strdup_printf ("%" G_GINT64_FORMAT, seed);
  g_autofree char *label = g_strdup_printf (_("Picture with seed %s"), seed_text);
  GtkWidget *picture = gtk_picture_new_for_paintable (GDK_PAINTABLE (texture));
  GtkWidget *button = gtk_button_new ();

  gtk_widget_set_size_request (picture, THUMBNAIL_SIZE, THUMBNAIL_SIZE);
  gtk_button_set_child (GTK_BUTTON (button), picture);
  gtk_widget_add_css_class (button, "flat");
  gtk_widget_add_css_class (button, "result-thumb");
  gtk_widget_set_tooltip_text (button, label);
  gtk_accessible_update_property (GTK_ACCESSIBLE (button), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  label, -1);
  g_signal_connect_object (button, "clicked", G_CALLBACK (on_thumbnail_clicked), self, 0);
  gtk_box_prepend (self->results_box, button);
  gtk_revealer_set_reveal_child (self->results_revealer, TRUE);
}

static void generate_next (AtelierImagePage *self);

static void
generated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierImagePage) self = user_data;
  g_autoptr (GError) error = NULL;
  AtImageResult *image = at_image_model_generate_finish (AT_IMAGE_MODEL (source), result,
                                                         &error);
  g_autoptr (GdkTexture) texture = NULL;

  g_clear_object (&self->generate_cancellable);
  if (is_disposed (self))
    {
      g_clear_pointer (&image, at_image_result_free);
      return;
    }
  if (image == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_error (self, _("The picture could not be generated: %s"), error->message);
      end_job (self, FALSE);
      return;
    }

  texture = texture_from_rgb (image->pixels, image->width, image->height);
  show_picture (self, texture);
  add_thumbnail (self, texture, image->seed);
  /* An unlocked seed shows the one just used, so that a picture can be made again. */
  if (!self->job->seed_locked || self->job->seed < 0)
    show_seed (self, image->seed);
  save_result (self, image);

  if (++self->job_index < self->job->batch_count)
    generate_next (self);
  else
    end_job (self, TRUE);
}

static void
on_step (guint step, guint n_steps, const guint8 *preview, guint preview_width,
         guint preview_height, gpointer user_data)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (user_data);
  double elapsed = (g_get_monotonic_time () - self->generate_started) / (double) G_USEC_PER_SEC;
  guint seconds_left = (guint) ceil (elapsed / step * (n_steps - step));
  g_autofree char *label = NULL;

  if (is_disposed (self))
    return;
  if (preview != NULL)
    {
      g_autoptr (GdkTexture) texture = texture_from_rgb (preview, preview_width, preview_height);

      show_picture (self, texture);
    }
  /* Translators: the overlay on the live preview: step done, steps, time left. */
  label = g_strdup_printf (_("Step %u/%u · ~%u s left"), step, n_steps, seconds_left);
  gtk_label_set_text (self->step_label, label);
  gtk_progress_bar_set_fraction (self->step_progress, (double) step / n_steps);
}

static void
show_job_progress (AtelierImagePage *self)
{
  g_autofree char *label = NULL;

  if (self->job->batch_count > 1)
    /* Translators: before the first step of a batch's picture. */
    label = g_strdup_printf (_("Picture %u of %u · starting"), self->job_index + 1,
                             self->job->batch_count);
  else
    label = g_strdup (_("Starting"));
  gtk_label_set_text (self->step_label, label);
  gtk_progress_bar_set_fraction (self->step_progress, 0);
  gtk_widget_set_visible (self->progress_box, TRUE);
}

static void
generate_next (AtelierImagePage *self)
{
  gint64 seed = atelier_image_settings_seed_for (self->job, self->job_index, self->rand);
  AtImageRequest request;

  atelier_image_settings_fill_request (self->job, seed, &request);
  request.previews = TRUE;
  request.init_image = self->job_image;
  request.mask = self->job_mask;
  show_job_progress (self);
  self->generate_cancellable = g_cancellable_new ();
  self->generate_started = g_get_monotonic_time ();
  /* The page's reference, held until the generation ends, keeps step_data valid. */
  at_image_model_generate_async (self->model, &request, on_step, self,
                                 self->generate_cancellable, generated, g_object_ref (self));
}

static void
load_progress (double fraction, gpointer user_data)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (user_data);

  if (!is_disposed (self))
    gtk_progress_bar_set_fraction (self->load_progress, fraction);
}

static void
use_model (AtelierImagePage *self, AtImageModel *model)
{
  g_autofree char *taesd = g_settings_get_string (self->settings, "taesd-path");
  g_autoptr (GError) error = NULL;

  g_set_object (&self->model, model);
  /* The previews fall back to the latent projection: worth saying, not worth stopping. */
  if (taesd[0] != '\0' && !at_image_model_set_preview_decoder (model, taesd, &error))
    show_error (self, _("The preview decoder could not be used: %s"), error->message);
  generate_next (self);
}

static void
model_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierImagePage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtImageModel) model = at_image_model_load_finish (result, &error);

  g_clear_object (&self->load_cancellable);
  if (is_disposed (self))
    return;
  if (model == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_error (self, _("The model could not be loaded: %s"), error->message);
      end_job (self, FALSE);
      return;
    }
  atelier_application_set_image_model (self->app, G_OBJECT (model), self->job_model_file);
  update_actions (self);
  use_model (self, model);
}

static void
start_job (AtelierImagePage *self)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtelierImageSettings) s = panel_settings (self, &error);
  const char *model_file = selected_model_file (self);
  GObject *loaded = atelier_application_get_image_model (self->app);
  AtEngine *engine = atelier_application_get_engine (self->app, NULL);
  g_autofree char *path = NULL;

  if (s == NULL || !atelier_image_settings_check (s, &error))
    {
      show_error (self, "%s", error->message);
      end_job (self, FALSE);
      return;
    }
  if (model_file == NULL || engine == NULL)
    return;
  save_settings (self, s, model_file);

  self->job = g_steal_pointer (&s);
  self->job_model_file = g_strdup (model_file);
  self->job_index = 0;
  if (self->job->img2img)
    {
      self->job_image = atelier_mask_editor_render_image (self->mask_editor, self->job->width,
                                                          self->job->height);
      if (atelier_mask_editor_has_mask (self->mask_editor))
        self->job_mask = atelier_mask_editor_render_mask (self->mask_editor, self->job->width,
                                                          self->job->height);
    }
  update_actions (self);

  if (loaded != NULL
      && g_strcmp0 (atelier_application_get_image_model_name (self->app), model_file) == 0)
    {
      use_model (self, AT_IMAGE_MODEL (loaded));
      return;
    }

  /* The old model's GPU memory is given back before the new one asks for its own. */
  atelier_application_set_image_model (self->app, NULL, NULL);
  path = g_build_filename (self->models_folder, model_file, NULL);
  self->load_cancellable = g_cancellable_new ();
  gtk_progress_bar_set_fraction (self->load_progress, 0);
  at_image_model_load_async (engine, path, self->load_cancellable, load_progress, self,
                             model_loaded, g_object_ref (self));
  update_actions (self);
}

static void
generate_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (widget);

  if (job_running (self))
    {
      self->queued++;
      update_actions (self);
      return;
    }
  start_job (self);
}

static void
cancel_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (widget);

  self->queued = 0;
  g_cancellable_cancel (self->load_cancellable);
  g_cancellable_cancel (self->generate_cancellable);
  update_actions (self);
}

/* --- writing the prompt ------------------------------------------------------------- */

static void
insert_prompt_piece (const char *text, gpointer user_data)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (user_data);
  GtkTextBuffer *buffer;
  GtkTextIter end;

  if (is_disposed (self))
    return;
  buffer = gtk_text_view_get_buffer (self->prompt_view);
  if (!self->write_replaced)
    {
      gtk_text_buffer_set_text (buffer, "", 0);
      self->write_replaced = TRUE;
    }
  gtk_text_buffer_get_end_iter (buffer, &end);
  gtk_text_buffer_insert (buffer, &end, text, -1);
}

static void
prompt_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierImagePage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGenerateResult) written = NULL;
  g_autofree char *text = NULL;
  AdwToast *toast;

  written = at_language_model_generate_finish (AT_LANGUAGE_MODEL (source), result, &error);
  g_clear_object (&self->write_cancellable);
  if (is_disposed (self))
    return;
  if (written == NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      set_buffer_text (self->prompt_view, self->idea);
      show_error (self, _("The prompt could not be written: %s"), error->message);
    }
  else if (self->write_replaced)
    {
      /* Models like to wrap the answer in spaces and quotes. */
      text = buffer_text (self->prompt_view);
      g_strstrip (text);
      if (g_str_has_prefix (text, "\"") && g_str_has_suffix (text, "\"") && strlen (text) > 1)
        {
          text[strlen (text) - 1] = '\0';
          memmove (text, text + 1, strlen (text));
        }
      set_buffer_text (self->prompt_view, text);
      toast = adw_toast_new (_("Prompt written"));
      adw_toast_set_button_label (toast, _("_Undo"));
      adw_toast_set_action_name (toast, "image.undo-prompt");
      show_toast (self, toast);
    }
  update_actions (self);
}

static void
write_prompt_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (widget);
  GObject *model = atelier_application_get_text_model (self->app);
  g_autofree char *idea = NULL;
  AtChatMessage messages[2];
  AtGenerateRequest request;

  if (self->write_cancellable != NULL)
    {
      g_cancellable_cancel (self->write_cancellable);
      return;
    }
  if (model == NULL)
    {
      show_toast (self, adw_toast_new (_("Load a language model on the Write page first")));
      return;
    }
  idea = g_strstrip (buffer_text (self->prompt_view));
  if (idea[0] == '\0')
    {
      show_toast (self, adw_toast_new (_("Write a short idea in the prompt first, "
                                         "such as “a fox in the snow”")));
      return;
    }
  g_free (self->idea);
  self->idea = g_steal_pointer (&idea);

  messages[0] = (AtChatMessage) { .role = "system", .content = write_prompt_system };
  messages[1] = (AtChatMessage) { .role = "user", .content = self->idea };
  at_generate_request_init (&request);
  request.messages = messages;
  request.n_messages = G_N_ELEMENTS (messages);
  request.max_tokens = WRITE_PROMPT_TOKENS;
  self->write_replaced = FALSE;
  self->write_cancellable = g_cancellable_new ();
  at_language_model_generate_async (AT_LANGUAGE_MODEL (model), &request, insert_prompt_piece,
                                    self, self->write_cancellable, prompt_written,
                                    g_object_ref (self));
  update_actions (self);
}

static void
undo_prompt_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (widget);

  if (self->idea != NULL)
    set_buffer_text (self->prompt_view, self->idea);
}

/* --- public ------------------------------------------------------------------------- */

static void
show_empty_state (AtelierImagePage *self)
{
  gboolean has_models = g_list_model_get_n_items (G_LIST_MODEL (self->model_names)) > 0;

  gtk_stack_set_visible_child_name (self->page_stack, has_models ? "studio" : "empty");
}

void
atelier_image_page_set_application (AtelierImagePage *self, AtelierApplication *app)
{
  g_return_if_fail (ATELIER_IS_IMAGE_PAGE (self));

  self->app = app;
  self->settings = g_object_ref (atelier_application_get_settings (app));
  load_saved_settings (self);
  update_actions (self);
}

void
atelier_image_page_set_model_files (AtelierImagePage *self, const char *folder,
                                    GPtrArray *files)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_null_terminated (files->len, NULL, TRUE);
  g_autofree char *previous = g_strdup (selected_model_file (self));
  g_autofree char *saved_model = g_settings_get_string (self->settings, "image-model");
  guint n_old = g_list_model_get_n_items (G_LIST_MODEL (self->model_names));

  g_return_if_fail (ATELIER_IS_IMAGE_PAGE (self));

  g_free (self->models_folder);
  self->models_folder = g_strdup (folder);
  for (guint i = 0; i < files->len; i++)
    {
      const AtelierModelFile *file = g_ptr_array_index (files, i);

      if (g_str_has_suffix (file->name, CHECKPOINT_SUFFIX))
        g_ptr_array_add (names, file->name);
    }
  gtk_string_list_splice (self->model_names, 0, n_old, (const char *const *) names->pdata);
  /* The one chosen before, else the one last generated with. */
  select_string (self->model_row, self->model_names,
                 previous != NULL ? previous : saved_model);
  show_empty_state (self);
  update_actions (self);
}

void
atelier_image_page_reuse_asset (AtelierImagePage *self, AtelierAsset *asset,
                                gboolean as_init_image)
{
  g_autoptr (AtelierImageSettings) s = NULL;

  g_return_if_fail (ATELIER_IS_IMAGE_PAGE (self));
  g_return_if_fail (ATELIER_IS_ASSET (asset));

  s = panel_settings (self, NULL);
  if (s == NULL)
    s = atelier_image_settings_new ();
  atelier_image_settings_apply_parameters (s, atelier_asset_get_parameters (asset));
  if (atelier_asset_get_prompt (asset)[0] != '\0')
    {
      g_free (s->prompt);
      s->prompt = g_strdup (atelier_asset_get_prompt (asset));
    }
  show_settings (self, s);
  if (as_init_image)
    {
      g_autoptr (GFile) file = g_file_new_for_path (atelier_asset_get_path (asset));

      load_source (self, file);
    }
}

gboolean
atelier_image_page_is_busy (AtelierImagePage *self)
{
  g_return_val_if_fail (ATELIER_IS_IMAGE_PAGE (self), FALSE);
  return job_running (self) || self->write_cancellable != NULL;
}

static void
atelier_image_page_dispose (GObject *object)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (object);

  g_cancellable_cancel (self->load_cancellable);
  g_cancellable_cancel (self->generate_cancellable);
  g_cancellable_cancel (self->write_cancellable);
  g_clear_object (&self->model);
  g_clear_object (&self->settings);
  g_clear_pointer (&self->lora_rows, g_ptr_array_unref);
  gtk_widget_dispose_template (GTK_WIDGET (self), ATELIER_TYPE_IMAGE_PAGE);
  G_OBJECT_CLASS (atelier_image_page_parent_class)->dispose (object);
}

static void
atelier_image_page_finalize (GObject *object)
{
  AtelierImagePage *self = ATELIER_IMAGE_PAGE (object);

  g_clear_pointer (&self->job, atelier_image_settings_free);
  g_free (self->job_model_file);
  g_free (self->job_image);
  g_free (self->job_mask);
  g_free (self->models_folder);
  g_free (self->idea);
  g_rand_free (self->rand);
  G_OBJECT_CLASS (atelier_image_page_parent_class)->finalize (object);
}

static void
atelier_image_page_class_init (AtelierImagePageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_image_page_dispose;
  object_class->finalize = atelier_image_page_finalize;

  g_type_ensure (ATELIER_TYPE_MASK_EDITOR);
  /* The toast overlay is the bin's child, not bound: the bin unparents it itself. */
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-image-page.ui");
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, page_stack);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, model_row);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, model_names);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, prompt_view);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, negative_view);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, write_prompt_content);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, size_row);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, size_names);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, width_spin);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, height_spin);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, steps_spin);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, cfg_spin);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, batch_spin);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, sampler_row);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, sampler_names);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, seed_entry);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, seed_lock);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, lora_group);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, source_row);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, strength_row);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, mask_row);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, brush_row);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, strength_scale);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, mask_switch);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, load_box);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, load_progress);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, queue_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, canvas_stack);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, mask_editor);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, picture);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, progress_box);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, step_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, step_progress);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, results_revealer);
  gtk_widget_class_bind_template_child (widget_class, AtelierImagePage, results_box);
  gtk_widget_class_bind_template_callback (widget_class, on_model_selected);
  gtk_widget_class_bind_template_callback (widget_class, on_size_preset_selected);
  gtk_widget_class_bind_template_callback (widget_class, on_size_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_seed_lock_toggled);

  gtk_widget_class_install_action (widget_class, "image.generate", NULL, generate_activated);
  gtk_widget_class_install_action (widget_class, "image.cancel", NULL, cancel_activated);
  gtk_widget_class_install_action (widget_class, "image.write-prompt", NULL,
                                   write_prompt_activated);
  gtk_widget_class_install_action (widget_class, "image.undo-prompt", NULL,
                                   undo_prompt_activated);
  gtk_widget_class_install_action (widget_class, "image.randomize-seed", NULL,
                                   randomize_seed_activated);
  gtk_widget_class_install_action (widget_class, "image.add-lora", NULL, add_lora_activated);
  gtk_widget_class_install_action (widget_class, "image.open-source", NULL,
                                   open_source_activated);
  gtk_widget_class_install_action (widget_class, "image.clear-source", NULL,
                                   clear_source_activated);
  gtk_widget_class_install_action (widget_class, "image.clear-mask", NULL,
                                   clear_mask_activated);
}

static void
load_css (void)
{
  static gboolean loaded;
  g_autoptr (GtkCssProvider) provider = NULL;
  GdkDisplay *display = gdk_display_get_default ();

  if (loaded || display == NULL)
    return;
  loaded = TRUE;
  provider = gtk_css_provider_new ();
  gtk_css_provider_load_from_resource (provider, "/org/atelier/Atelier/atelier-image-page.css");
  gtk_style_context_add_provider_for_display (display, GTK_STYLE_PROVIDER (provider),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
}

static void
atelier_image_page_init (AtelierImagePage *self)
{
  GtkShortcutController *shortcuts;

  gtk_widget_init_template (GTK_WIDGET (self));
  load_css ();
  self->lora_rows = g_ptr_array_new ();
  self->rand = g_rand_new ();

  for (guint i = 0; i < atelier_image_n_size_presets; i++)
    {
      guint width = atelier_image_size_presets[i].width;
      guint height = atelier_image_size_presets[i].height;
      g_autofree char *name = g_strdup_printf ("%u × %u", width, height);

      gtk_string_list_append (self->size_names, name);
    }
  gtk_string_list_append (self->size_names, _("Custom"));
  for (guint i = 0; atelier_image_samplers[i] != NULL; i++)
    gtk_string_list_append (self->sampler_names, atelier_image_samplers[i]);
  select_string (self->sampler_row, self->sampler_names, "Euler a");
  on_size_changed (self);
  g_signal_connect_object (self->mask_switch, "notify::active",
                           G_CALLBACK (on_mask_switch_active), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->mask_editor, "notify::has-mask", G_CALLBACK (update_actions),
                           self, G_CONNECT_SWAPPED);

  /* In the capture phase, so that the prompt does not take Ctrl+Enter as a new line. */
  shortcuts = GTK_SHORTCUT_CONTROLLER (gtk_shortcut_controller_new ());
  gtk_event_controller_set_propagation_phase (GTK_EVENT_CONTROLLER (shortcuts),
                                              GTK_PHASE_CAPTURE);
  gtk_shortcut_controller_add_shortcut (shortcuts,
                                        gtk_shortcut_new (gtk_shortcut_trigger_parse_string ("<Control>Return"),
                                                          gtk_named_action_new ("image.generate")));
  gtk_shortcut_controller_add_shortcut (shortcuts,
                                        gtk_shortcut_new (gtk_keyval_trigger_new (GDK_KEY_Escape, 0),
                                                          gtk_named_action_new ("image.cancel")));
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (shortcuts));
  show_empty_state (self);
}
