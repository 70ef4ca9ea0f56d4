/* atelier-application.c: AtelierApplication opens the GPU once at startup, so that every
 * window shows the same device and a missing device is reported instead of crashing. */
#include "config.h"

#include <glib/gi18n.h>

#include "atelier-application.h"
#include "atelier-preferences.h"
#include "atelier-window.h"

struct _AtelierApplication
{
  AdwApplication parent_instance;

  GSettings *settings;
  AtEngine *engine;
  GError *engine_error;
  AtelierLibrary *library;
  GError *library_error;
  GObject *text_model, *image_model;
  char *text_model_name, *image_model_name;
};

G_DEFINE_FINAL_TYPE (AtelierApplication, atelier_application, ADW_TYPE_APPLICATION)

enum { PROP_0, PROP_TEXT_MODEL, PROP_IMAGE_MODEL, N_PROPS };
static GParamSpec *props[N_PROPS];

static void
apply_color_scheme (AtelierApplication *self)
{
  g_autofree char *scheme = g_settings_get_string (self->settings, "color-scheme");
  AdwColorScheme adw_scheme = ADW_COLOR_SCHEME_DEFAULT;

  if (g_str_equal (scheme, "light"))
    adw_scheme = ADW_COLOR_SCHEME_FORCE_LIGHT;
  else if (g_str_equal (scheme, "dark"))
    adw_scheme = ADW_COLOR_SCHEME_FORCE_DARK;
  adw_style_manager_set_color_scheme (adw_style_manager_get_default (), adw_scheme);
}

static void
quit_activated (GSimpleAction *action, GVariant *parameter, gpointer user_data)
{
  g_application_quit (G_APPLICATION (user_data));
}

static void
about_activated (GSimpleAction *action, GVariant *parameter, gpointer user_data)
{
  GtkApplication *app = GTK_APPLICATION (user_data);
  static const char *developers[] = { "The Atelier developers", NULL };
  GtkWidget *about;

  about = g_object_new (ADW_TYPE_ABOUT_WINDOW,
                        "transient-for", gtk_application_get_active_window (app),
                        "application-name", _("Atelier"),
                        "application-icon", APPLICATION_ID,
                        "version", PACKAGE_VERSION,
                        "comments", _("Write and generate images with AI models "
                                      "running on your own GPU."),
                        "developer-name", developers[0],
                        "developers", developers,
                        "license-type", GTK_LICENSE_GPL_3_0,
                        "translator-credits", _("translator-credits"),
                        NULL);
  gtk_window_present (GTK_WINDOW (about));
}

static void
preferences_activated (GSimpleAction *action, GVariant *parameter, gpointer user_data)
{
  AtelierApplication *self = ATELIER_APPLICATION (user_data);
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (self));

  gtk_window_present (GTK_WINDOW (atelier_preferences_new (self, parent)));
}

static const GActionEntry app_actions[] = {
  { .name = "quit", .activate = quit_activated },
  { .name = "about", .activate = about_activated },
  { .name = "preferences", .activate = preferences_activated },
};

static void
atelier_application_startup (GApplication *app)
{
  AtelierApplication *self = ATELIER_APPLICATION (app);
  static const char *quit_accels[] = { "<Control>q", NULL };
  static const char *preferences_accels[] = { "<Control>comma", NULL };
  static const char *pages[] = { "write", "image", "audio", "gallery", "models" };
  g_autofree char *device = NULL;
  g_autofree char *library_folder = NULL;

  G_APPLICATION_CLASS (atelier_application_parent_class)->startup (app);

  self->settings = g_settings_new (APPLICATION_ID);
  g_signal_connect_swapped (self->settings, "changed::color-scheme",
                            G_CALLBACK (apply_color_scheme), self);
  apply_color_scheme (self);

  g_action_map_add_action_entries (G_ACTION_MAP (app), app_actions,
                                   G_N_ELEMENTS (app_actions), app);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.quit", quit_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.preferences",
                                         preferences_accels);
  for (guint i = 0; i < G_N_ELEMENTS (pages); i++)
    {
      g_autofree char *action = g_strdup_printf ("win.show-page::%s", pages[i]);
      g_autofree char *accel = g_strdup_printf ("<Alt>%u", i + 1);
      const char *accels[] = { accel, NULL };

      gtk_application_set_accels_for_action (GTK_APPLICATION (app), action, accels);
    }

  /* An empty setting means "the best device, or $ATELIER_DEVICE". */
  device = g_settings_get_string (self->settings, "device");
  self->engine = at_engine_new (device[0] != '\0' ? device : NULL, &self->engine_error);

  library_folder = g_strdup (g_getenv ("ATELIER_LIBRARY_DIR"));
  if (library_folder == NULL)
    library_folder = atelier_library_default_folder ();
  self->library = atelier_library_new (library_folder, &self->library_error);
}

static void
atelier_application_activate (GApplication *app)
{
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (app));

  if (window == NULL)
    window = GTK_WINDOW (atelier_window_new (ATELIER_APPLICATION (app)));
  gtk_window_present (window);
}

static void
atelier_application_dispose (GObject *object)
{
  AtelierApplication *self = ATELIER_APPLICATION (object);

  g_clear_object (&self->engine);
  g_clear_error (&self->engine_error);
  g_clear_object (&self->library);
  g_clear_error (&self->library_error);
  g_clear_object (&self->text_model);
  g_clear_object (&self->image_model);
  g_clear_pointer (&self->text_model_name, g_free);
  g_clear_pointer (&self->image_model_name, g_free);
  g_clear_object (&self->settings);
  G_OBJECT_CLASS (atelier_application_parent_class)->dispose (object);
}

static void
atelier_application_get_property (GObject *object, guint prop_id, GValue *value,
                                  GParamSpec *pspec)
{
  AtelierApplication *self = ATELIER_APPLICATION (object);

  switch (prop_id)
    {
    case PROP_TEXT_MODEL:
      g_value_set_object (value, self->text_model);
      break;
    case PROP_IMAGE_MODEL:
      g_value_set_object (value, self->image_model);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
atelier_application_class_init (AtelierApplicationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->dispose = atelier_application_dispose;
  object_class->get_property = atelier_application_get_property;
  props[PROP_TEXT_MODEL] =
    g_param_spec_object ("text-model", NULL, NULL, G_TYPE_OBJECT,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  props[PROP_IMAGE_MODEL] =
    g_param_spec_object ("image-model", NULL, NULL, G_TYPE_OBJECT,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);
  app_class->startup = atelier_application_startup;
  app_class->activate = atelier_application_activate;
}

static void
atelier_application_init (AtelierApplication *self)
{
}

AtelierApplication *
atelier_application_new (void)
{
  return g_object_new (ATELIER_TYPE_APPLICATION,
                       "application-id", APPLICATION_ID,
                       "flags", G_APPLICATION_DEFAULT_FLAGS,
                       NULL);
}

GSettings *
atelier_application_get_settings (AtelierApplication *self)
{
  g_return_val_if_fail (ATELIER_IS_APPLICATION (self), NULL);
  return self->settings;
}

AtEngine *
atelier_application_get_engine (AtelierApplication *self, GError **error)
{
  g_return_val_if_fail (ATELIER_IS_APPLICATION (self), NULL);
  if (self->engine == NULL && error != NULL)
    *error = g_error_copy (self->engine_error);
  return self->engine;
}

AtelierLibrary *
atelier_application_get_library (AtelierApplication *self, GError **error)
{
  g_return_val_if_fail (ATELIER_IS_APPLICATION (self), NULL);
  if (self->library == NULL && error != NULL)
    *error = g_error_copy (self->library_error);
  return self->library;
}

static void
set_model (AtelierApplication *self, GObject **slot, char **name_slot, GObject *model,
           const char *name, GParamSpec *pspec)
{
  if (*slot == model && g_strcmp0 (*name_slot, name) == 0)
    return;
  g_set_object (slot, model);
  g_free (*name_slot);
  *name_slot = model != NULL ? g_strdup (name) : NULL;
  g_object_notify_by_pspec (G_OBJECT (self), pspec);
}

GObject *
atelier_application_get_text_model (AtelierApplication *self)
{
  g_return_val_if_fail (ATELIER_IS_APPLICATION (self), NULL);
  return self->text_model;
}

const char *
atelier_application_get_text_model_name (AtelierApplication *self)
{
  g_return_val_if_fail (ATELIER_IS_APPLICATION (self), NULL);
  return self->text_model_name;
}

void
atelier_application_set_text_model (AtelierApplication *self, GObject *model, const char *name)
{
  g_return_if_fail (ATELIER_IS_APPLICATION (self));
  set_model (self, &self->text_model, &self->text_model_name, model, name,
             props[PROP_TEXT_MODEL]);
}

GObject *
atelier_application_get_image_model (AtelierApplication *self)
{
  g_return_val_if_fail (ATELIER_IS_APPLICATION (self), NULL);
  return self->image_model;
}

const char *
atelier_application_get_image_model_name (AtelierApplication *self)
{
  g_return_val_if_fail (ATELIER_IS_APPLICATION (self), NULL);
  return self->image_model_name;
}

void
atelier_application_set_image_model (AtelierApplication *self, GObject *model,
                                     const char *name)
{
  g_return_if_fail (ATELIER_IS_APPLICATION (self));
  set_model (self, &self->image_model, &self->image_model_name, model, name,
             props[PROP_IMAGE_MODEL]);
}
