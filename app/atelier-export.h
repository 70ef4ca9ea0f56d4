/* atelier-export.h: assets out of the library into the user's project folder, and PNGs
 * from elsewhere into the library.
 *
 * An exported asset is its file under a readable name ("red-fox-in-snow_2026-11-22_42.png")
 * in the chosen format, and beside it a JSON sidecar with the same base name
 * ("red-fox-in-snow_2026-11-22_42.json") holding what made it. Nothing is ever
 * overwritten: a taken name gets "-2", "-3"... Every file is written under a temporary
 * name and renamed into place, so a crash never leaves half a file under a real name.
 *
 * The naming and the sidecar are pure functions so that they can be tested alone; the
 * conversions need no display (GdkPixbuf, libwebp, GStreamer). */
#pragma once

#include <gio/gio.h>

#include "atelier-library.h"

G_BEGIN_DECLS

/* The formats, as the settings export-image-format ("png", "jpeg", "webp"),
 * export-text-format ("markdown", "text") and export-audio-format ("wav", "ogg") name
 * them. */
typedef struct
{
  const char *image;
  const char *text;
  const char *audio;
} AtelierExportFormats;

/* The first words of the prompt, lower case, letters and digits joined by '-'
 * ("A red fox, in snow!" -> "a-red-fox-in-snow"); letters of any script are kept
 * (Chinese too). At most max_chars characters, cut at a word boundary where there is
 * one; "" when the prompt has no letters or digits. */
char *atelier_export_slug (const char *prompt, guint max_chars);

/* The extension an asset of that kind gets in those formats, from its own file name
 * (a WAV can become Ogg; anything else keeps its extension): "png", "jpg", "webp", "md",
 * "txt", "wav", "ogg". */
char *atelier_export_extension (AtelierAssetKind kind, const char *source_path,
                                const AtelierExportFormats *formats);

/* The base name without extension: slug, local date and the asset's id
 * ("red-fox-in-snow_2026-11-22_42"); the kind's name stands in for an empty slug. */
char *atelier_export_base_name (AtelierAssetKind kind, const char *prompt, gint64 created,
                                gint64 id);

/* The first base name in folder, trying base, base-2, base-3..., for which neither
 * base.extension nor base.json exists. */
char *atelier_export_unique_base (const char *folder, const char *base, const char *extension);

/* The sidecar: a JSON object with kind, prompt, parameters (the asset's JSON object),
 * model, seed, created (ISO 8601 with the local offset) and source (the library file). */
char *atelier_export_sidecar (AtelierAsset *asset);

/* Exports one asset into folder (which must exist); *exported_path, when not NULL, gets
 * the new file. Blocks: call it from a worker thread. */
gboolean atelier_export_asset (AtelierAsset *asset, const char *folder,
                               const AtelierExportFormats *formats, char **exported_path,
                               GCancellable *cancellable, GError **error);

/* Called on the caller's main context after each asset: done of total. */
typedef void (*AtelierExportProgress) (guint done, guint total, gpointer user_data);

/* Exports the assets (AtelierAsset) in a worker thread, in order; the first failure ends
 * the export with its error, and what was exported before it stays. progress_data must
 * live until callback runs. */
void atelier_export_assets_async (GPtrArray *assets, const char *folder,
                                  const AtelierExportFormats *formats,
                                  GCancellable *cancellable, AtelierExportProgress progress,
                                  gpointer progress_data, GAsyncReadyCallback callback,
                                  gpointer user_data);
/* The number of assets exported, or 0 with the error. */
guint atelier_export_assets_finish (GAsyncResult *result, GError **error);

/* A PNG read for import: its A1111 parameters as the library's parameters JSON object
 * (NULL when it has none), with prompt, model and seed for the index. */
typedef struct
{
  char *path;       /* the file read */
  char *parameters; /* JSON object or NULL */
  char *prompt, *model;
  gint64 seed;
} AtelierPngImport;

void atelier_png_import_free (AtelierPngImport *import);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtelierPngImport, atelier_png_import_free)

/* The parameters chunk's infotext as a JSON object: "infotext" (the text itself, which
 * at_generation_params_parse reads back), "prompt", "negative_prompt", and each known
 * key that is present ("steps", "sampler", "schedule_type", "cfg_scale", "seed",
 * "width", "height", "model_hash", "model", "denoising_strength"). */
char *atelier_export_parameters_json (const char *infotext);

/* Reads the PNG at path (any PNG) and copies it into a fresh file of the library folder
 * given by library_path (atelier_library_new_path). Blocks: call it in a worker thread,
 * then atelier_library_add the result on the library's thread. */
AtelierPngImport *atelier_png_import (const char *path, const char *library_path,
                                      GError **error);

G_END_DECLS
