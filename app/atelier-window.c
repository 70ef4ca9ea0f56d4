/* atelier-window.c: AtelierWindow, built from ui/atelier-window.ui. */
#include "config.h"

#include <glib/gi18n.h>

#include "atelier-audio-page.h"
#include "atelier-gallery-page.h"
#include "atelier-image-page.h"
#include "atelier-model-files.h"
#include "atelier-models-page.h"
#include "atelier-status.h"
#include "atelier-window.h"
#include "atelier-write-page.h"

/* Often enough to follow models being loaded, rarely enough to cost nothing. */
#define MEMORY_REFRESH_SECONDS 2

struct _AtelierWindow
{
  AdwApplicationWindow parent_instance;

  AdwLeaflet *leaflet;
  AdwWindowTitle *page_title;
  AtelierStatus *status;
  GtkWidget *software_bar;
  GtkLabel *software_label;
  GtkWidget *error_bar;
  GtkLabel *error_label;
  GtkStack *stack;
  AtelierWritePage *write_page;
  AtelierImagePage *image_page;
  AtelierAudioPage *audio_page;
  AtelierGalleryPage *gallery_page;
  AtelierModelsPage *models_page;

  GSettings *settings;
  AtEngine *engine;
  guint memory_source;
};

G_DEFINE_FINAL_TYPE (AtelierWindow, atelier_window, ADW_TYPE_APPLICATION_WINDOW)

static void
show_page_activated (GSimpleAction *action, GVariant *parameter, gpointer user_data)
{
  AtelierWindow *self = ATELIER_WINDOW (user_data);
  const char *name = g_variant_get_string (parameter, NULL);

  if (gtk_stack_get_child_by_name (self->stack, name) != NULL)
    gtk_stack_set_visible_child_name (self->stack, name);
}

static void
reuse_asset (AtelierWindow *self, AtelierAsset *asset, gboolean as_init_image)
{
  atelier_image_page_reuse_asset (self->image_page, asset, as_init_image);
  gtk_stack_set_visible_child_name (self->stack, "image");
}

/* win.reuse-asset and win.use-as-init-image: an asset id of the library. */
static void
reuse_asset_activated (GSimpleAction *action, GVariant *parameter, gpointer user_data)
{
  AtelierWindow *self = ATELIER_WINDOW (user_data);
  GtkApplication *app = gtk_window_get_application (GTK_WINDOW (self));
  AtelierLibrary *library = atelier_application_get_library (ATELIER_APPLICATION (app), NULL);
  AtelierAsset *asset = library != NULL
                        ? atelier_library_lookup (library, g_variant_get_int64 (parameter))
                        : NULL;

  if (asset != NULL && atelier_asset_get_kind (asset) == ATELIER_ASSET_IMAGE)
    reuse_asset (self, asset,
                 g_str_equal (g_action_get_name (G_ACTION (action)), "use-as-init-image"));
}

/* The Write page's selection (or whole draft) becomes the Audio page's script. */
static void
use_write_text_activated (GSimpleAction *action, GVariant *parameter, gpointer user_data)
{
  AtelierWindow *self = ATELIER_WINDOW (user_data);
  g_autofree char *text = atelier_write_page_get_text (self->write_page);

  atelier_audio_page_set_text (self->audio_page, text);
  gtk_stack_set_visible_child_name (self->stack, "audio");
}

static const GActionEntry win_actions[] = {
  { .name = "use-write-text", .activate = use_write_text_activated },
  { .name = "show-page", .activate = show_page_activated, .parameter_type = "s" },
  { .name = "reuse-asset", .activate = reuse_asset_activated, .parameter_type = "x" },
  { .name = "use-as-init-image", .activate = reuse_asset_activated, .parameter_type = "x" },
};

static void
on_back_clicked (AtelierWindow *self)
{
  adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_BACK);
}

static void
on_visible_page_changed (AtelierWindow *self)
{
  GtkWidget *child = gtk_stack_get_visible_child (self->stack);

  if (child == NULL)
    return;
  adw_window_title_set_title (self->page_title,
                              gtk_stack_page_get_title (gtk_stack_get_page (self->stack,
                                                                            child)));
  /* Folded, the sidebar hides the page: picking one should show it. */
  if (adw_leaflet_get_folded (self->leaflet))
    adw_leaflet_navigate (self->leaflet, ADW_NAVIGATION_DIRECTION_FORWARD);
}

static gboolean
refresh_memory (gpointer user_data)
{
  AtelierWindow *self = ATELIER_WINDOW (user_data);
  guint64 total = 0;
  guint64 used = at_engine_get_memory_used (self->engine, &total);
  g_autofree char *used_text = g_format_size (used);
  g_autofree char *total_text = g_format_size (total);
  g_autofree char *text = NULL;

  /* Translators: the header bar's subtitle: GPU name, the GPU memory Atelier
   * holds, the GPU's memory. */
  text = g_strdup_printf (_("%s · %s of %s"), at_engine_get_device_name (self->engine),
                          used_text, total_text);
  adw_window_title_set_subtitle (self->page_title, text);
  return G_SOURCE_CONTINUE;
}

static void
show_engine (AtelierWindow *self, AtelierApplication *app)
{
  g_autoptr (GError) error = NULL;
  AtEngine *engine = atelier_application_get_engine (app, &error);

  if (engine == NULL)
    {
      g_autofree char *message = g_strdup_printf (_("No usable GPU was found, so nothing "
                                                    "can be generated: %s"),
                                                  error->message);

      adw_window_title_set_subtitle (self->page_title, _("No GPU"));
      gtk_label_set_text (self->error_label, message);
      gtk_widget_set_visible (self->error_bar, TRUE);
      return;
    }

  self->engine = g_object_ref (engine);
  atelier_write_page_set_engine (self->write_page, engine);
  refresh_memory (self);
  self->memory_source = g_timeout_add_seconds (MEMORY_REFRESH_SECONDS, refresh_memory, self);
  if (at_engine_is_software_device (engine))
    {
      g_autofree char *message = g_strdup_printf (_("%s runs on the CPU, not on a GPU: "
                                                    "generation will be slow."),
                                                  at_engine_get_device_name (engine));

      gtk_label_set_text (self->software_label, message);
      gtk_widget_set_visible (self->software_bar, TRUE);
    }
}

static void
on_model_files_changed (AtelierWindow *self, const char *folder, GPtrArray *files)
{
  atelier_write_page_set_model_files (self->write_page, folder, files);
  atelier_image_page_set_model_files (self->image_page, folder, files);
}

static void
atelier_window_dispose (GObject *object)
{
  AtelierWindow *self = ATELIER_WINDOW (object);

  g_clear_handle_id (&self->memory_source, g_source_remove);
  g_clear_object (&self->engine);
  g_clear_object (&self->settings);
  gtk_widget_dispose_template (GTK_WIDGET (self), ATELIER_TYPE_WINDOW);
  G_OBJECT_CLASS (atelier_window_parent_class)->dispose (object);
}

static void
atelier_window_class_init (AtelierWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_window_dispose;

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-window.ui");
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, leaflet);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, page_title);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, status);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, software_bar);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, software_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, error_bar);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, error_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, write_page);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, image_page);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, audio_page);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, gallery_page);
  gtk_widget_class_bind_template_child (widget_class, AtelierWindow, models_page);
  gtk_widget_class_bind_template_callback (widget_class, on_back_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_visible_page_changed);
}

static void
atelier_window_init (AtelierWindow *self)
{
  g_type_ensure (ATELIER_TYPE_WRITE_PAGE);
  g_type_ensure (ATELIER_TYPE_IMAGE_PAGE);
  g_type_ensure (ATELIER_TYPE_AUDIO_PAGE);
  g_type_ensure (ATELIER_TYPE_GALLERY_PAGE);
  g_type_ensure (ATELIER_TYPE_MODELS_PAGE);
  g_type_ensure (ATELIER_TYPE_STATUS);
  gtk_widget_init_template (GTK_WIDGET (self));
  g_action_map_add_action_entries (G_ACTION_MAP (self), win_actions,
                                   G_N_ELEMENTS (win_actions), self);
  on_visible_page_changed (self);
}

AtelierWindow *
atelier_window_new (AtelierApplication *app)
{
  AtelierWindow *self = g_object_new (ATELIER_TYPE_WINDOW, "application", app, NULL);

  self->settings = g_object_ref (atelier_application_get_settings (app));
  show_engine (self, app);
  atelier_status_set_application (self->status, app);
  atelier_write_page_set_application (self->write_page, app);
  atelier_image_page_set_application (self->image_page, app);
  atelier_audio_page_set_application (self->audio_page, app);
  atelier_gallery_page_set_application (self->gallery_page, app);
  g_signal_connect_object (self->gallery_page, "reuse-asset", G_CALLBACK (reuse_asset), self,
                           G_CONNECT_SWAPPED);
  g_signal_connect_object (self->models_page, "files-changed",
                           G_CALLBACK (on_model_files_changed), self, G_CONNECT_SWAPPED);
  atelier_models_page_set_application (self->models_page, app);
  return self;
}
