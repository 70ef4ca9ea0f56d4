/* atelier-application.h: the studio application — settings, the engine, app actions. */
#pragma once

#include <adwaita.h>

#include "atelier-engine.h"
#include "atelier-library.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_APPLICATION (atelier_application_get_type ())
G_DECLARE_FINAL_TYPE (AtelierApplication, atelier_application, ATELIER, APPLICATION,
                      AdwApplication)

AtelierApplication *atelier_application_new (void);

GSettings *atelier_application_get_settings (AtelierApplication *self);
/* The engine opened at startup, or NULL with the reason it could not be opened. */
AtEngine *atelier_application_get_engine (AtelierApplication *self, GError **error);
/* The asset library opened at startup (in $ATELIER_LIBRARY_DIR when set, for tests), or
 * NULL with the reason it could not be opened. */
AtelierLibrary *atelier_application_get_library (AtelierApplication *self, GError **error);

/* The models loaded now, shared by the pages and listed by the window, which can unload
 * them: the language model (an AtLanguageModel, loaded from the Write page) and the image
 * model (an AtImageModel, loaded from the Image page), each with its file name. Setting
 * NULL unloads (the GPU memory is freed once nothing else holds the model). The
 * "text-model" and "image-model" properties notify. */
GObject *atelier_application_get_text_model (AtelierApplication *self);
const char *atelier_application_get_text_model_name (AtelierApplication *self);
void atelier_application_set_text_model (AtelierApplication *self, GObject *model,
                                         const char *name);
GObject *atelier_application_get_image_model (AtelierApplication *self);
const char *atelier_application_get_image_model_name (AtelierApplication *self);
void atelier_application_set_image_model (AtelierApplication *self, GObject *model,
                                          const char *name);

G_END_DECLS
