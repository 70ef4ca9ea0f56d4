/* atelier-mask-editor.h: a source image for image-to-image with an inpainting mask painted
 * over it in translucent red — the primary button paints, the secondary erases. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define ATELIER_TYPE_MASK_EDITOR (atelier_mask_editor_get_type ())
G_DECLARE_FINAL_TYPE (AtelierMaskEditor, atelier_mask_editor, ATELIER, MASK_EDITOR, GtkWidget)

GtkWidget *atelier_mask_editor_new (void);

/* The image shown and painted on; NULL for none. A new image clears the mask. */
void atelier_mask_editor_set_image (AtelierMaskEditor *self, GdkTexture *image);
GdkTexture *atelier_mask_editor_get_image (AtelierMaskEditor *self);

/* Whether pointer strokes paint (the "editing" property). */
void atelier_mask_editor_set_editing (AtelierMaskEditor *self, gboolean editing);
gboolean atelier_mask_editor_get_editing (AtelierMaskEditor *self);
/* The brush's diameter in screen pixels (the "brush-size" property). */
void atelier_mask_editor_set_brush_size (AtelierMaskEditor *self, double size);
double atelier_mask_editor_get_brush_size (AtelierMaskEditor *self);

void atelier_mask_editor_clear_mask (AtelierMaskEditor *self);
/* Whether any of the image is painted (the "has-mask" property notifies). */
gboolean atelier_mask_editor_has_mask (AtelierMaskEditor *self);
/* Paints (or erases) a stroke from (x0, y0) to (x1, y1) in the image's pixels, as the
 * pointer does in screen pixels. */
void atelier_mask_editor_paint (AtelierMaskEditor *self, double x0, double y0, double x1,
                                double y1, double diameter, gboolean erase);

/* The image scaled to width × height as RGB8, and the mask as width × height bytes (255
 * where painted, 0 elsewhere), as AtImageRequest takes them. NULL without an image. */
guint8 *atelier_mask_editor_render_image (AtelierMaskEditor *self, guint width, guint height);
guint8 *atelier_mask_editor_render_mask (AtelierMaskEditor *self, guint width, guint height);

G_END_DECLS
