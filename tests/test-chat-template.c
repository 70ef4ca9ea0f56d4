/* Chat templates: the family of real tokenizer.chat_template sources
 * (tests/data/chat-templates, from the models' tokenizer_config.json) and the text
 * of a conversation in each family. The expected texts are what the real Jinja
 * templates render (jinja2 with trim_blocks and lstrip_blocks, as transformers'
 * apply_chat_template runs them) for the same conversation. */
#include "text/at-chat-template.h"

#include <gio/gio.h>

/* System, user, assistant (with spaces around, to show which templates trim), user. */
static const AtChatMessage conversation[] = {
  { "system", "You are a terse poet." },
  { "user", "Hello!" },
  { "assistant", " Hi there. " },
  { "user", "Write a haiku about tea." },
};

static char *
read_template (const char *name)
{
  g_autofree char *path = g_build_filename (AT_CHAT_TEMPLATE_DIR, name, NULL);
  g_autoptr (GError) error = NULL;
  char *source = NULL;

  g_file_get_contents (path, &source, NULL, &error);
  g_assert_no_error (error);
  return source;
}

static void
test_detect (void)
{
  static const struct
  {
    const char *file;
    AtChatFamily family;
  } cases[] = {
    { "qwen2.5-7b-instruct.jinja", AT_CHAT_CHATML },
    { "llama-3-8b-instruct.jinja", AT_CHAT_LLAMA3 },
    { "llama-3.1-8b-instruct.jinja", AT_CHAT_LLAMA31 },
    { "llama-2-7b-chat.jinja", AT_CHAT_LLAMA2 },
    { "mistral-7b-instruct-v0.2.jinja", AT_CHAT_MISTRAL },
    { "tinyllama-1.1b-chat-v1.0.jinja", AT_CHAT_ZEPHYR },
    { "gemma-2-9b-it.jinja", AT_CHAT_GEMMA },
    { "gemma-3-it.jinja", AT_CHAT_GEMMA },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *source = read_template (cases[i].file);
      g_test_message ("%s: %s", cases[i].file, at_chat_family_name (at_chat_detect (source)));
      g_assert_cmpint (at_chat_detect (source), ==, cases[i].family);
    }
  g_assert_cmpint (at_chat_detect (NULL), ==, AT_CHAT_CHATML);
  g_assert_cmpint (at_chat_detect (""), ==, AT_CHAT_CHATML);
  g_assert_cmpint (at_chat_detect ("{% for m in messages %}{{ m.content }}{% endfor %}"), ==,
                   AT_CHAT_CHATML);
  /* Phi 3's markers look like Zephyr's but it is not one of ours. */
  g_assert_cmpint (at_chat_detect ("{{'<|user|>' + '\\n' + message['content'] + '<|end|>'}}"
                                   "{{ '<|assistant|>' }}"),
                   ==, AT_CHAT_CHATML);
}

static void
check_format (AtChatFamily family, gsize first, gboolean prompt, const char *bos, const char *eos,
              const char *expected)
{
  g_autofree char *text = at_chat_format (family, conversation + first,
                                          G_N_ELEMENTS (conversation) - first, prompt, bos, eos);

  g_assert_cmpstr (text, ==, expected);
}

/* Qwen/Qwen2.5-7B-Instruct. Without a system message Qwen2.5 writes its own default
 * one; plain ChatML does not. */
static void
test_chatml (void)
{
  const char *qwen = "<|im_start|>system\nYou are a terse poet.<|im_end|>\n"
                     "<|im_start|>user\nHello!<|im_end|>\n"
                     "<|im_start|>assistant\n Hi there. <|im_end|>\n"
                     "<|im_start|>user\nWrite a haiku about tea.<|im_end|>\n";
  g_autofree char *prompted = g_strconcat (qwen, "<|im_start|>assistant\n", NULL);

  check_format (AT_CHAT_CHATML, 0, TRUE, NULL, NULL, prompted);
  check_format (AT_CHAT_CHATML, 0, FALSE, NULL, NULL, qwen);
}

/* meta-llama/Meta-Llama-3-8B-Instruct and Llama-3.1-8B-Instruct. */
static void
test_llama3 (void)
{
  const char *bos = "<|begin_of_text|>";

  check_format (AT_CHAT_LLAMA3, 0, TRUE, bos, NULL,
                "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                "You are a terse poet.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                "Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                "Hi there.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                "Write a haiku about tea.<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
  check_format (AT_CHAT_LLAMA3, 1, FALSE, bos, NULL,
                "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
                "Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                "Hi there.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                "Write a haiku about tea.<|eot_id|>");
  check_format (AT_CHAT_LLAMA31, 0, TRUE, bos, NULL,
                "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
                "You are a terse poet.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                "Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                "Hi there.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                "Write a haiku about tea.<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
  check_format (AT_CHAT_LLAMA31, 1, TRUE, bos, NULL,
                "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
                "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                "Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                "Hi there.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                "Write a haiku about tea.<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* meta-llama/Llama-2-7b-chat-hf; the prompt ends with [/INST] either way. */
static void
test_llama2 (void)
{
  for (int prompt = 0; prompt < 2; prompt++)
    {
      check_format (AT_CHAT_LLAMA2, 0, prompt, "<s>", "</s>",
                    "<s>[INST] <<SYS>>\nYou are a terse poet.\n<</SYS>>\n\nHello! [/INST] "
                    "Hi there. </s><s>[INST] Write a haiku about tea. [/INST]");
      check_format (AT_CHAT_LLAMA2, 1, prompt, "<s>", "</s>",
                    "<s>[INST] Hello! [/INST] Hi there. </s><s>[INST] Write a haiku about tea. "
                    "[/INST]");
    }
}

/* mistralai/Mistral-7B-Instruct-v0.2, which refuses system messages; Atelier puts one
 * in front of the first user message as Mistral's later templates do. */
static void
test_mistral (void)
{
  check_format (AT_CHAT_MISTRAL, 1, TRUE, "<s>", "</s>",
                "<s>[INST] Hello! [/INST] Hi there. </s>[INST] Write a haiku about tea. [/INST]");
  check_format (AT_CHAT_MISTRAL, 0, TRUE, "<s>", "</s>",
                "<s>[INST] You are a terse poet.\n\nHello! [/INST] Hi there. </s>"
                "[INST] Write a haiku about tea. [/INST]");
}

/* TinyLlama/TinyLlama-1.1B-Chat-v1.0, whose template is Zephyr's. */
static void
test_zephyr (void)
{
  const char *text = "<|system|>\nYou are a terse poet.</s>\n<|user|>\nHello!</s>\n"
                     "<|assistant|>\n Hi there. </s>\n<|user|>\nWrite a haiku about tea.</s>\n";
  g_autofree char *prompted = g_strconcat (text, "<|assistant|>\n", NULL);

  check_format (AT_CHAT_ZEPHYR, 0, FALSE, "<s>", "</s>", text);
  check_format (AT_CHAT_ZEPHYR, 0, TRUE, "<s>", "</s>", prompted);
}

/* google/gemma-2-9b-it without a system message (it refuses one), Gemma 3's template
 * with one. */
static void
test_gemma (void)
{
  check_format (AT_CHAT_GEMMA, 1, TRUE, "<bos>", "<eos>",
                "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n"
                "Hi there.<end_of_turn>\n<start_of_turn>user\nWrite a haiku about tea."
                "<end_of_turn>\n<start_of_turn>model\n");
  check_format (AT_CHAT_GEMMA, 0, FALSE, "<bos>", "<eos>",
                "<bos><start_of_turn>user\nYou are a terse poet.\n\nHello!<end_of_turn>\n"
                "<start_of_turn>model\nHi there.<end_of_turn>\n<start_of_turn>user\n"
                "Write a haiku about tea.<end_of_turn>\n");
}

static void
test_end_of_turn (void)
{
  g_assert_cmpstr (at_chat_end_of_turn (AT_CHAT_CHATML, "</s>"), ==, "<|im_end|>");
  g_assert_cmpstr (at_chat_end_of_turn (AT_CHAT_LLAMA3, "</s>"), ==, "<|eot_id|>");
  g_assert_cmpstr (at_chat_end_of_turn (AT_CHAT_LLAMA31, "</s>"), ==, "<|eot_id|>");
  g_assert_cmpstr (at_chat_end_of_turn (AT_CHAT_GEMMA, "<eos>"), ==, "<end_of_turn>");
  g_assert_cmpstr (at_chat_end_of_turn (AT_CHAT_LLAMA2, "</s>"), ==, "</s>");
  g_assert_cmpstr (at_chat_end_of_turn (AT_CHAT_MISTRAL, "</s>"), ==, "</s>");
  g_assert_cmpstr (at_chat_end_of_turn (AT_CHAT_ZEPHYR, "<|endoftext|>"), ==, "<|endoftext|>");
  for (AtChatFamily f = AT_CHAT_CHATML; f <= AT_CHAT_GEMMA; f++)
    g_assert_nonnull (at_chat_family_name (f));
}

/* A system message with no user turn after it is not lost. */
static void
test_lone_system (void)
{
  const AtChatMessage system_only[] = { { "system", "Be brief." } };
  g_autofree char *gemma = at_chat_format (AT_CHAT_GEMMA, system_only, 1, TRUE, NULL, NULL);
  g_autofree char *llama2 = at_chat_format (AT_CHAT_LLAMA2, system_only, 1, TRUE, "<s>", "</s>");

  g_assert_cmpstr (gemma, ==,
                   "<start_of_turn>user\nBe brief.<end_of_turn>\n<start_of_turn>model\n");
  g_assert_cmpstr (llama2, ==, "<s>[INST] Be brief. [/INST]");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/text/chat/detect", test_detect);
  g_test_add_func ("/text/chat/chatml", test_chatml);
  g_test_add_func ("/text/chat/llama3", test_llama3);
  g_test_add_func ("/text/chat/llama2", test_llama2);
  g_test_add_func ("/text/chat/mistral", test_mistral);
  g_test_add_func ("/text/chat/zephyr", test_zephyr);
  g_test_add_func ("/text/chat/gemma", test_gemma);
  g_test_add_func ("/text/chat/end-of-turn", test_end_of_turn);
  g_test_add_func ("/text/chat/lone-system", test_lone_system);
  return g_test_run ();
}
