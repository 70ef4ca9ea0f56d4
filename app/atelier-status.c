/* atelier-status.c: AtelierStatus, built from ui/atelier-status.ui. */
#include "config.h"

#include <glib/gi18n.h>

#include "atelier-status.h"

/* Often enough to follow a model being loaded while the popover is open. */
#define REFRESH_SECONDS 2

struct _AtelierStatus
{
  AdwBin parent_instance;

  GtkImage *device_icon;
  GtkLabel *device_label;
  GtkPopover *popover;
  GtkLabel *popover_device;
  GtkWidget *popover_warning;
  GtkLabel *popover_warning_label;
  GtkWidget *memory_box;
  GtkLabel *memory_label;
  GtkLevelBar *memory_bar;
  GtkListBox *models_list;
  GtkWidget *models_empty;

  AtelierApplication *app;
  AtEngine *engine;
  guint refresh_source;
};

G_DEFINE_FINAL_TYPE (AtelierStatus, atelier_status, ADW_TYPE_BIN)

static void
refresh_memory (AtelierStatus *self)
{
  guint64 total = 0, used;
  g_autofree char *used_text = NULL;
  g_autofree char *total_text = NULL;
  g_autofree char *text = NULL;

  if (self->engine == NULL)
    return;
  used = at_engine_get_memory_used (self->engine, &total);
  used_text = g_format_size (used);
  total_text = g_format_size (total);
  /* Translators: GPU memory Atelier holds, of the GPU's total. */
  text = g_strdup_printf (_("%s of %s"), used_text, total_text);
  gtk_label_set_text (self->memory_label, text);
  gtk_level_bar_set_value (self->memory_bar, total > 0 ? MIN (1.0, (double) used / total) : 0);
}

static gboolean
refresh_due (gpointer user_data)
{
  refresh_memory (ATELIER_STATUS (user_data));
  return G_SOURCE_CONTINUE;
}

static void
on_popover_show (AtelierStatus *self)
{
  refresh_memory (self);
  g_clear_handle_id (&self->refresh_source, g_source_remove);
  self->refresh_source = g_timeout_add_seconds (REFRESH_SECONDS, refresh_due, self);
}

static void
on_popover_closed (AtelierStatus *self)
{
  g_clear_handle_id (&self->refresh_source, g_source_remove);
}

static void
add_model_row (AtelierStatus *self, GObject *model, const char *name, const char *slot)
{
  GtkWidget *row = adw_action_row_new ();
  GtkWidget *unload = gtk_button_new_from_icon_name ("media-eject-symbolic");
  g_autofree char *subtitle = NULL;

  if (AT_IS_LANGUAGE_MODEL (model))
    {
      guint64 bytes = at_language_model_get_weight_bytes_per_token (AT_LANGUAGE_MODEL (model));
      g_autofree char *size = g_format_size (bytes);

      /* Translators: %s is a size, "45.2 MB". */
      subtitle = g_strdup_printf (_("Language model · %s of weights"), size);
    }
  else if (AT_IS_IMAGE_MODEL (model))
    {
      g_autofree char *size = g_format_size (at_image_model_get_gpu_bytes (AT_IMAGE_MODEL (model)));

      /* Translators: %s is a size, "1.7 GB". */
      subtitle = g_strdup_printf (_("Image model · %s of GPU memory"), size);
    }
  else
    subtitle = g_strdup (_("Image model"));

  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), name);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
  gtk_widget_set_valign (unload, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (unload, "flat");
  gtk_widget_set_tooltip_text (unload, _("Unload the model and free its GPU memory"));
  gtk_actionable_set_action_name (GTK_ACTIONABLE (unload), "status.unload");
  gtk_actionable_set_action_target_value (GTK_ACTIONABLE (unload),
                                          g_variant_new_string (slot));
  adw_action_row_add_suffix (ADW_ACTION_ROW (row), unload);
  gtk_list_box_append (self->models_list, row);
}

static void
rebuild_models (AtelierStatus *self)
{
  GtkWidget *child;
  GObject *text_model = atelier_application_get_text_model (self->app);
  GObject *image_model = atelier_application_get_image_model (self->app);

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->models_list))) != NULL)
    gtk_list_box_remove (self->models_list, child);
  if (text_model != NULL)
    add_model_row (self, text_model, atelier_application_get_text_model_name (self->app),
                   "text");
  if (image_model != NULL)
    add_model_row (self, image_model, atelier_application_get_image_model_name (self->app),
                   "image");
  gtk_widget_set_visible (GTK_WIDGET (self->models_list),
                          text_model != NULL || image_model != NULL);
  gtk_widget_set_visible (self->models_empty, text_model == NULL && image_model == NULL);
  refresh_memory (self);
}

static void
unload_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierStatus *self = ATELIER_STATUS (widget);
  const char *slot = g_variant_get_string (parameter, NULL);

  if (self->app == NULL)
    return;
  if (g_str_equal (slot, "text"))
    atelier_application_set_text_model (self->app, NULL, NULL);
  else if (g_str_equal (slot, "image"))
    atelier_application_set_image_model (self->app, NULL, NULL);
}

void
atelier_status_set_application (AtelierStatus *self, AtelierApplication *app)
{
  g_autoptr (GError) error = NULL;
  AtEngine *engine;
  const char *name;

  g_return_if_fail (ATELIER_IS_STATUS (self));
  g_return_if_fail (self->app == NULL);

  self->app = g_object_ref (app);
  g_signal_connect_object (app, "notify::text-model", G_CALLBACK (rebuild_models), self,
                           G_CONNECT_SWAPPED);
  g_signal_connect_object (app, "notify::image-model", G_CALLBACK (rebuild_models), self,
                           G_CONNECT_SWAPPED);

  engine = atelier_application_get_engine (app, &error);
  if (engine == NULL)
    {
      gtk_image_set_from_icon_name (self->device_icon, "computer-fail-symbolic");
      gtk_label_set_text (self->device_label, _("No GPU"));
      gtk_label_set_text (self->popover_device, _("No usable GPU"));
      gtk_label_set_text (self->popover_warning_label, error->message);
      gtk_widget_set_visible (self->popover_warning, TRUE);
      gtk_widget_set_visible (self->memory_box, FALSE);
      gtk_widget_set_tooltip_text (adw_bin_get_child (ADW_BIN (self)),
                                   _("No usable GPU was found, so nothing can be generated"));
      rebuild_models (self);
      return;
    }

  self->engine = g_object_ref (engine);
  name = at_engine_get_device_name (engine);
  gtk_label_set_text (self->device_label, name);
  gtk_label_set_text (self->popover_device, name);
  if (at_engine_is_software_device (engine))
    {
      g_autofree char *message = g_strdup_printf (_("%s runs on the CPU, not on a GPU: "
                                                    "generation will be slow."),
                                                  name);

      gtk_image_set_from_icon_name (self->device_icon, "dialog-warning-symbolic");
      gtk_widget_add_css_class (GTK_WIDGET (self->device_icon), "warning");
      gtk_label_set_text (self->popover_warning_label, message);
      gtk_widget_set_visible (self->popover_warning, TRUE);
      gtk_widget_set_tooltip_text (adw_bin_get_child (ADW_BIN (self)), message);
    }
  else
    gtk_widget_set_tooltip_text (adw_bin_get_child (ADW_BIN (self)),
                                 _("The GPU, its memory and the loaded models"));
  rebuild_models (self);
}

static void
atelier_status_dispose (GObject *object)
{
  AtelierStatus *self = ATELIER_STATUS (object);

  g_clear_handle_id (&self->refresh_source, g_source_remove);
  g_clear_object (&self->engine);
  g_clear_object (&self->app);
  gtk_widget_dispose_template (GTK_WIDGET (self), ATELIER_TYPE_STATUS);
  G_OBJECT_CLASS (atelier_status_parent_class)->dispose (object);
}

static void
atelier_status_class_init (AtelierStatusClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_status_dispose;

  /* The menu button is the bin's child, not bound: the bin unparents it itself. */
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-status.ui");
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, device_icon);
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, device_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, popover);
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, popover_device);
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, popover_warning);
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, popover_warning_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, memory_box);
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, memory_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, memory_bar);
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, models_list);
  gtk_widget_class_bind_template_child (widget_class, AtelierStatus, models_empty);
  gtk_widget_class_bind_template_callback (widget_class, on_popover_show);
  gtk_widget_class_bind_template_callback (widget_class, on_popover_closed);

  gtk_widget_class_install_action (widget_class, "status.unload", "s", unload_activated);
}

static void
atelier_status_init (AtelierStatus *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}
