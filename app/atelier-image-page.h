/* atelier-image-page.h: the Image page — prompt panel, live preview, img2img and inpainting. */
#pragma once

#include <adwaita.h>

#include "atelier-application.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_IMAGE_PAGE (atelier_image_page_get_type ())
G_DECLARE_FINAL_TYPE (AtelierImagePage, atelier_image_page, ATELIER, IMAGE_PAGE, AdwBin)

/* Called once by the window: the page takes the engine, settings and library from it. */
void atelier_image_page_set_application (AtelierImagePage *self, AtelierApplication *app);

G_END_DECLS
