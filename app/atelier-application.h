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

G_END_DECLS
