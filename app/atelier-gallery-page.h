/* atelier-gallery-page.h: the Gallery page — every generated image, text and voice-over, searchable, exportable. */
#pragma once

#include <adwaita.h>

#include "atelier-application.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_GALLERY_PAGE (atelier_gallery_page_get_type ())
G_DECLARE_FINAL_TYPE (AtelierGalleryPage, atelier_gallery_page, ATELIER, GALLERY_PAGE, AdwBin)

/* Called once by the window: the page takes the engine, settings and library from it. */
void atelier_gallery_page_set_application (AtelierGalleryPage *self, AtelierApplication *app);

G_END_DECLS
