/* atelier-models-page.c: AtelierModelsPage, built from ui/atelier-models-page.ui. */
#include "config.h"

#include <glib/gi18n.h>

#include "atelier-model-files.h"
#include "atelier-models-page.h"

struct _AtelierModelsPage
{
  AdwBin parent_instance;

  GtkStack *models_stack;
  AdwStatusPage *models_empty;
  GtkLabel *models_folder_label;
  GtkListBox *models_list;

  AtelierApplication *app;
  GSettings *settings;
  GCancellable *cancellable;
};

G_DEFINE_FINAL_TYPE (AtelierModelsPage, atelier_models_page, ADW_TYPE_BIN)

enum { SIGNAL_FILES_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

char *
atelier_models_folder (GSettings *settings)
{
  g_autofree char *folder = g_settings_get_string (settings, "models-folder");

  if (folder[0] == '\0')
    return g_build_filename (g_get_user_data_dir (), "atelier", "models", NULL);
  return g_steal_pointer (&folder);
}

static GtkWidget *
model_row_new (const AtelierModelFile *file)
{
  GtkWidget *row = adw_action_row_new ();
  g_autofree char *size = g_format_size (file->size);

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), file->name);
  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (row), size);
  return row;
}

static void
models_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) files = atelier_model_files_list_finish (result, &error);
  g_autofree char *folder = NULL;
  AtelierModelsPage *self;
  GtkWidget *child;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  self = ATELIER_MODELS_PAGE (user_data);
  if (files == NULL)
    {
      adw_status_page_set_description (self->models_empty, error->message);
      gtk_stack_set_visible_child_name (self->models_stack, "empty");
      return;
    }

  folder = atelier_models_folder (self->settings);
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->models_list))) != NULL)
    gtk_list_box_remove (self->models_list, child);
  for (guint i = 0; i < files->len; i++)
    gtk_list_box_append (self->models_list, model_row_new (g_ptr_array_index (files, i)));
  gtk_stack_set_visible_child_name (self->models_stack, files->len > 0 ? "list" : "empty");
  g_signal_emit (self, signals[SIGNAL_FILES_CHANGED], 0, folder, files);
}

void
atelier_models_page_refresh (AtelierModelsPage *self)
{
  g_autofree char *folder = NULL;
  g_autofree char *empty_text = NULL;
  g_autofree char *folder_text = NULL;

  g_return_if_fail (ATELIER_IS_MODELS_PAGE (self));
  folder = atelier_models_folder (self->settings);
  /* A listing of the previous folder must not land after this one. */
  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  self->cancellable = g_cancellable_new ();

  empty_text = g_strdup_printf (_("Add a GGUF or .safetensors file to %s."), folder);
  adw_status_page_set_description (self->models_empty, empty_text);
  folder_text = g_strdup_printf (_("Models in %s"), folder);
  gtk_label_set_text (self->models_folder_label, folder_text);
  atelier_model_files_list_async (folder, self->cancellable, models_listed, self);
}

static void
atelier_models_page_dispose (GObject *object)
{
  AtelierModelsPage *self = ATELIER_MODELS_PAGE (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->settings);
  /* The bin's child is a bound template child: drop it once, here, not twice. */
  adw_bin_set_child (ADW_BIN (self), NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), ATELIER_TYPE_MODELS_PAGE);
  G_OBJECT_CLASS (atelier_models_page_parent_class)->dispose (object);
}

static void
atelier_models_page_class_init (AtelierModelsPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_models_page_dispose;
  signals[SIGNAL_FILES_CHANGED] =
    g_signal_new ("files-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                  NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_PTR_ARRAY);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-models-page.ui");
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, models_stack);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, models_empty);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, models_folder_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, models_list);
}

static void
atelier_models_page_init (AtelierModelsPage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

void
atelier_models_page_set_application (AtelierModelsPage *self, AtelierApplication *app)
{
  g_return_if_fail (ATELIER_IS_MODELS_PAGE (self));
  self->app = app;
  self->settings = g_object_ref (atelier_application_get_settings (app));
  g_signal_connect_object (self->settings, "changed::models-folder",
                           G_CALLBACK (atelier_models_page_refresh), self, G_CONNECT_SWAPPED);
  atelier_models_page_refresh (self);
}
