/* at-chat-template.c: each family written the way its reference template renders
 * it (the templates are in tests/data/chat-templates). Jinja's trim and Python's
 * strip() remove whitespace at both ends; the families that apply them to contents do
 * so here too. */
#include "at-chat-template.h"

#include <string.h>

static const char *const family_names[] = {
  [AT_CHAT_CHATML] = "ChatML",  [AT_CHAT_LLAMA3] = "Llama 3",  [AT_CHAT_LLAMA31] = "Llama 3.1",
  [AT_CHAT_LLAMA2] = "Llama 2", [AT_CHAT_MISTRAL] = "Mistral", [AT_CHAT_ZEPHYR] = "Zephyr",
  [AT_CHAT_GEMMA] = "Gemma",
};

AtChatFamily
at_chat_detect (const char *source)
{
  if (source == NULL)
    return AT_CHAT_CHATML;
  /* Checked in this order because some templates mention several markers: Llama 2
   * and Mistral both use [INST], and only Llama 2 has a <<SYS>> block. */
  if (strstr (source, "<|im_start|>") != NULL)
    return AT_CHAT_CHATML;
  if (strstr (source, "[INST]") != NULL)
    return strstr (source, "<<SYS>>") != NULL ? AT_CHAT_LLAMA2 : AT_CHAT_MISTRAL;
  if (strstr (source, "<|start_header_id|>") != NULL)
    return strstr (source, "Cutting Knowledge Date") != NULL ? AT_CHAT_LLAMA31 : AT_CHAT_LLAMA3;
  if (strstr (source, "<start_of_turn>") != NULL)
    return AT_CHAT_GEMMA;
  /* Phi 3 has the same role markers but ends turns with <|end|>. */
  if (strstr (source, "<|user|>") != NULL && strstr (source, "<|assistant|>") != NULL
      && strstr (source, "<|end|>") == NULL)
    return AT_CHAT_ZEPHYR;
  return AT_CHAT_CHATML;
}

const char *
at_chat_family_name (AtChatFamily family)
{
  g_return_val_if_fail (family <= AT_CHAT_GEMMA, NULL);
  return family_names[family];
}

const char *
at_chat_end_of_turn (AtChatFamily family, const char *eos_text)
{
  switch (family)
    {
    case AT_CHAT_CHATML:
      return "<|im_end|>";
    case AT_CHAT_LLAMA3:
    case AT_CHAT_LLAMA31:
      return "<|eot_id|>";
    case AT_CHAT_GEMMA:
      return "<end_of_turn>";
    case AT_CHAT_LLAMA2:
    case AT_CHAT_MISTRAL:
    case AT_CHAT_ZEPHYR:
      return eos_text;
    }
  g_return_val_if_reached (NULL);
}

static void
append_trimmed (GString *out, const char *text)
{
  const char *end = text + strlen (text);

  while (g_ascii_isspace (*text))
    text++;
  while (end > text && g_ascii_isspace (end[-1]))
    end--;
  g_string_append_len (out, text, end - text);
}

static gboolean
is_role (const AtChatMessage *m, const char *role)
{
  return g_strcmp0 (m->role, role) == 0;
}

/* Llama 2, Mistral and Gemma have no system turn: the system message goes into the
 * next user turn (a system message with no user turn after it becomes one). */
static void
append_user_turn (GString *out, AtChatFamily family, const char *role, const char *system,
                  const char *content, const char *bos)
{
  switch (family)
    {
    case AT_CHAT_LLAMA2:
      {
        g_autoptr (GString) text = g_string_new (NULL);
        if (system != NULL)
          g_string_append_printf (text, "<<SYS>>\n%s\n<</SYS>>\n\n", system);
        g_string_append (text, content);
        g_string_append_printf (out, "%s[INST] ", bos);
        append_trimmed (out, text->str);
        g_string_append (out, " [/INST]");
      }
      break;
    case AT_CHAT_MISTRAL:
      g_string_append (out, "[INST] ");
      if (system != NULL)
        g_string_append_printf (out, "%s\n\n", system);
      g_string_append_printf (out, "%s [/INST]", content);
      break;
    case AT_CHAT_GEMMA:
      g_string_append_printf (out, "<start_of_turn>%s\n", role);
      if (system != NULL)
        g_string_append_printf (out, "%s\n\n", system);
      append_trimmed (out, content);
      g_string_append (out, "<end_of_turn>\n");
      break;
    case AT_CHAT_CHATML:
    case AT_CHAT_LLAMA3:
    case AT_CHAT_LLAMA31:
    case AT_CHAT_ZEPHYR:
      g_assert_not_reached ();
    }
}

static void
format_folded_system (GString *out, AtChatFamily family, const AtChatMessage *messages, gsize n,
                      gboolean add_assistant_prompt, const char *bos, const char *eos)
{
  const char *system = NULL;

  if (family != AT_CHAT_LLAMA2)
    g_string_append (out, bos);
  for (gsize i = 0; i < n; i++)
    {
      const AtChatMessage *m = &messages[i];

      if (is_role (m, "system"))
        {
          if (system != NULL)
            append_user_turn (out, family, "user", NULL, system, bos);
          system = m->content;
        }
      else if (is_role (m, "assistant"))
        {
          if (system != NULL)
            append_user_turn (out, family, "user", NULL, system, bos);
          system = NULL;
          if (family == AT_CHAT_LLAMA2)
            {
              g_string_append_c (out, ' ');
              append_trimmed (out, m->content);
              g_string_append_printf (out, " %s", eos);
            }
          else if (family == AT_CHAT_MISTRAL)
            g_string_append_printf (out, "%s%s", m->content, eos);
          else
            {
              g_string_append (out, "<start_of_turn>model\n");
              append_trimmed (out, m->content);
              g_string_append (out, "<end_of_turn>\n");
            }
        }
      else
        {
          append_user_turn (out, family, m->role, system, m->content, bos);
          system = NULL;
        }
    }
  if (system != NULL)
    append_user_turn (out, family, "user", NULL, system, bos);
  if (family == AT_CHAT_GEMMA && add_assistant_prompt)
    g_string_append (out, "<start_of_turn>model\n");
}

char *
at_chat_format (AtChatFamily family, const AtChatMessage *messages, gsize n,
                gboolean add_assistant_prompt, const char *bos_text, const char *eos_text)
{
  const char *bos = bos_text != NULL ? bos_text : "";
  const char *eos = eos_text != NULL ? eos_text : "";
  GString *out = g_string_new (NULL);
  gsize first = 0;

  switch (family)
    {
    case AT_CHAT_CHATML:
      for (gsize i = 0; i < n; i++)
        g_string_append_printf (out, "<|im_start|>%s\n%s<|im_end|>\n", messages[i].role,
                                messages[i].content);
      if (add_assistant_prompt)
        g_string_append (out, "<|im_start|>assistant\n");
      break;
    case AT_CHAT_LLAMA31:
    case AT_CHAT_LLAMA3:
      g_string_append (out, bos);
      if (family == AT_CHAT_LLAMA31)
        {
          g_string_append (out, "<|start_header_id|>system<|end_header_id|>\n\n"
                                "Cutting Knowledge Date: December 2023\n"
                                "Today Date: 26 Jul 2024\n\n");
          if (n > 0 && is_role (&messages[0], "system"))
            append_trimmed (out, messages[first++].content);
          g_string_append (out, "<|eot_id|>");
        }
      for (gsize i = first; i < n; i++)
        {
          g_string_append_printf (out, "<|start_header_id|>%s<|end_header_id|>\n\n",
                                  messages[i].role);
          append_trimmed (out, messages[i].content);
          g_string_append (out, "<|eot_id|>");
        }
      if (add_assistant_prompt)
        g_string_append (out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
      break;
    case AT_CHAT_ZEPHYR:
      for (gsize i = 0; i < n; i++)
        g_string_append_printf (out, "<|%s|>\n%s%s\n", messages[i].role, messages[i].content, eos);
      if (add_assistant_prompt)
        g_string_append (out, "<|assistant|>\n");
      break;
    case AT_CHAT_LLAMA2:
    case AT_CHAT_MISTRAL:
    case AT_CHAT_GEMMA:
      format_folded_system (out, family, messages, n, add_assistant_prompt, bos, eos);
      break;
    }
  return g_string_free (out, FALSE);
}
