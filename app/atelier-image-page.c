/* atelier-image-page.c: AtelierImagePage, built from ui/atelier-image-page.ui. */
#include "config.h"

#include <glib/gi18n.h>

#include "atelier-image-page.h"

struct _AtelierImagePage
{
  AdwBin parent_instance;

  AtelierApplication *app;
};

G_DEFINE_FINAL_TYPE (AtelierImagePage, atelier_image_page, ADW_TYPE_BIN)

static void
atelier_image_page_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), ATELIER_TYPE_IMAGE_PAGE);
  G_OBJECT_CLASS (atelier_image_page_parent_class)->dispose (object);
}

static void
atelier_image_page_class_init (AtelierImagePageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_image_page_dispose;
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-image-page.ui");
}

static void
atelier_image_page_init (AtelierImagePage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

void
atelier_image_page_set_application (AtelierImagePage *self, AtelierApplication *app)
{
  g_return_if_fail (ATELIER_IS_IMAGE_PAGE (self));
  self->app = app;
}
