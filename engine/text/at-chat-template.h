/* at-chat-template.h: conversations as the text a chat model was trained on.
 *
 * GGUF files carry the Hugging Face Jinja template in tokenizer.chat_template. Rather
 * than run Jinja, Atelier recognises the common families by their characteristic
 * markers (as llama.cpp does) and writes their format directly, reproducing what the
 * real templates render for plain system/user/assistant conversations. The result
 * holds control tokens as text ("<|im_start|>"): encode it with
 * AT_TOKENIZE_PARSE_SPECIAL.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  /* <|im_start|>role\n...<|im_end|>\n: Qwen2/2.5/3, SmolLM2, and the fallback. */
  AT_CHAT_CHATML,
  /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>, contents trimmed. */
  AT_CHAT_LLAMA3,
  /* Llama 3.1 and later: Llama 3 with a system turn that always opens with
   * "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" (the
   * template's date when the caller gives none). */
  AT_CHAT_LLAMA31,
  /* <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s>...: Llama 2 chat. */
  AT_CHAT_LLAMA2,
  /* <s>[INST] user [/INST]answer</s>...: Mistral Instruct; a system message goes in
   * front of the first user message, followed by a blank line. */
  AT_CHAT_MISTRAL,
  /* <|role|>\n...</s>\n: Zephyr, TinyLlama chat. */
  AT_CHAT_ZEPHYR,
  /* <start_of_turn>user\n...<end_of_turn>\n, "model" for the assistant; the system
   * message goes in front of the first user message, as Gemma 3 does. */
  AT_CHAT_GEMMA,
} AtChatFamily;

typedef struct
{
  const char *role; /* "system", "user", "assistant" */
  const char *content;
} AtChatMessage;

/* The family of a tokenizer.chat_template source; AT_CHAT_CHATML for NULL or an
 * unknown template. */
AtChatFamily at_chat_detect (const char *template_source);
/* A name to show ("ChatML", "Llama 3", ...). */
const char *at_chat_family_name (AtChatFamily family);
/* The text that ends an assistant turn ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"),
 * eos_text where the family ends turns with the EOS token. */
const char *at_chat_end_of_turn (AtChatFamily family, const char *eos_text);

/* The text of n messages in family's format, opening an assistant turn at the end when
 * add_assistant_prompt is set (Llama 2 and Mistral need no opening: their prompt ends
 * with [/INST]). bos_text and eos_text are the vocabulary's BOS and EOS texts ("<s>",
 * "</s>") where the template writes them; NULL writes nothing (pass NULL for BOS when
 * the tokenizer adds it). Free with g_free. */
char *at_chat_format (AtChatFamily family, const AtChatMessage *messages, gsize n,
                      gboolean add_assistant_prompt, const char *bos_text, const char *eos_text);

G_END_DECLS
