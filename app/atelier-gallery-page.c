/* atelier-gallery-page.c: AtelierGalleryPage, built from ui/atelier-gallery-page.ui. */
#include "config.h"

#include <glib/gi18n.h>

#include "atelier-gallery-page.h"

struct _AtelierGalleryPage
{
  AdwBin parent_instance;

  AtelierApplication *app;
};

G_DEFINE_FINAL_TYPE (AtelierGalleryPage, atelier_gallery_page, ADW_TYPE_BIN)

static void
atelier_gallery_page_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), ATELIER_TYPE_GALLERY_PAGE);
  G_OBJECT_CLASS (atelier_gallery_page_parent_class)->dispose (object);
}

static void
atelier_gallery_page_class_init (AtelierGalleryPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_gallery_page_dispose;
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-gallery-page.ui");
}

static void
atelier_gallery_page_init (AtelierGalleryPage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

void
atelier_gallery_page_set_application (AtelierGalleryPage *self, AtelierApplication *app)
{
  g_return_if_fail (ATELIER_IS_GALLERY_PAGE (self));
  self->app = app;
}
