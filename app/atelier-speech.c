/* atelier-speech.c: eSpeak NG synthesis into WAV bytes, and Ogg Vorbis encoding. */
#include "config.h"

#include <errno.h>
#include <espeak-ng/espeak_ng.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <gst/gst.h>

#include "atelier-speech.h"

/* Sentences are gathered into pieces of at least this many characters: each piece is
 * one eSpeak call, between which cancellation and progress happen. Longer pieces keep
 * abbreviations ("Dr. Smith") within one call, where eSpeak reads them right. */
#define PIECE_MIN_CHARS 80

/* eSpeak NG keeps its voice, rate and output callback in globals: one caller at a time. */
static GMutex speech_lock;
static gboolean espeak_ready;
static int espeak_sample_rate;

typedef struct
{
  char *text;
  char *voice;
  int rate;
  AtelierSpeechProgress progress;
  gpointer progress_data;
  GCancellable *cancellable;
  GByteArray *samples;
} Synthesis;

/* The synthesis eSpeak's callback writes to; set and read with speech_lock held. */
static Synthesis *current;

void
atelier_voice_free (AtelierVoice *voice)
{
  g_free (voice->id);
  g_free (voice->name);
  g_free (voice->language);
  g_free (voice);
}

static void
synthesis_free (Synthesis *job)
{
  g_free (job->text);
  g_free (job->voice);
  g_clear_object (&job->cancellable);
  g_byte_array_unref (job->samples);
  g_free (job);
}

static int
on_samples (short *wav, int n_samples, espeak_EVENT *events)
{
  if (wav != NULL && n_samples > 0)
    g_byte_array_append (current->samples, (const guint8 *) wav,
                         (guint) n_samples * sizeof (short));
  /* Non-zero stops eSpeak in the middle of the piece. */
  return g_cancellable_is_cancelled (current->cancellable) ? 1 : 0;
}

static void
set_espeak_error (GError **error, espeak_ng_STATUS status, const char *what)
{
  char message[256];

  espeak_ng_GetStatusCodeMessage (status, message, sizeof message);
  /* Translators: the first %s says what failed, the second is eSpeak's reason. */
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("%s: %s"), what, message);
}

/* Called with speech_lock held. */
static gboolean
ensure_espeak (GError **error)
{
  espeak_ng_ERROR_CONTEXT context = NULL;
  espeak_ng_STATUS status;

  if (espeak_ready)
    return TRUE;
  espeak_ng_InitializePath (NULL);
  status = espeak_ng_Initialize (&context);
  espeak_ng_ClearErrorContext (&context);
  if (status == ENS_OK)
    status = espeak_ng_InitializeOutput (ENOUTPUT_MODE_SYNCHRONOUS, 0, NULL);
  if (status != ENS_OK)
    {
      set_espeak_error (error, status,
                        _("eSpeak NG could not start (is the espeak-ng-data package "
                          "installed?)"));
      return FALSE;
    }
  espeak_SetSynthCallback (on_samples);
  espeak_sample_rate = espeak_ng_GetSampleRate ();
  espeak_ready = TRUE;
  return TRUE;
}

static int
compare_voices (gconstpointer a, gconstpointer b)
{
  const AtelierVoice *voice_a = *(AtelierVoice *const *) a;
  const AtelierVoice *voice_b = *(AtelierVoice *const *) b;

  return g_utf8_collate (voice_a->name, voice_b->name);
}

GPtrArray *
atelier_speech_list_voices (GError **error)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&speech_lock);
  g_autoptr (GPtrArray) voices = g_ptr_array_new_with_free_func ((GDestroyNotify) atelier_voice_free);
  const espeak_VOICE **list;

  if (!ensure_espeak (error))
    return NULL;
  list = espeak_ListVoices (NULL);
  for (guint i = 0; list[i] != NULL; i++)
    {
      const char *slash = strrchr (list[i]->identifier, '/');
      AtelierVoice *voice;

      /* MBROLA voices need the separate mbrola program and its databases. */
      if (g_str_has_prefix (list[i]->identifier, "mb/"))
        continue;
      voice = g_new0 (AtelierVoice, 1);
      voice->id = g_strdup (slash != NULL ? slash + 1 : list[i]->identifier);
      voice->name = g_strdup (list[i]->name);
      /* languages is a priority byte, then the language; the first is the main one. */
      voice->language = g_strdup (list[i]->languages + 1);
      g_ptr_array_add (voices, voice);
    }
  g_ptr_array_sort (voices, compare_voices);
  return g_steal_pointer (&voices);
}

static void
list_voices_in_thread (GTask *task, gpointer source, gpointer task_data,
                       GCancellable *cancellable)
{
  GError *error = NULL;
  GPtrArray *voices = atelier_speech_list_voices (&error);

  if (voices == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, voices, (GDestroyNotify) g_ptr_array_unref);
}

void
atelier_speech_list_voices_async (GCancellable *cancellable, GAsyncReadyCallback callback,
                                  gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);

  g_task_set_source_tag (task, atelier_speech_list_voices_async);
  g_task_run_in_thread (task, list_voices_in_thread);
}

GPtrArray *
atelier_speech_list_voices_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
put_le32 (guint8 *at, guint32 value)
{
  value = GUINT32_TO_LE (value);
  memcpy (at, &value, 4);
}

static void
put_le16 (guint8 *at, guint16 value)
{
  value = GUINT16_TO_LE (value);
  memcpy (at, &value, 2);
}

static guint32
get_le32 (const guint8 *at)
{
  guint32 value;

  memcpy (&value, at, 4);
  return GUINT32_FROM_LE (value);
}

static guint16
get_le16 (const guint8 *at)
{
  guint16 value;

  memcpy (&value, at, 2);
  return GUINT16_FROM_LE (value);
}

/* The canonical 44-byte header of 16-bit mono PCM, then the samples in little-endian. */
static GBytes *
make_wav (GByteArray *samples, guint sample_rate)
{
  gsize data_size = samples->len;
  guint8 *wav = g_malloc (ATELIER_SPEECH_WAV_HEADER_SIZE + data_size);
  gint16 *out = (gint16 *) (wav + ATELIER_SPEECH_WAV_HEADER_SIZE);
  const gint16 *in = (const gint16 *) samples->data;

  memcpy (wav, "RIFF", 4);
  put_le32 (wav + 4, (guint32) (36 + data_size));
  memcpy (wav + 8, "WAVEfmt ", 8);
  put_le32 (wav + 16, 16);
  put_le16 (wav + 20, 1); /* PCM */
  put_le16 (wav + 22, 1); /* mono */
  put_le32 (wav + 24, sample_rate);
  put_le32 (wav + 28, sample_rate * 2);
  put_le16 (wav + 32, 2);
  put_le16 (wav + 34, 16);
  memcpy (wav + 36, "data", 4);
  put_le32 (wav + 40, (guint32) data_size);
  for (gsize i = 0; i < data_size / 2; i++)
    out[i] = GINT16_TO_LE (in[i]);
  return g_bytes_new_take (wav, ATELIER_SPEECH_WAV_HEADER_SIZE + data_size);
}

GBytes *
atelier_speech_wav_get_samples (GBytes *wav, guint *sample_rate, GError **error)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (wav, &size);

  if (size < ATELIER_SPEECH_WAV_HEADER_SIZE || memcmp (data, "RIFF", 4) != 0
      || memcmp (data + 8, "WAVEfmt ", 8) != 0 || get_le32 (data + 16) != 16
      || get_le16 (data + 20) != 1 || get_le16 (data + 22) != 1 || get_le16 (data + 34) != 16
      || memcmp (data + 36, "data", 4) != 0
      || get_le32 (data + 40) > size - ATELIER_SPEECH_WAV_HEADER_SIZE)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           _("The audio is not a 16-bit mono WAV file"));
      return NULL;
    }
  if (sample_rate != NULL)
    *sample_rate = get_le32 (data + 24);
  return g_bytes_new_from_bytes (wav, ATELIER_SPEECH_WAV_HEADER_SIZE, get_le32 (data + 40));
}

/* Where the piece starting at text ends: after the first sentence end (or line end)
 * once it holds PIECE_MIN_CHARS characters, or at the end of the text. */
static const char *
piece_end (const char *text, glong *n_chars)
{
  const char *p = text;

  *n_chars = 0;
  while (*p != '\0')
    {
      gunichar c = g_utf8_get_char (p);
      gboolean sentence_end;

      p = g_utf8_next_char (p);
      ++*n_chars;
      /* A full stop ends a sentence before a space ("3.14" and "e.g." do not); the wide
       * Chinese and Japanese marks are followed by no space. */
      sentence_end = c == '\n' || c == 0x3002 || c == 0xFF01 || c == 0xFF1F
                     || ((c == '.' || c == '!' || c == '?' || c == 0x2026)
                         && (*p == '\0' || g_unichar_isspace (g_utf8_get_char (p))));
      if (sentence_end && *n_chars >= PIECE_MIN_CHARS)
        break;
    }
  return p;
}

typedef struct
{
  GTask *task;
  double fraction;
} ProgressReport;

static gboolean
deliver_progress (gpointer data)
{
  ProgressReport *report = data;
  Synthesis *job = g_task_get_task_data (report->task);

  /* After the callback the caller may have freed progress_data. */
  if (!g_task_get_completed (report->task))
    job->progress (report->fraction, job->progress_data);
  return G_SOURCE_REMOVE;
}

static void
progress_report_free (gpointer data)
{
  ProgressReport *report = data;

  g_object_unref (report->task);
  g_free (report);
}

static void
report_progress (GTask *task, double fraction)
{
  Synthesis *job = g_task_get_task_data (task);
  ProgressReport *report;

  if (job->progress == NULL)
    return;
  report = g_new (ProgressReport, 1);
  report->task = g_object_ref (task);
  report->fraction = fraction;
  g_main_context_invoke_full (g_task_get_context (task), G_PRIORITY_DEFAULT, deliver_progress,
                              report, progress_report_free);
}

static gboolean
select_voice (const char *voice, int rate, GError **error)
{
  espeak_ng_STATUS status = espeak_ng_SetVoiceByName (voice);

  if (status == ENS_VOICE_NOT_FOUND)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("There is no eSpeak NG voice “%s”: pick one from the voice menu, or "
                     "list the installed voices with “espeak-ng --voices”"),
                   voice);
      return FALSE;
    }
  if (status == ENS_OK)
    status = espeak_ng_SetParameter (espeakRATE, rate, 0);
  if (status != ENS_OK)
    {
      set_espeak_error (error, status, _("eSpeak NG could not use the voice"));
      return FALSE;
    }
  return TRUE;
}

static void
synthesize_in_thread (GTask *task, gpointer source, gpointer task_data,
                      GCancellable *cancellable)
{
  Synthesis *job = task_data;
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&speech_lock);
  glong total_chars = g_utf8_strlen (job->text, -1);
  glong done_chars = 0;
  GError *error = NULL;

  if (!ensure_espeak (&error) || !select_voice (job->voice, job->rate, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  current = job;
  for (const char *piece = job->text; *piece != '\0' && !g_cancellable_is_cancelled (cancellable);)
    {
      glong n_chars;
      const char *end = piece_end (piece, &n_chars);
      g_autofree char *text = g_strndup (piece, end - piece);
      espeak_ng_STATUS status;

      status = espeak_ng_Synthesize (text, end - piece + 1, 0, POS_CHARACTER, 0,
                                     espeakCHARS_UTF8 | espeakENDPAUSE, NULL, NULL);
      if (status != ENS_OK && status != ENS_SPEECH_STOPPED)
        {
          set_espeak_error (&error, status, _("eSpeak NG could not speak the text"));
          break;
        }
      done_chars += n_chars;
      report_progress (task, (double) done_chars / total_chars);
      piece = end;
    }
  current = NULL;

  if (error != NULL)
    g_task_return_error (task, error);
  else if (!g_task_return_error_if_cancelled (task))
    g_task_return_pointer (task, make_wav (job->samples, (guint) espeak_sample_rate),
                           (GDestroyNotify) g_bytes_unref);
}

static gboolean
has_words (const char *text)
{
  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    if (!g_unichar_isspace (g_utf8_get_char (p)))
      return TRUE;
  return FALSE;
}

void
atelier_speech_synthesize_async (const char *text, const char *voice, int rate,
                                 GCancellable *cancellable, AtelierSpeechProgress progress,
                                 gpointer progress_data, GAsyncReadyCallback callback,
                                 gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  Synthesis *job;

  g_return_if_fail (text != NULL && voice != NULL);
  g_task_set_source_tag (task, atelier_speech_synthesize_async);
  if (!g_utf8_validate (text, -1, NULL) || !has_words (text))
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s",
                               _("There is no text to speak: type or paste a script first"));
      return;
    }
  if (rate < ATELIER_SPEECH_RATE_MIN || rate > ATELIER_SPEECH_RATE_MAX)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("The speech rate %d is outside %d to %d words per minute"),
                               rate, ATELIER_SPEECH_RATE_MIN, ATELIER_SPEECH_RATE_MAX);
      return;
    }

  job = g_new0 (Synthesis, 1);
  job->text = g_strdup (text);
  job->voice = g_strdup (voice);
  job->rate = rate;
  job->progress = progress;
  job->progress_data = progress_data;
  job->cancellable = cancellable != NULL ? g_object_ref (cancellable) : g_cancellable_new ();
  job->samples = g_byte_array_new ();
  g_task_set_task_data (task, job, (GDestroyNotify) synthesis_free);
  g_task_run_in_thread (task, synthesize_in_thread);
}

GBytes *
atelier_speech_synthesize_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Runs the pipeline until it ends: TRUE at end of stream. */
static gboolean
run_pipeline (GstElement *pipeline, GCancellable *cancellable, GError **error)
{
  g_autoptr (GstBus) bus = gst_element_get_bus (pipeline);
  gboolean done = FALSE;

  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           _("GStreamer could not start encoding"));
      return FALSE;
    }
  while (!done)
    {
      /* A short wait, so that cancellation is noticed between messages. */
      g_autoptr (GstMessage) message =
        gst_bus_timed_pop_filtered (bus, 100 * GST_MSECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        break;
      if (message == NULL)
        continue;
      if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR)
        {
          g_autoptr (GError) gst_error = NULL;

          gst_message_parse_error (message, &gst_error, NULL);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("Encoding failed: %s"),
                       gst_error->message);
          break;
        }
      done = TRUE;
    }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  return done;
}

gboolean
atelier_speech_wav_to_ogg (GBytes *wav, const char *path, GCancellable *cancellable,
                           GError **error)
{
  g_autofree char *temporary = g_strdup_printf ("%s.XXXXXX", path);
  g_autoptr (GstElement) pipeline = NULL;
  g_autoptr (GstElement) source = NULL;
  g_autoptr (GstElement) sink = NULL;
  g_autoptr (GInputStream) stream = NULL;
  g_autoptr (GError) parse_error = NULL;
  int fd;

  g_return_val_if_fail (wav != NULL && path != NULL, FALSE);
  if (!gst_init_check (NULL, NULL, error))
    return FALSE;
  pipeline = gst_parse_launch ("giostreamsrc name=source ! wavparse ! audioconvert ! "
                               "vorbisenc ! oggmux ! filesink name=sink",
                               &parse_error);
  if (pipeline == NULL || parse_error != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Ogg Vorbis needs GStreamer's base and good plugins: %s"),
                   parse_error != NULL ? parse_error->message : "");
      return FALSE;
    }
  gst_object_ref_sink (pipeline);

  /* The encoder writes to a new file beside path, renamed over it once complete. */
  fd = g_mkstemp (temporary);
  if (fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("%s could not be written: %s"), path, g_strerror (saved_errno));
      return FALSE;
    }
  g_close (fd, NULL);

  stream = g_memory_input_stream_new_from_bytes (wav);
  source = gst_bin_get_by_name (GST_BIN (pipeline), "source");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (source, "stream", stream, NULL);
  g_object_set (sink, "location", temporary, NULL);
  if (!run_pipeline (pipeline, cancellable, error))
    {
      g_unlink (temporary);
      return FALSE;
    }
  if (g_rename (temporary, path) != 0)
    {
      int saved_errno = errno;

      g_unlink (temporary);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("%s could not be written: %s"), path, g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

typedef struct
{
  GBytes *wav;
  char *path;
} OggJob;

static void
ogg_job_free (OggJob *job)
{
  g_bytes_unref (job->wav);
  g_free (job->path);
  g_free (job);
}

static void
wav_to_ogg_in_thread (GTask *task, gpointer source, gpointer task_data,
                      GCancellable *cancellable)
{
  OggJob *job = task_data;
  GError *error = NULL;

  if (atelier_speech_wav_to_ogg (job->wav, job->path, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

void
atelier_speech_wav_to_ogg_async (GBytes *wav, const char *path, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  OggJob *job = g_new (OggJob, 1);

  job->wav = g_bytes_ref (wav);
  job->path = g_strdup (path);
  g_task_set_source_tag (task, atelier_speech_wav_to_ogg_async);
  g_task_set_task_data (task, job, (GDestroyNotify) ogg_job_free);
  g_task_run_in_thread (task, wav_to_ogg_in_thread);
}

gboolean
atelier_speech_wav_to_ogg_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}
