/* atelier-preferences.c: AtelierPreferences, built from ui/atelier-preferences.ui. Rows
 * are bound to GSettings, so a change applies at once wherever the setting is read; the
 * GPU list is read in a GTask thread (it opens a Vulkan instance). */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "atelier-preferences.h"
#include "gpu/at-gpu.h"

struct _AtelierPreferences
{
  AdwPreferencesWindow parent_instance;

  AdwComboRow *style_row;
  AdwActionRow *models_folder_row;
  GtkButton *models_folder_choose, *models_folder_clear;
  AdwComboRow *device_row;
  AdwActionRow *project_folder_row;
  GtkButton *project_folder_choose, *project_folder_clear;
  AdwComboRow *image_format_row, *text_format_row, *audio_format_row;
  GtkSpinButton *width_spin, *height_spin, *steps_spin, *cfg_spin, *rate_spin;
  AdwComboRow *sampler_row;
  AdwEntryRow *negative_row, *voice_row;
  AdwActionRow *taesd_row;
  GtkButton *taesd_choose, *taesd_clear;

  GSettings *settings;
  GCancellable *cancellable;
  GtkFileChooserNative *chooser;
  /* The device setting each entry of device_row stands for ("" for Automatic). */
  GPtrArray *device_selectors;
};

G_DEFINE_FINAL_TYPE (AtelierPreferences, atelier_preferences, ADW_TYPE_PREFERENCES_WINDOW)

/* The settings' values behind each combo row's items, in the .ui's order. */
static const char *const color_schemes[] = { "default", "light", "dark", NULL };
static const char *const image_formats[] = { "png", "jpeg", "webp", NULL };
static const char *const text_formats[] = { "markdown", "text", NULL };
static const char *const audio_formats[] = { "wav", "ogg", NULL };
/* As AUTOMATIC1111 names them, which the Image page and PNG metadata use. */
static const char *const samplers[] = { "Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras",
                                        "DDIM", "LCM", NULL };

static gboolean
choice_to_index (GValue *value, GVariant *variant, gpointer user_data)
{
  const char *const *choices = user_data;
  const char *choice = g_variant_get_string (variant, NULL);

  for (guint i = 0; choices[i] != NULL; i++)
    if (g_str_equal (choices[i], choice))
      {
        g_value_set_uint (value, i);
        return TRUE;
      }
  /* A value set elsewhere that the list lacks shows the first item. */
  g_value_set_uint (value, 0);
  return TRUE;
}

static GVariant *
index_to_choice (const GValue *value, const GVariantType *type, gpointer user_data)
{
  const char *const *choices = user_data;
  guint index = g_value_get_uint (value);

  return index < g_strv_length ((char **) choices) ? g_variant_new_string (choices[index])
                                                   : NULL;
}

static void
bind_choices (AtelierPreferences *self, const char *key, AdwComboRow *row,
              const char *const *choices)
{
  g_settings_bind_with_mapping (self->settings, key, row, "selected", G_SETTINGS_BIND_DEFAULT,
                                choice_to_index, index_to_choice, (gpointer) choices, NULL);
}

/* A path setting shown as the row's subtitle; empty shows what empty means. */
typedef struct
{
  const char *key;
  const char *empty_text; /* untranslated; NULL shows the default models folder */
} PathKey;

static const PathKey models_folder_key = { "models-folder", NULL };
static const PathKey project_folder_key = { "project-folder", N_("Not chosen yet") };
static const PathKey taesd_key = { "taesd-path", N_("None: previews use a rough built-in "
                                                    "approximation") };

static gboolean
path_to_subtitle (GValue *value, GVariant *variant, gpointer user_data)
{
  const PathKey *key = user_data;
  const char *path = g_variant_get_string (variant, NULL);

  if (path[0] != '\0')
    g_value_set_string (value, path);
  else if (key->empty_text != NULL)
    g_value_set_string (value, _(key->empty_text));
  else
    {
      g_autofree char *folder = g_build_filename (g_get_user_data_dir (), "atelier", "models",
                                                  NULL);

      /* Translators: the models folder when none was chosen. */
      g_value_take_string (value, g_strdup_printf (_("%s (the default)"), folder));
    }
  return TRUE;
}

static void
chooser_response (GtkNativeDialog *dialog, int response, gpointer user_data)
{
  AtelierPreferences *self = user_data;
  const char *key = g_object_get_data (G_OBJECT (dialog), "settings-key");

  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = file != NULL ? g_file_get_path (file) : NULL;

      if (path != NULL)
        g_settings_set_string (self->settings, key, path);
    }
  g_clear_object (&self->chooser);
}

static void
choose_path (AtelierPreferences *self, const PathKey *key, GtkFileChooserAction action,
             const char *title)
{
  if (self->chooser != NULL)
    return;
  self->chooser = gtk_file_chooser_native_new (title, GTK_WINDOW (self), action, _("_Select"),
                                               _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  if (action == GTK_FILE_CHOOSER_ACTION_OPEN)
    {
      GtkFileFilter *filter = gtk_file_filter_new ();

      gtk_file_filter_set_name (filter, _("TAESD decoder (safetensors)"));
      gtk_file_filter_add_pattern (filter, "*.safetensors");
      gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), filter);
      g_object_unref (filter);
    }
  g_object_set_data (G_OBJECT (self->chooser), "settings-key", (gpointer) key->key);
  g_signal_connect (self->chooser, "response", G_CALLBACK (chooser_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
on_models_folder_choose (AtelierPreferences *self)
{
  choose_path (self, &models_folder_key, GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER,
               _("Models Folder"));
}

static void
on_project_folder_choose (AtelierPreferences *self)
{
  choose_path (self, &project_folder_key, GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER,
               _("Project Folder"));
}

static void
on_taesd_choose (AtelierPreferences *self)
{
  choose_path (self, &taesd_key, GTK_FILE_CHOOSER_ACTION_OPEN, _("TAESD Decoder"));
}

static void
on_models_folder_clear (AtelierPreferences *self)
{
  g_settings_reset (self->settings, models_folder_key.key);
}

static void
on_project_folder_clear (AtelierPreferences *self)
{
  g_settings_reset (self->settings, project_folder_key.key);
}

static void
on_taesd_clear (AtelierPreferences *self)
{
  g_settings_reset (self->settings, taesd_key.key);
}

static gboolean
path_to_sensitive (GValue *value, GVariant *variant, gpointer user_data)
{
  g_value_set_boolean (value, g_variant_get_string (variant, NULL)[0] != '\0');
  return TRUE;
}

static void
bind_path (AtelierPreferences *self, const PathKey *key, AdwActionRow *row, GtkButton *clear)
{
  g_settings_bind_with_mapping (self->settings, key->key, row, "subtitle",
                                G_SETTINGS_BIND_GET, path_to_subtitle, NULL, (gpointer) key,
                                NULL);
  /* Nothing to clear while the setting is empty. */
  g_settings_bind_with_mapping (self->settings, key->key, clear, "sensitive",
                                G_SETTINGS_BIND_GET, path_to_sensitive, NULL, NULL, NULL);
}

/* --- GPU devices ------------------------------------------------------------------ */

static void
list_devices_thread (GTask *task, gpointer source_object, gpointer task_data,
                     GCancellable *cancellable)
{
  GError *error = NULL;
  GPtrArray *devices = at_gpu_list_devices (NULL, &error);

  if (devices == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, devices, (GDestroyNotify) g_ptr_array_unref);
}

static void
on_device_selected (AtelierPreferences *self)
{
  guint selected = adw_combo_row_get_selected (self->device_row);

  if (selected < self->device_selectors->len)
    g_settings_set_string (self->settings, "device",
                           g_ptr_array_index (self->device_selectors, selected));
}

/* The entry the setting picks: "" is Automatic; otherwise a device's selector, its index,
 * or (as ATELIER_DEVICE takes it) a part of its name. */
static guint
device_entry_for_setting (AtelierPreferences *self, GPtrArray *devices, const char *setting)
{
  char *end = NULL;
  guint64 index;

  if (setting[0] == '\0')
    return 0;
  for (guint i = 1; i < self->device_selectors->len; i++)
    if (g_str_equal (g_ptr_array_index (self->device_selectors, i), setting))
      return i;
  index = g_ascii_strtoull (setting, &end, 10);
  if (*end == '\0' && index < devices->len)
    return index + 1;
  for (guint i = 0; i < devices->len; i++)
    if (strstr (((AtGpuDeviceInfo *) g_ptr_array_index (devices, i))->name, setting) != NULL)
      return i + 1;
  return 0;
}

static void
devices_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devices = g_task_propagate_pointer (G_TASK (result), &error);
  g_autofree char *setting = NULL;
  AtelierPreferences *self;
  GtkStringList *names;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  self = ATELIER_PREFERENCES (user_data);
  if (devices == NULL)
    {
      adw_action_row_set_subtitle (ADW_ACTION_ROW (self->device_row), error->message);
      return;
    }
  names = GTK_STRING_LIST (adw_combo_row_get_model (self->device_row));
  for (guint i = 0; i < devices->len; i++)
    {
      const AtGpuDeviceInfo *info = g_ptr_array_index (devices, i);
      g_autofree char *label = NULL;
      gboolean unique = TRUE;

      for (guint j = 0; j < devices->len; j++)
        if (j != i && g_str_equal (info->name,
                                   ((AtGpuDeviceInfo *) g_ptr_array_index (devices, j))->name))
          unique = FALSE;
      /* Two identical GPUs are told apart by their index. */
      g_ptr_array_add (self->device_selectors,
                       unique ? g_strdup (info->name) : g_strdup_printf ("%u", i));
      /* Translators: a GPU that lacks a feature Atelier needs, and why. */
      label = info->usable ? g_strdup (info->name)
                           : g_strdup_printf (_("%s (unusable: %s)"), info->name,
                                              info->unusable_reason);
      gtk_string_list_append (names, label);
    }
  setting = g_settings_get_string (self->settings, "device");
  adw_combo_row_set_selected (self->device_row,
                              device_entry_for_setting (self, devices, setting));
  g_signal_connect_object (self->device_row, "notify::selected",
                           G_CALLBACK (on_device_selected), self, G_CONNECT_SWAPPED);
}

static void
atelier_preferences_dispose (GObject *object)
{
  AtelierPreferences *self = ATELIER_PREFERENCES (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  g_clear_object (&self->settings);
  g_clear_pointer (&self->device_selectors, g_ptr_array_unref);
  gtk_widget_dispose_template (GTK_WIDGET (self), ATELIER_TYPE_PREFERENCES);
  G_OBJECT_CLASS (atelier_preferences_parent_class)->dispose (object);
}

static void
atelier_preferences_class_init (AtelierPreferencesClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_preferences_dispose;
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-preferences.ui");
#define BIND(name) gtk_widget_class_bind_template_child (widget_class, AtelierPreferences, name)
  BIND (style_row);
  BIND (models_folder_row);
  BIND (models_folder_choose);
  BIND (models_folder_clear);
  BIND (device_row);
  BIND (project_folder_row);
  BIND (project_folder_choose);
  BIND (project_folder_clear);
  BIND (image_format_row);
  BIND (text_format_row);
  BIND (audio_format_row);
  BIND (width_spin);
  BIND (height_spin);
  BIND (steps_spin);
  BIND (cfg_spin);
  BIND (sampler_row);
  BIND (negative_row);
  BIND (taesd_row);
  BIND (taesd_choose);
  BIND (taesd_clear);
  BIND (voice_row);
  BIND (rate_spin);
#undef BIND
}

static void
atelier_preferences_init (AtelierPreferences *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->device_selectors = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (self->device_selectors, g_strdup (""));
}

AtelierPreferences *
atelier_preferences_new (AtelierApplication *app, GtkWindow *parent)
{
  AtelierPreferences *self = g_object_new (ATELIER_TYPE_PREFERENCES, "transient-for", parent,
                                           "application", app, NULL);
  g_autoptr (GTask) task = NULL;

  self->settings = g_object_ref (atelier_application_get_settings (app));
  bind_choices (self, "color-scheme", self->style_row, color_schemes);
  bind_choices (self, "export-image-format", self->image_format_row, image_formats);
  bind_choices (self, "export-text-format", self->text_format_row, text_formats);
  bind_choices (self, "export-audio-format", self->audio_format_row, audio_formats);
  bind_choices (self, "image-sampler", self->sampler_row, samplers);
  bind_path (self, &models_folder_key, self->models_folder_row, self->models_folder_clear);
  bind_path (self, &project_folder_key, self->project_folder_row, self->project_folder_clear);
  bind_path (self, &taesd_key, self->taesd_row, self->taesd_clear);
  g_settings_bind (self->settings, "image-width", self->width_spin, "value",
                   G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "image-height", self->height_spin, "value",
                   G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "image-steps", self->steps_spin, "value",
                   G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "image-cfg", self->cfg_spin, "value",
                   G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "speech-rate", self->rate_spin, "value",
                   G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "image-negative-prompt", self->negative_row, "text",
                   G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (self->settings, "voice", self->voice_row, "text", G_SETTINGS_BIND_DEFAULT);

  g_signal_connect_swapped (self->models_folder_choose, "clicked",
                            G_CALLBACK (on_models_folder_choose), self);
  g_signal_connect_swapped (self->models_folder_clear, "clicked",
                            G_CALLBACK (on_models_folder_clear), self);
  g_signal_connect_swapped (self->project_folder_choose, "clicked",
                            G_CALLBACK (on_project_folder_choose), self);
  g_signal_connect_swapped (self->project_folder_clear, "clicked",
                            G_CALLBACK (on_project_folder_clear), self);
  g_signal_connect_swapped (self->taesd_choose, "clicked", G_CALLBACK (on_taesd_choose), self);
  g_signal_connect_swapped (self->taesd_clear, "clicked", G_CALLBACK (on_taesd_clear), self);

  self->cancellable = g_cancellable_new ();
  task = g_task_new (NULL, self->cancellable, devices_listed, self);
  g_task_run_in_thread (task, list_devices_thread);
  return self;
}
