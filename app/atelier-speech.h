/* atelier-speech.h: text to speech with eSpeak NG, as WAV files (16-bit mono PCM at
 * eSpeak's sample rate), and WAV to Ogg Vorbis through GStreamer. No GTK. eSpeak is
 * process-global, so every call into it runs, one at a time, off the caller's thread. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The WAV files made here are a 44-byte RIFF header followed by the samples. */
#define ATELIER_SPEECH_WAV_HEADER_SIZE 44

/* Speaking rates eSpeak accepts, in words per minute (the "speech-rate" setting's range). */
#define ATELIER_SPEECH_RATE_MIN 80
#define ATELIER_SPEECH_RATE_MAX 450

typedef struct
{
  char *id;       /* what atelier_speech_synthesize_async takes: "en", "en-US", "cmn" */
  char *name;     /* eSpeak's name for it: "English (America)", "Chinese (Mandarin, ...)" */
  char *language; /* its language tag: "en-us", "cmn" */
} AtelierVoice;

void atelier_voice_free (AtelierVoice *voice);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtelierVoice, atelier_voice_free)

/* Every installed voice (AtelierVoice), sorted by name. Blocks while a synthesis runs. */
GPtrArray *atelier_speech_list_voices (GError **error);
void atelier_speech_list_voices_async (GCancellable *cancellable, GAsyncReadyCallback callback,
                                       gpointer user_data);
GPtrArray *atelier_speech_list_voices_finish (GAsyncResult *result, GError **error);

/* fraction: the part of the text's characters spoken so far, on the caller's thread. */
typedef void (*AtelierSpeechProgress) (double fraction, gpointer user_data);

/* Speaks text with a voice (an AtelierVoice id) at rate words per minute, sentence after
 * sentence so that cancellable stops it soon. progress_data must live until callback. */
void atelier_speech_synthesize_async (const char *text, const char *voice, int rate,
                                      GCancellable *cancellable,
                                      AtelierSpeechProgress progress, gpointer progress_data,
                                      GAsyncReadyCallback callback, gpointer user_data);
/* The WAV file's bytes, or NULL with the reason (G_IO_ERROR_CANCELLED when cancelled). */
GBytes *atelier_speech_synthesize_finish (GAsyncResult *result, GError **error);

/* The samples (native-endian 16-bit mono) of a WAV made here, and their rate; NULL with
 * an error when wav is not such a file. */
GBytes *atelier_speech_wav_get_samples (GBytes *wav, guint *sample_rate, GError **error);

/* Encodes a WAV into an Ogg Vorbis file at path, written atomically (a temporary file
 * renamed into place), so that a failure leaves an older file there untouched. */
gboolean atelier_speech_wav_to_ogg (GBytes *wav, const char *path, GCancellable *cancellable,
                                    GError **error);
void atelier_speech_wav_to_ogg_async (GBytes *wav, const char *path,
                                      GCancellable *cancellable, GAsyncReadyCallback callback,
                                      gpointer user_data);
gboolean atelier_speech_wav_to_ogg_finish (GAsyncResult *result, GError **error);

G_END_DECLS
