/* atelier-cli: the command-line front end over the engine. */
#include <locale.h>
#include <stdio.h>

#include "atelier-cli.h"
#include "gpu/at-gpu.h"

static const char *
device_type_name (VkPhysicalDeviceType type)
{
  switch (type)
    {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU (software Vulkan: slow)";
    default: return "other";
    }
}

static const char *
yes_no (gboolean value)
{
  return value ? "yes" : "no";
}

static int
cmd_devices (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) devices = NULL;
  int chosen = -1;

  devices = at_gpu_list_devices (&chosen, &error);
  if (devices == NULL)
    {
      g_printerr ("atelier-cli: %s\n", error->message);
      return 1;
    }
  for (guint i = 0; i < devices->len; i++)
    {
      AtGpuDeviceInfo *info = g_ptr_array_index (devices, i);
      g_autofree char *memory = g_format_size_full (info->device_local_bytes,
                                                    G_FORMAT_SIZE_IEC_UNITS);
      g_autofree char *range = g_format_size_full (info->max_storage_buffer_range,
                                                   G_FORMAT_SIZE_IEC_UNITS);
      g_autofree char *allocation = g_format_size_full (info->max_allocation_size,
                                                        G_FORMAT_SIZE_IEC_UNITS);

      g_print ("%c [%u] %s\n", (int) i == chosen ? '*' : ' ', i, info->name);
      g_print ("      type: %s, Vulkan %u.%u.%u, driver %s\n", device_type_name (info->type),
               VK_API_VERSION_MAJOR (info->api_version),
               VK_API_VERSION_MINOR (info->api_version),
               VK_API_VERSION_PATCH (info->api_version), info->driver);
      g_print ("      memory: %s device-local; largest binding %s, largest allocation %s\n",
               memory, range, allocation);
      g_print ("      subgroups: size %u, arithmetic %s, size control %s\n",
               info->subgroup_size, yes_no (info->subgroup_arithmetic),
               yes_no (info->subgroup_size_control));
      g_print ("      16-bit storage %s, 8-bit storage %s, float16 math %s, int8 math %s, "
               "integer dot product %s, cooperative matrix %s, timestamps %s\n",
               yes_no (info->storage_16bit), yes_no (info->storage_8bit),
               yes_no (info->shader_float16), yes_no (info->shader_int8),
               yes_no (info->integer_dot_product), yes_no (info->cooperative_matrix),
               yes_no (info->timestamps));
      if (!info->usable)
        g_print ("      not usable: %s\n", info->unusable_reason);
    }
  if (chosen >= 0)
    {
      AtGpuDeviceInfo *info = g_ptr_array_index (devices, chosen);
      g_print ("Atelier uses [%d] %s%s\n", chosen, info->name,
               g_getenv ("ATELIER_DEVICE") ? " (chosen by ATELIER_DEVICE)" : "");
      if (info->type == VK_PHYSICAL_DEVICE_TYPE_CPU)
        g_print ("Only a CPU Vulkan device is available: generation will be slow.\n");
    }
  else
    g_print ("No device can run Atelier.\n");
  return chosen >= 0 ? 0 : 1;
}

static void
usage (void)
{
  g_printerr ("Usage: atelier-cli COMMAND [ARGS]\n"
              "\n"
              "Commands:\n"
              "  devices        list Vulkan devices and the one Atelier uses\n"
              "  bench ops [--reps N]\n"
              "                 copy-bandwidth and FMA roofs, then per-op GPU speed\n"
              "  bench text -m MODEL.gguf [-p 512] [-n 128]\n"
              "                 prompt-processing and generation tokens/s, weight GB/s\n"
              "  bench image -m MODEL.safetensors [-W 512 -H 512] [--reps 3]\n"
              "                 text encoder, UNet step (CFG) and VAE decode times, peak GPU\n"
              "                 memory, TFLOP/s\n"
              "  image -m MODEL.safetensors -p PROMPT [-n NEGATIVE] [--steps N] [--cfg X]\n"
              "       [--sampler NAME] [--seed S] [-W 512 -H 512] [--init IMG --strength X]\n"
              "       [--mask MASK] [--lora FILE:W]... -o OUT.png\n"
              "                 generate an image with a Stable Diffusion checkpoint\n"
              "  tokenize -m MODEL.gguf TEXT [--bos]\n"
              "                 print the token ids of TEXT on one line\n"
              "  text -m MODEL.gguf -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P]\n"
              "       [--min-p P] [--repeat-penalty R] [--seed S] [--ctx N] [--stop STR]...\n"
              "                 stream the model's continuation of PROMPT\n"
              "  chat -m MODEL.gguf [--system TEXT] [sampling options as for text]\n"
              "                 chat with the model: one line of stdin is one message\n"
              "\n"
              "Environment: ATELIER_DEVICE=<index|name> picks a device,\n"
              "ATELIER_PROFILE=1 prints per-op GPU times.\n");
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  if (argc < 2)
    {
      usage ();
      return 2;
    }
  if (g_str_equal (argv[1], "devices"))
    return cmd_devices (argc - 1, argv + 1);
  if (g_str_equal (argv[1], "bench"))
    return atelier_cli_bench (argc - 1, argv + 1);
  if (g_str_equal (argv[1], "text"))
    return atelier_cli_text (argc - 1, argv + 1);
  if (g_str_equal (argv[1], "chat"))
    return atelier_cli_chat (argc - 1, argv + 1);
  if (g_str_equal (argv[1], "image"))
    return atelier_cli_image (argc - 1, argv + 1);
  if (g_str_equal (argv[1], "tokenize"))
    return atelier_cli_tokenize (argc - 1, argv + 1);
  if (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "help"))
    {
      usage ();
      return 0;
    }
  g_printerr ("atelier-cli: unknown command “%s”\n\n", argv[1]);
  usage ();
  return 2;
}
