/* atelier-preferences.h: the Preferences window, every row bound to the app's settings. */
#pragma once

#include <adwaita.h>

#include "atelier-application.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_PREFERENCES (atelier_preferences_get_type ())
G_DECLARE_FINAL_TYPE (AtelierPreferences, atelier_preferences, ATELIER, PREFERENCES,
                      AdwPreferencesWindow)

AtelierPreferences *atelier_preferences_new (AtelierApplication *app, GtkWindow *parent);

G_END_DECLS
