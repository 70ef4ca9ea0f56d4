/* atelier-audio-page.c: AtelierAudioPage, built from ui/atelier-audio-page.ui. */
#include "config.h"

#include <glib/gi18n.h>

#include "atelier-audio-page.h"

struct _AtelierAudioPage
{
  AdwBin parent_instance;

  AtelierApplication *app;
};

G_DEFINE_FINAL_TYPE (AtelierAudioPage, atelier_audio_page, ADW_TYPE_BIN)

static void
atelier_audio_page_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), ATELIER_TYPE_AUDIO_PAGE);
  G_OBJECT_CLASS (atelier_audio_page_parent_class)->dispose (object);
}

static void
atelier_audio_page_class_init (AtelierAudioPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_audio_page_dispose;
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-audio-page.ui");
}

static void
atelier_audio_page_init (AtelierAudioPage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

void
atelier_audio_page_set_application (AtelierAudioPage *self, AtelierApplication *app)
{
  g_return_if_fail (ATELIER_IS_AUDIO_PAGE (self));
  self->app = app;
}
