/* atelier-image-page.h: the Image page — prompt panel, live preview, img2img and inpainting. */
#pragma once

#include <adwaita.h>

#include "atelier-application.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_IMAGE_PAGE (atelier_image_page_get_type ())
G_DECLARE_FINAL_TYPE (AtelierImagePage, atelier_image_page, ATELIER, IMAGE_PAGE, AdwBin)

/* Called once by the window: the page takes the engine, settings and library from it. */
void atelier_image_page_set_application (AtelierImagePage *self, AtelierApplication *app);
/* The models folder's files (AtelierModelFile), from the Models page's ::files-changed:
 * the .safetensors files are offered as checkpoints. */
void atelier_image_page_set_model_files (AtelierImagePage *self, const char *folder,
                                         GPtrArray *files);
/* Fills the panel from an image asset's parameters; with as_init_image its picture also
 * becomes the image-to-image source. */
void atelier_image_page_reuse_asset (AtelierImagePage *self, AtelierAsset *asset,
                                     gboolean as_init_image);
/* Whether a model is loading, an image is being generated or a prompt written. */
gboolean atelier_image_page_is_busy (AtelierImagePage *self);

G_END_DECLS
