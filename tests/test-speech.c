/* test-speech.c: eSpeak NG synthesis into WAV, read back by an independent header parser,
 * and WAV to Ogg Vorbis, decoded back by GStreamer. No display needed. */
#include <glib/gstdio.h>
#include <gst/gst.h>
#include <math.h>

#include "atelier-speech.h"

typedef struct
{
  GBytes *wav;
  GError *error;
  gboolean done;
  GCancellable *cancel_on_progress;
  double last_fraction;
  guint n_progress;
} Synthesis;

static void
on_progress (double fraction, gpointer user_data)
{
  Synthesis *synthesis = user_data;

  g_assert_cmpfloat (fraction, >=, synthesis->last_fraction);
  g_assert_cmpfloat (fraction, <=, 1.0);
  synthesis->last_fraction = fraction;
  synthesis->n_progress++;
  if (synthesis->cancel_on_progress != NULL)
    g_cancellable_cancel (synthesis->cancel_on_progress);
}

static void
on_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Synthesis *synthesis = user_data;

  synthesis->wav = atelier_speech_synthesize_finish (result, &synthesis->error);
  synthesis->done = TRUE;
}

static void
synthesize (Synthesis *synthesis, const char *text, const char *voice, int rate)
{
  atelier_speech_synthesize_async (text, voice, rate, synthesis->cancel_on_progress,
                                   on_progress, synthesis, on_done, synthesis);
  while (!synthesis->done)
    g_main_context_iteration (NULL, TRUE);
}

static guint32
le32 (const guint8 *at)
{
  return at[0] | at[1] << 8 | at[2] << 16 | (guint32) at[3] << 24;
}

static guint16
le16 (const guint8 *at)
{
  return at[0] | at[1] << 8;
}

/* Checks the header field by field against the WAV format; returns the duration in
 * seconds and the samples' RMS (full scale 1). */
static double
check_wav (GBytes *wav, double *rms)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (wav, &size);
  guint32 data_size;
  double sum = 0;

  g_assert_cmpuint (size, >, 44);
  g_assert_cmpmem (data, 4, "RIFF", 4);
  g_assert_cmpuint (le32 (data + 4), ==, size - 8);
  g_assert_cmpmem (data + 8, 4, "WAVE", 4);
  g_assert_cmpmem (data + 12, 4, "fmt ", 4);
  g_assert_cmpuint (le32 (data + 16), ==, 16);
  g_assert_cmpuint (le16 (data + 20), ==, 1);     /* PCM */
  g_assert_cmpuint (le16 (data + 22), ==, 1);     /* mono */
  g_assert_cmpuint (le32 (data + 24), ==, 22050); /* eSpeak NG's rate */
  g_assert_cmpuint (le32 (data + 28), ==, 22050 * 2);
  g_assert_cmpuint (le16 (data + 32), ==, 2);
  g_assert_cmpuint (le16 (data + 34), ==, 16);
  g_assert_cmpmem (data + 36, 4, "data", 4);
  data_size = le32 (data + 40);
  g_assert_cmpuint (data_size, ==, size - 44);
  for (guint32 i = 0; i < data_size / 2; i++)
    {
      double sample = (gint16) le16 (data + 44 + 2 * i) / 32768.0;

      sum += sample * sample;
    }
  *rms = sqrt (sum / (data_size / 2));
  return data_size / 2 / 22050.0;
}

static double
speak (const char *text, const char *voice, int rate)
{
  Synthesis synthesis = { 0 };
  double duration, rms;

  synthesize (&synthesis, text, voice, rate);
  g_assert_no_error (synthesis.error);
  duration = check_wav (synthesis.wav, &rms);
  g_test_message ("%s at %d wpm: %.2f s, RMS %.3f: %s", voice, rate, duration, rms, text);
  /* Speech is far above silence (RMS 0); eSpeak's voices sit around 0.1 of full scale. */
  g_assert_cmpfloat (rms, >, 0.02);
  g_assert_cmpfloat (synthesis.last_fraction, ==, 1.0);
  g_bytes_unref (synthesis.wav);
  return duration;
}

static void
test_english (void)
{
  double one = speak ("Hello world.", "en", 175);
  double three = speak ("Hello world. This is Atelier, a studio on your own computer. "
                        "It reads your drafts aloud.",
                        "en", 175);

  /* A word and a pause take about a second; three sentences take several. */
  g_assert_cmpfloat (one, >, 0.5);
  g_assert_cmpfloat (one, <, 3);
  g_assert_cmpfloat (three, >, 2.5 * one);
}

static void
test_chinese (void)
{
  double short_text = speak ("你好。", "cmn", 175);
  double long_text = speak ("你好，世界。今天我们用自己的电脑把文章读出来。", "cmn", 175);

  g_assert_cmpfloat (short_text, >, 0.3);
  g_assert_cmpfloat (long_text, >, 3 * short_text);
}

static void
test_rate (void)
{
  const char *text = "The quick brown fox jumps over the lazy dog, and then runs away.";
  double slow = speak (text, "en", 100);
  double fast = speak (text, "en", 300);

  /* Three times the rate; the pauses do not all shrink with it, so ask for 1.8 times. */
  g_assert_cmpfloat (slow, >, 1.8 * fast);
}

static void
test_errors (void)
{
  Synthesis unknown = { 0 }, empty = { 0 }, rate = { 0 };

  synthesize (&unknown, "Hello.", "no-such-voice", 175);
  g_assert_error (unknown.error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (unknown.error->message, "no-such-voice"));
  g_assert_nonnull (strstr (unknown.error->message, "espeak-ng --voices"));
  g_assert_null (unknown.wav);
  g_clear_error (&unknown.error);

  synthesize (&empty, " \n\t ", "en", 175);
  g_assert_error (empty.error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (empty.error->message, "no text"));
  g_clear_error (&empty.error);

  synthesize (&rate, "Hello.", "en", 10);
  g_assert_error (rate.error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&rate.error);
}

static void
test_cancel (void)
{
  g_autoptr (GString) text = g_string_new (NULL);
  Synthesis synthesis = { 0 };

  /* Far more than is spoken before the first progress report arrives. */
  for (guint i = 0; i < 200; i++)
    g_string_append (text, "This sentence is one of many that will never be spoken. ");
  synthesis.cancel_on_progress = g_cancellable_new ();
  synthesize (&synthesis, text->str, "en", 175);
  g_assert_error (synthesis.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (synthesis.wav);
  g_assert_cmpuint (synthesis.n_progress, >=, 1);
  g_assert_cmpfloat (synthesis.last_fraction, <, 0.5);
  g_clear_error (&synthesis.error);
  g_object_unref (synthesis.cancel_on_progress);
}

static void
test_voices (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) voices = atelier_speech_list_voices (&error);
  gboolean english = FALSE, chinese = FALSE;

  g_assert_no_error (error);
  g_assert_cmpuint (voices->len, >, 50);
  for (guint i = 0; i < voices->len; i++)
    {
      AtelierVoice *voice = g_ptr_array_index (voices, i);

      if (g_str_equal (voice->id, "en"))
        english = TRUE;
      if (g_str_equal (voice->id, "cmn"))
        {
          chinese = TRUE;
          g_assert_true (g_str_has_prefix (voice->name, "Chinese (Mandarin"));
          g_assert_cmpstr (voice->language, ==, "cmn");
        }
      if (i > 0)
        g_assert_cmpint (g_utf8_collate (((AtelierVoice *) g_ptr_array_index (voices, i - 1))->name,
                                         voice->name), <=, 0);
    }
  g_assert_true (english);
  g_assert_true (chinese);
}

static void
count_bytes (GstElement *sink, GstBuffer *buffer, GstPad *pad, gpointer user_data)
{
  *(gsize *) user_data += gst_buffer_get_size (buffer);
}

/* Decodes an Ogg Vorbis file with GStreamer; returns its duration in seconds. */
static double
decode_ogg (const char *path)
{
  g_autofree char *description = g_strdup_printf (
    "filesrc location=\"%s\" ! oggdemux ! vorbisdec ! audioconvert ! audioresample ! "
    "audio/x-raw,format=S16LE,channels=1,rate=22050 ! fakesink name=sink signal-handoffs=true",
    path);
  g_autoptr (GError) error = NULL;
  g_autoptr (GstElement) pipeline = gst_object_ref_sink (gst_parse_launch (description, &error));
  g_autoptr (GstElement) sink = NULL;
  g_autoptr (GstBus) bus = NULL;
  g_autoptr (GstMessage) message = NULL;
  gsize bytes = 0;

  g_assert_no_error (error);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_signal_connect (sink, "handoff", G_CALLBACK (count_bytes), &bytes);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  message = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND,
                                        GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_nonnull (message);
  g_assert_cmpint (GST_MESSAGE_TYPE (message), ==, GST_MESSAGE_EOS);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  return bytes / 2 / 22050.0;
}

static void
test_ogg (void)
{
  g_autofree char *folder = g_dir_make_tmp ("atelier-speech-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (folder, "hello.ogg", NULL);
  g_autofree char *missing = g_build_filename (folder, "no-folder", "hello.ogg", NULL);
  g_autofree char *contents = NULL;
  g_autoptr (GError) error = NULL;
  Synthesis synthesis = { 0 };
  double duration, decoded, rms;
  gsize length;

  synthesize (&synthesis, "Hello world. This is a voice-over in Ogg Vorbis.", "en", 175);
  g_assert_no_error (synthesis.error);
  duration = check_wav (synthesis.wav, &rms);

  g_assert_true (atelier_speech_wav_to_ogg (synthesis.wav, path, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
  g_assert_cmpuint (length, >, 4);
  g_assert_cmpmem (contents, 4, "OggS", 4);
  decoded = decode_ogg (path);
  g_test_message ("WAV %.3f s, Ogg decoded %.3f s, %" G_GSIZE_FORMAT " bytes", duration,
                  decoded, length);
  /* Vorbis keeps the length up to its frame padding, far inside 10 %. */
  g_assert_cmpfloat (fabs (decoded - duration), <, 0.1 * duration);

  /* A folder that does not exist: an error, and no file left behind. */
  g_assert_false (atelier_speech_wav_to_ogg (synthesis.wav, missing, NULL, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));

  g_unlink (path);
  g_rmdir (folder);
  g_bytes_unref (synthesis.wav);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  gst_init (&argc, &argv);
  g_test_add_func ("/app/speech/voices", test_voices);
  g_test_add_func ("/app/speech/english", test_english);
  g_test_add_func ("/app/speech/chinese", test_chinese);
  g_test_add_func ("/app/speech/rate", test_rate);
  g_test_add_func ("/app/speech/errors", test_errors);
  g_test_add_func ("/app/speech/cancel", test_cancel);
  g_test_add_func ("/app/speech/ogg", test_ogg);
  return g_test_run ();
}
