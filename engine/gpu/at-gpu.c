/* at-gpu.c: Vulkan instance and device, memory sub-allocation, pipelines, batches. */
#include "at-gpu.h"

#include <stdlib.h>
#include <string.h>

#include "at-error.h"
#include "gpu/at-shader-blobs.h"

#define DEVICE_BLOCK_SIZE ((VkDeviceSize) 256 << 20)
#define HOST_BLOCK_SIZE ((VkDeviceSize) 64 << 20)
#define STAGING_SIZE ((gsize) 32 << 20)
#define ALLOCATION_GRANULE 256
#define INITIAL_QUERY_CAPACITY 512

typedef struct {
  VkDeviceSize offset;
  VkDeviceSize size;
} Range;

typedef struct {
  VkDeviceMemory memory;
  VkDeviceSize size;
  guint32 type_index;
  AtGpuMemoryKind kind;
  void *mapped;
  GArray *free_ranges; /* Range, sorted by offset, coalesced */
  VkDeviceSize used;
} MemoryBlock;

struct _AtGpuBuffer {
  AtGpu *gpu;
  VkBuffer handle;
  gsize size;
  AtGpuMemoryKind kind;
  MemoryBlock *block;
  Range placement; /* inside block */
};

typedef struct {
  VkPipeline pipeline;
  guint n_bindings;
  const char *name; /* the embedded variant's (static) name: the timing label */
} Pipeline;

struct _AtGpu {
  VkInstance instance;
  VkDebugUtilsMessengerEXT messenger;
  VkPhysicalDevice physical;
  VkDevice device;
  VkQueue queue;
  guint32 queue_family;
  VkPhysicalDeviceMemoryProperties memory_properties;
  AtGpuDeviceInfo *info;
  PFN_vkCmdPushDescriptorSetKHR cmd_push_descriptor_set;

  GMutex queue_lock;
  GMutex memory_lock;
  GPtrArray *blocks; /* MemoryBlock* */
  guint64 device_bytes, device_bytes_peak;

  GMutex pipeline_lock;
  GHashTable *pipelines; /* "variant|spec,spec" -> Pipeline* */
  VkDescriptorSetLayout set_layouts[AT_GPU_MAX_BINDINGS + 1];
  VkPipelineLayout pipeline_layouts[AT_GPU_MAX_BINDINGS + 1];

  GMutex transfer_lock;
  AtBatch *transfer_batch;
  AtGpuBuffer *upload_staging;
  AtGpuBuffer *readback_staging;

  gint validation_errors; /* atomic */
  gboolean profile;
};

typedef struct {
  VkBuffer buffer;
  VkDeviceSize offset;
  VkDeviceSize size;
  gboolean write;
} Access;

struct _AtBatch {
  AtGpu *gpu;
  VkCommandPool pool;
  VkCommandBuffer cmd;
  VkFence fence;
  gboolean recording;
  GError *error;
  GArray *pending; /* Access since the last barrier */

  gboolean timing;
  VkQueryPool query_pool;
  guint query_capacity;
  guint n_queries;
  GPtrArray *labels; /* const char *, one per timed command */
  GArray *timings;   /* AtDispatchTime of the last run */
  double total_ms;

  GPtrArray *scratch;    /* AtGpuBuffer*, filled in order */
  gsize scratch_used;    /* bytes taken from the last buffer in this recording */
  gsize scratch_demand;  /* bytes all of this recording's requests took */
  gsize scratch_peak;    /* the largest demand seen: the size to consolidate to */
};

/* --- Errors ------------------------------------------------------------------ */

static const char *
vk_result_name (VkResult result)
{
  switch (result)
    {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    default: return "VkResult error";
    }
}

static gboolean
vk_check (VkResult result, const char *what, GError **error)
{
  AtError code;

  if (result == VK_SUCCESS)
    return TRUE;
  switch (result)
    {
    case VK_ERROR_OUT_OF_HOST_MEMORY:
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
      code = AT_ERROR_OUT_OF_MEMORY;
      break;
    case VK_ERROR_DEVICE_LOST:
      code = AT_ERROR_DEVICE_LOST;
      break;
    case VK_ERROR_INCOMPATIBLE_DRIVER:
    case VK_ERROR_INITIALIZATION_FAILED:
      code = AT_ERROR_NO_DEVICE;
      break;
    default:
      code = AT_ERROR_FAILED;
      break;
    }
  if (code == AT_ERROR_DEVICE_LOST)
    g_set_error (error, AT_ERROR, code,
                 "%s failed: the GPU device was lost (driver reset or crash); "
                 "restart Atelier to use the GPU again", what);
  else
    g_set_error (error, AT_ERROR, code, "%s failed: %s (%d)", what,
                 vk_result_name (result), result);
  return FALSE;
}

static char *
format_bytes (guint64 bytes)
{
  return g_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
}

/* --- Instance and device selection --------------------------------------------- */

static VKAPI_ATTR VkBool32 VKAPI_CALL
on_validation_message (VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                       VkDebugUtilsMessageTypeFlagsEXT types,
                       const VkDebugUtilsMessengerCallbackDataEXT *data,
                       void *user_data)
{
  AtGpu *gpu = user_data;

  if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)
    {
      g_atomic_int_inc (&gpu->validation_errors);
      g_critical ("Vulkan validation error: %s", data->pMessage);
    }
  else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)
    g_message ("Vulkan validation warning: %s", data->pMessage);
  return VK_FALSE;
}

static gboolean
has_layer (const char *name)
{
  guint32 n = 0;
  g_autofree VkLayerProperties *layers = NULL;

  vkEnumerateInstanceLayerProperties (&n, NULL);
  layers = g_new0 (VkLayerProperties, n);
  vkEnumerateInstanceLayerProperties (&n, layers);
  for (guint i = 0; i < n; i++)
    if (strcmp (layers[i].layerName, name) == 0)
      return TRUE;
  return FALSE;
}

static gboolean
env_flag (const char *name)
{
  const char *value = g_getenv (name);
  return value && *value && strcmp (value, "0") != 0;
}

static gboolean
create_instance (gboolean validation, VkInstance *instance, GError **error)
{
  const char *layers[] = { "VK_LAYER_KHRONOS_validation" };
  const char *extensions[] = { VK_EXT_DEBUG_UTILS_EXTENSION_NAME };
  VkApplicationInfo app = {
    .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
    .pApplicationName = "Atelier",
    .pEngineName = "Atelier",
    .apiVersion = VK_API_VERSION_1_2,
  };
  VkInstanceCreateInfo create = {
    .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
    .pApplicationInfo = &app,
  };
  VkResult result;

  if (validation)
    {
      if (!has_layer (layers[0]))
        {
          g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                       "Vulkan validation was asked for (ATELIER_VALIDATION=1) but the "
                       "layer %s is not installed (Debian: vulkan-validationlayers)",
                       layers[0]);
          return FALSE;
        }
      create.enabledLayerCount = 1;
      create.ppEnabledLayerNames = layers;
      create.enabledExtensionCount = 1;
      create.ppEnabledExtensionNames = extensions;
    }

  result = vkCreateInstance (&create, NULL, instance);
  if (result == VK_ERROR_INCOMPATIBLE_DRIVER || result == VK_ERROR_INITIALIZATION_FAILED)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_NO_DEVICE,
                   "No Vulkan 1.2 driver was found. Install your GPU vendor's Vulkan "
                   "driver, or Mesa's (Debian: mesa-vulkan-drivers) to run on the CPU");
      return FALSE;
    }
  return vk_check (result, "Creating the Vulkan instance", error);
}

static gboolean
has_device_extension (const VkExtensionProperties *extensions, guint n, const char *name)
{
  for (guint i = 0; i < n; i++)
    if (strcmp (extensions[i].extensionName, name) == 0)
      return TRUE;
  return FALSE;
}

void
at_gpu_device_info_free (AtGpuDeviceInfo *info)
{
  if (info == NULL)
    return;
  g_free (info->unusable_reason);
  g_free (info);
}

static AtGpuDeviceInfo *
query_device (VkPhysicalDevice physical)
{
  AtGpuDeviceInfo *info = g_new0 (AtGpuDeviceInfo, 1);
  VkPhysicalDeviceSubgroupProperties subgroup = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
  };
  VkPhysicalDeviceDriverProperties driver = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES,
    .pNext = &subgroup,
  };
  VkPhysicalDeviceProperties2 props = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
    .pNext = &driver,
  };
  VkPhysicalDeviceVulkan12Features features12 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
  };
  VkPhysicalDeviceVulkan11Features features11 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
    .pNext = &features12,
  };
  VkPhysicalDeviceFeatures2 features = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
    .pNext = &features11,
  };
  VkPhysicalDeviceMemoryProperties memory;
  guint32 n_extensions = 0, n_families = 0;
  g_autofree VkExtensionProperties *extensions = NULL;
  g_autofree VkQueueFamilyProperties *families = NULL;
  GString *missing = g_string_new (NULL);

  vkGetPhysicalDeviceProperties (physical, &props.properties);
  info->api_version = props.properties.apiVersion;
  if (info->api_version >= VK_API_VERSION_1_2)
    {
      vkGetPhysicalDeviceProperties2 (physical, &props);
      vkGetPhysicalDeviceFeatures2 (physical, &features);
      g_snprintf (info->driver, sizeof info->driver, "%s %s", driver.driverName,
                  driver.driverInfo);
    }
  g_strlcpy (info->name, props.properties.deviceName, sizeof info->name);
  info->type = props.properties.deviceType;
  info->vendor_id = props.properties.vendorID;
  info->device_id = props.properties.deviceID;

  vkGetPhysicalDeviceMemoryProperties (physical, &memory);
  for (guint i = 0; i < memory.memoryHeapCount; i++)
    if (memory.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
      info->device_local_bytes += memory.memoryHeaps[i].size;

  const VkPhysicalDeviceLimits *limits = &props.properties.limits;
  info->max_storage_buffer_range = limits->maxStorageBufferRange;
  info->min_storage_offset_alignment = (guint32) limits->minStorageBufferOffsetAlignment;
  memcpy (info->max_workgroup_count, limits->maxComputeWorkGroupCount,
          sizeof info->max_workgroup_count);
  info->max_workgroup_invocations = limits->maxComputeWorkGroupInvocations;
  info->max_shared_memory = limits->maxComputeSharedMemorySize;
  info->timestamp_period_ns = limits->timestampPeriod;
  info->max_allocation_size = G_MAXUINT32; /* refined below when the device says */

  vkEnumerateDeviceExtensionProperties (physical, NULL, &n_extensions, NULL);
  extensions = g_new0 (VkExtensionProperties, n_extensions);
  vkEnumerateDeviceExtensionProperties (physical, NULL, &n_extensions, extensions);
  info->push_descriptor = has_device_extension (extensions, n_extensions,
                                                VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
  info->subgroup_size_control =
    has_device_extension (extensions, n_extensions, "VK_EXT_subgroup_size_control");
  info->integer_dot_product =
    has_device_extension (extensions, n_extensions, "VK_KHR_shader_integer_dot_product");
  info->cooperative_matrix =
    has_device_extension (extensions, n_extensions, "VK_KHR_cooperative_matrix");

  if (info->api_version >= VK_API_VERSION_1_2)
    {
      VkPhysicalDeviceMaintenance3Properties maintenance3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES,
      };
      VkPhysicalDeviceProperties2 props2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
        .pNext = &maintenance3,
      };
      vkGetPhysicalDeviceProperties2 (physical, &props2);
      info->max_allocation_size = maintenance3.maxMemoryAllocationSize;

      info->subgroup_size = subgroup.subgroupSize;
      info->subgroup_arithmetic =
        (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
        (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
      info->storage_16bit = features11.storageBuffer16BitAccess;
      info->storage_8bit = features12.storageBuffer8BitAccess;
      info->shader_float16 = features12.shaderFloat16;
      info->shader_int8 = features12.shaderInt8;
    }

  vkGetPhysicalDeviceQueueFamilyProperties (physical, &n_families, NULL);
  families = g_new0 (VkQueueFamilyProperties, n_families);
  vkGetPhysicalDeviceQueueFamilyProperties (physical, &n_families, families);
  gboolean has_compute = FALSE;
  for (guint i = 0; i < n_families; i++)
    if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
      {
        has_compute = TRUE;
        info->timestamps = families[i].timestampValidBits > 0 &&
                           limits->timestampComputeAndGraphics;
        break;
      }

  if (info->api_version < VK_API_VERSION_1_2)
    g_string_append (missing, "Vulkan 1.2, ");
  if (!has_compute)
    g_string_append (missing, "a compute queue, ");
  if (!info->storage_16bit)
    g_string_append (missing, "16-bit storage buffers, ");
  if (!info->storage_8bit)
    g_string_append (missing, "8-bit storage buffers, ");
  if (!info->push_descriptor)
    g_string_append (missing, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME ", ");
  info->usable = missing->len == 0;
  if (!info->usable)
    {
      g_string_truncate (missing, missing->len - 2);
      info->unusable_reason = g_strdup_printf ("lacks %s", missing->str);
    }
  g_string_free (missing, TRUE);
  return info;
}

static int
device_type_rank (VkPhysicalDeviceType type)
{
  switch (type)
    {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

/* Picks a device from infos (AtGpuDeviceInfo*): by selector if given, else the best
 * usable one. Returns -1 with error set when none fits. */
static int
choose_device (GPtrArray *infos, const char *selector, GError **error)
{
  if (infos->len == 0)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_NO_DEVICE,
                   "The Vulkan driver reports no devices. Install your GPU vendor's "
                   "Vulkan driver, or Mesa's (Debian: mesa-vulkan-drivers)");
      return -1;
    }

  if (selector != NULL && *selector != '\0')
    {
      guint64 index;
      int found = -1;

      if (g_ascii_string_to_unsigned (selector, 10, 0, G_MAXINT, &index, NULL))
        {
          if (index < infos->len)
            found = (int) index;
        }
      else
        {
          g_autofree char *needle = g_utf8_casefold (selector, -1);
          for (guint i = 0; i < infos->len && found < 0; i++)
            {
              AtGpuDeviceInfo *info = g_ptr_array_index (infos, i);
              g_autofree char *name = g_utf8_casefold (info->name, -1);
              if (strstr (name, needle))
                found = (int) i;
            }
        }
      if (found < 0)
        {
          g_set_error (error, AT_ERROR, AT_ERROR_NO_DEVICE,
                       "No Vulkan device matches “%s” (see `atelier-cli devices`)",
                       selector);
          return -1;
        }
      AtGpuDeviceInfo *info = g_ptr_array_index (infos, found);
      if (!info->usable)
        {
          g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                       "The Vulkan device “%s” cannot run Atelier: it %s", info->name,
                       info->unusable_reason);
          return -1;
        }
      return found;
    }

  int best = -1;
  for (guint i = 0; i < infos->len; i++)
    {
      AtGpuDeviceInfo *info = g_ptr_array_index (infos, i);
      if (!info->usable)
        continue;
      if (best < 0)
        {
          best = (int) i;
          continue;
        }
      AtGpuDeviceInfo *other = g_ptr_array_index (infos, best);
      int rank = device_type_rank (info->type), other_rank = device_type_rank (other->type);
      if (rank > other_rank ||
          (rank == other_rank && info->device_local_bytes > other->device_local_bytes))
        best = (int) i;
    }
  if (best < 0)
    {
      AtGpuDeviceInfo *info = g_ptr_array_index (infos, 0);
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "No Vulkan device can run Atelier (“%s” %s)", info->name,
                   info->unusable_reason);
    }
  return best;
}

static GPtrArray *
enumerate_devices (VkInstance instance, VkPhysicalDevice **physicals, GError **error)
{
  guint32 n = 0;
  GPtrArray *infos;

  if (!vk_check (vkEnumeratePhysicalDevices (instance, &n, NULL),
                 "Listing Vulkan devices", error))
    return NULL;
  *physicals = g_new0 (VkPhysicalDevice, MAX (n, 1));
  if (!vk_check (vkEnumeratePhysicalDevices (instance, &n, *physicals),
                 "Listing Vulkan devices", error))
    {
      g_clear_pointer (physicals, g_free);
      return NULL;
    }
  infos = g_ptr_array_new_with_free_func ((GDestroyNotify) at_gpu_device_info_free);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (infos, query_device ((*physicals)[i]));
  return infos;
}

GPtrArray *
at_gpu_list_devices (int *chosen_index, GError **error)
{
  VkInstance instance;
  g_autofree VkPhysicalDevice *physicals = NULL;
  GPtrArray *infos;

  if (!create_instance (FALSE, &instance, error))
    return NULL;
  infos = enumerate_devices (instance, &physicals, error);
  vkDestroyInstance (instance, NULL);
  if (infos && chosen_index)
    *chosen_index = choose_device (infos, g_getenv ("ATELIER_DEVICE"), NULL);
  return infos;
}

static gboolean
create_device (AtGpu *gpu, GError **error)
{
  const AtGpuDeviceInfo *info = gpu->info;
  guint32 n_families = 0;
  g_autofree VkQueueFamilyProperties *families = NULL;
  float priority = 1.0f;
  VkPhysicalDeviceFeatures supported;
  const char *extensions[] = { VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME };

  vkGetPhysicalDeviceQueueFamilyProperties (gpu->physical, &n_families, NULL);
  families = g_new0 (VkQueueFamilyProperties, n_families);
  vkGetPhysicalDeviceQueueFamilyProperties (gpu->physical, &n_families, families);
  /* Prefer a compute-only family (asynchronous compute on discrete GPUs isn't
   * needed); any family with compute will do. */
  gpu->queue_family = G_MAXUINT32;
  for (guint i = 0; i < n_families; i++)
    if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
      {
        gpu->queue_family = i;
        break;
      }

  vkGetPhysicalDeviceFeatures (gpu->physical, &supported);
  VkPhysicalDeviceVulkan12Features features12 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
    .storageBuffer8BitAccess = VK_TRUE,
    .shaderFloat16 = info->shader_float16,
    .shaderInt8 = info->shader_int8,
  };
  VkPhysicalDeviceVulkan11Features features11 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
    .pNext = &features12,
    .storageBuffer16BitAccess = VK_TRUE,
  };
  VkPhysicalDeviceFeatures2 features = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
    .pNext = &features11,
    .features = {
      .shaderInt16 = supported.shaderInt16,
      .shaderInt64 = supported.shaderInt64,
    },
  };
  VkDeviceQueueCreateInfo queue = {
    .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
    .queueFamilyIndex = gpu->queue_family,
    .queueCount = 1,
    .pQueuePriorities = &priority,
  };
  VkDeviceCreateInfo create = {
    .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
    .pNext = &features,
    .queueCreateInfoCount = 1,
    .pQueueCreateInfos = &queue,
    .enabledExtensionCount = G_N_ELEMENTS (extensions),
    .ppEnabledExtensionNames = extensions,
  };

  if (!vk_check (vkCreateDevice (gpu->physical, &create, NULL, &gpu->device),
                 "Opening the Vulkan device", error))
    return FALSE;
  vkGetDeviceQueue (gpu->device, gpu->queue_family, 0, &gpu->queue);
  gpu->cmd_push_descriptor_set = (PFN_vkCmdPushDescriptorSetKHR)
    vkGetDeviceProcAddr (gpu->device, "vkCmdPushDescriptorSetKHR");
  vkGetPhysicalDeviceMemoryProperties (gpu->physical, &gpu->memory_properties);
  return TRUE;
}

static gboolean
create_layouts (AtGpu *gpu, GError **error)
{
  VkDescriptorSetLayoutBinding bindings[AT_GPU_MAX_BINDINGS];
  VkPushConstantRange push = {
    .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
    .offset = 0,
    .size = AT_GPU_PUSH_CONSTANT_SIZE,
  };

  for (guint i = 0; i < AT_GPU_MAX_BINDINGS; i++)
    bindings[i] = (VkDescriptorSetLayoutBinding) {
      .binding = i,
      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
      .descriptorCount = 1,
      .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
    };

  for (guint n = 0; n <= AT_GPU_MAX_BINDINGS; n++)
    {
      VkDescriptorSetLayoutCreateInfo set_info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR,
        .bindingCount = n,
        .pBindings = bindings,
      };
      if (!vk_check (vkCreateDescriptorSetLayout (gpu->device, &set_info, NULL,
                                                  &gpu->set_layouts[n]),
                     "Creating a descriptor set layout", error))
        return FALSE;
      VkPipelineLayoutCreateInfo layout_info = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &gpu->set_layouts[n],
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &push,
      };
      if (!vk_check (vkCreatePipelineLayout (gpu->device, &layout_info, NULL,
                                             &gpu->pipeline_layouts[n]),
                     "Creating a pipeline layout", error))
        return FALSE;
    }
  return TRUE;
}

static void
pipeline_free (gpointer data)
{
  g_free (data);
}

AtGpu *
at_gpu_new (const char *selector, GError **error)
{
  g_autoptr (AtGpu) gpu = g_new0 (AtGpu, 1);
  g_autofree VkPhysicalDevice *physicals = NULL;
  g_autoptr (GPtrArray) infos = NULL;
  gboolean validation = env_flag ("ATELIER_VALIDATION");
  int chosen;

  g_mutex_init (&gpu->queue_lock);
  g_mutex_init (&gpu->memory_lock);
  g_mutex_init (&gpu->pipeline_lock);
  g_mutex_init (&gpu->transfer_lock);
  gpu->blocks = g_ptr_array_new ();
  gpu->pipelines = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, pipeline_free);
  gpu->profile = env_flag ("ATELIER_PROFILE");

  if (!create_instance (validation, &gpu->instance, error))
    return NULL;

  if (validation)
    {
      PFN_vkCreateDebugUtilsMessengerEXT create_messenger =
        (PFN_vkCreateDebugUtilsMessengerEXT)
        vkGetInstanceProcAddr (gpu->instance, "vkCreateDebugUtilsMessengerEXT");
      VkDebugUtilsMessengerCreateInfoEXT messenger = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT,
        .pfnUserCallback = on_validation_message,
        .pUserData = gpu,
      };
      if (create_messenger == NULL ||
          !vk_check (create_messenger (gpu->instance, &messenger, NULL, &gpu->messenger),
                     "Installing the validation message handler", error))
        return NULL;
    }

  infos = enumerate_devices (gpu->instance, &physicals, error);
  if (infos == NULL)
    return NULL;
  chosen = choose_device (infos, selector ? selector : g_getenv ("ATELIER_DEVICE"), error);
  if (chosen < 0)
    return NULL;
  gpu->physical = physicals[chosen];
  gpu->info = g_ptr_array_steal_index (infos, chosen);

  if (!create_device (gpu, error) || !create_layouts (gpu, error))
    return NULL;
  return g_steal_pointer (&gpu);
}

static void block_free (AtGpu *gpu, MemoryBlock *block);

void
at_gpu_free (AtGpu *gpu)
{
  if (gpu == NULL)
    return;

  if (gpu->device)
    {
      vkDeviceWaitIdle (gpu->device);
      g_clear_pointer (&gpu->transfer_batch, at_batch_free);
      g_clear_pointer (&gpu->upload_staging, at_gpu_buffer_free);
      g_clear_pointer (&gpu->readback_staging, at_gpu_buffer_free);

      GHashTableIter iter;
      Pipeline *pipeline;
      g_hash_table_iter_init (&iter, gpu->pipelines);
      while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &pipeline))
        vkDestroyPipeline (gpu->device, pipeline->pipeline, NULL);
      for (guint n = 0; n <= AT_GPU_MAX_BINDINGS; n++)
        {
          if (gpu->pipeline_layouts[n])
            vkDestroyPipelineLayout (gpu->device, gpu->pipeline_layouts[n], NULL);
          if (gpu->set_layouts[n])
            vkDestroyDescriptorSetLayout (gpu->device, gpu->set_layouts[n], NULL);
        }
      if (gpu->blocks->len > 0)
        g_warning ("%u GPU memory blocks still in use when the device was closed",
                   gpu->blocks->len);
      while (gpu->blocks->len > 0)
        block_free (gpu, g_ptr_array_index (gpu->blocks, 0));
      vkDestroyDevice (gpu->device, NULL);
    }
  if (gpu->messenger)
    {
      PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger =
        (PFN_vkDestroyDebugUtilsMessengerEXT)
        vkGetInstanceProcAddr (gpu->instance, "vkDestroyDebugUtilsMessengerEXT");
      destroy_messenger (gpu->instance, gpu->messenger, NULL);
    }
  if (gpu->instance)
    vkDestroyInstance (gpu->instance, NULL);

  g_hash_table_unref (gpu->pipelines);
  g_ptr_array_unref (gpu->blocks);
  at_gpu_device_info_free (gpu->info);
  g_mutex_clear (&gpu->queue_lock);
  g_mutex_clear (&gpu->memory_lock);
  g_mutex_clear (&gpu->pipeline_lock);
  g_mutex_clear (&gpu->transfer_lock);
  g_free (gpu);
}

const AtGpuDeviceInfo *
at_gpu_get_info (AtGpu *gpu)
{
  return gpu->info;
}

guint64
at_gpu_get_allocated_bytes (AtGpu *gpu, guint64 *peak)
{
  guint64 bytes;

  g_mutex_lock (&gpu->memory_lock);
  bytes = gpu->device_bytes;
  if (peak)
    *peak = gpu->device_bytes_peak;
  g_mutex_unlock (&gpu->memory_lock);
  return bytes;
}

guint
at_gpu_get_validation_errors (AtGpu *gpu)
{
  return (guint) g_atomic_int_get (&gpu->validation_errors);
}

/* --- Memory ------------------------------------------------------------------- */

static gboolean
find_memory_type (AtGpu *gpu, guint32 type_bits, AtGpuMemoryKind kind, guint32 *index)
{
  /* Preferred property sets per kind, best first. */
  static const VkMemoryPropertyFlags preferences[AT_GPU_MEMORY_N_KINDS][3] = {
    [AT_GPU_MEMORY_DEVICE] = {
      VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0, 0 },
    [AT_GPU_MEMORY_UPLOAD] = {
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0, 0 },
    [AT_GPU_MEMORY_READBACK] = {
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
        VK_MEMORY_PROPERTY_HOST_CACHED_BIT,
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0 },
  };

  for (guint p = 0; p < 3; p++)
    {
      VkMemoryPropertyFlags wanted = preferences[kind][p];
      if (wanted == 0)
        break;
      for (guint i = 0; i < gpu->memory_properties.memoryTypeCount; i++)
        if ((type_bits & (1u << i)) &&
            (gpu->memory_properties.memoryTypes[i].propertyFlags & wanted) == wanted)
          {
            *index = i;
            return TRUE;
          }
    }
  return FALSE;
}

static void
block_free (AtGpu *gpu, MemoryBlock *block)
{
  if (block->mapped)
    vkUnmapMemory (gpu->device, block->memory);
  vkFreeMemory (gpu->device, block->memory, NULL);
  if (block->kind == AT_GPU_MEMORY_DEVICE)
    gpu->device_bytes -= block->size;
  g_ptr_array_remove (gpu->blocks, block);
  g_array_unref (block->free_ranges);
  g_free (block);
}

static MemoryBlock *
block_new (AtGpu *gpu, VkDeviceSize size, guint32 type_index, AtGpuMemoryKind kind,
           GError **error)
{
  VkMemoryAllocateInfo allocate = {
    .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
    .allocationSize = size,
    .memoryTypeIndex = type_index,
  };
  VkDeviceMemory memory;
  VkResult result = vkAllocateMemory (gpu->device, &allocate, NULL, &memory);
  MemoryBlock *block;

  if (result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY)
    {
      g_autofree char *wanted = format_bytes (size);
      g_autofree char *used = format_bytes (gpu->device_bytes);
      g_autofree char *total = format_bytes (gpu->info->device_local_bytes);
      g_set_error (error, AT_ERROR, AT_ERROR_OUT_OF_MEMORY,
                   "Out of %s memory on %s: could not allocate %s more (%s of %s in use "
                   "by Atelier)",
                   kind == AT_GPU_MEMORY_DEVICE ? "GPU" : "host-visible",
                   gpu->info->name, wanted, used, total);
      return NULL;
    }
  if (!vk_check (result, "Allocating GPU memory", error))
    return NULL;

  block = g_new0 (MemoryBlock, 1);
  block->memory = memory;
  block->size = size;
  block->type_index = type_index;
  block->kind = kind;
  block->free_ranges = g_array_new (FALSE, FALSE, sizeof (Range));
  g_array_append_val (block->free_ranges, ((Range) { 0, size }));
  if (kind != AT_GPU_MEMORY_DEVICE)
    {
      result = vkMapMemory (gpu->device, memory, 0, VK_WHOLE_SIZE, 0, &block->mapped);
      if (!vk_check (result, "Mapping GPU memory", error))
        {
          vkFreeMemory (gpu->device, memory, NULL);
          g_array_unref (block->free_ranges);
          g_free (block);
          return NULL;
        }
    }
  if (kind == AT_GPU_MEMORY_DEVICE)
    {
      gpu->device_bytes += size;
      gpu->device_bytes_peak = MAX (gpu->device_bytes_peak, gpu->device_bytes);
    }
  g_ptr_array_add (gpu->blocks, block);
  return block;
}

/* First fit; returns FALSE when no free range can hold size bytes at alignment. */
static gboolean
block_allocate (MemoryBlock *block, VkDeviceSize size, VkDeviceSize alignment, Range *out)
{
  for (guint i = 0; i < block->free_ranges->len; i++)
    {
      Range free_range = g_array_index (block->free_ranges, Range, i);
      VkDeviceSize start = (free_range.offset + alignment - 1) / alignment * alignment;
      VkDeviceSize end = free_range.offset + free_range.size;

      if (start + size > end)
        continue;
      g_array_remove_index (block->free_ranges, i);
      if (start + size < end)
        g_array_insert_val (block->free_ranges, i, ((Range) { start + size, end - start - size }));
      if (start > free_range.offset)
        g_array_insert_val (block->free_ranges, i,
                            ((Range) { free_range.offset, start - free_range.offset }));
      *out = (Range) { start, size };
      block->used += size;
      return TRUE;
    }
  return FALSE;
}

static void
block_release (MemoryBlock *block, Range range)
{
  GArray *ranges = block->free_ranges;
  guint i = 0;

  while (i < ranges->len && g_array_index (ranges, Range, i).offset < range.offset)
    i++;
  g_array_insert_val (ranges, i, range);
  /* Coalesce with the next, then with the previous neighbour. */
  if (i + 1 < ranges->len)
    {
      Range *here = &g_array_index (ranges, Range, i);
      Range *next = &g_array_index (ranges, Range, i + 1);
      if (here->offset + here->size == next->offset)
        {
          here->size += next->size;
          g_array_remove_index (ranges, i + 1);
        }
    }
  if (i > 0)
    {
      Range *prev = &g_array_index (ranges, Range, i - 1);
      Range *here = &g_array_index (ranges, Range, i);
      if (prev->offset + prev->size == here->offset)
        {
          prev->size += here->size;
          g_array_remove_index (ranges, i);
        }
    }
  block->used -= range.size;
}

AtGpuBuffer *
at_gpu_buffer_new (AtGpu *gpu, gsize size, AtGpuMemoryKind kind, GError **error)
{
  VkBufferCreateInfo create = {
    .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
    .size = MAX (size, 4),
    .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
             VK_BUFFER_USAGE_TRANSFER_DST_BIT,
    .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
  };
  VkMemoryRequirements requirements;
  g_autoptr (AtGpuBuffer) buffer = NULL;
  guint32 type_index;
  VkDeviceSize block_size = kind == AT_GPU_MEMORY_DEVICE ? DEVICE_BLOCK_SIZE : HOST_BLOCK_SIZE;
  VkDeviceSize wanted;
  MemoryBlock *block = NULL;

  if (size > gpu->info->max_allocation_size)
    {
      g_autofree char *wanted_text = format_bytes (size);
      g_autofree char *limit = format_bytes (gpu->info->max_allocation_size);
      g_set_error (error, AT_ERROR, AT_ERROR_OUT_OF_MEMORY,
                   "A single GPU buffer of %s is larger than %s allows (%s); it must "
                   "be split", wanted_text, gpu->info->name, limit);
      return NULL;
    }

  buffer = g_new0 (AtGpuBuffer, 1);
  buffer->gpu = gpu;
  buffer->size = size;
  buffer->kind = kind;
  if (!vk_check (vkCreateBuffer (gpu->device, &create, NULL, &buffer->handle),
                 "Creating a GPU buffer", error))
    return NULL;
  vkGetBufferMemoryRequirements (gpu->device, buffer->handle, &requirements);
  if (!find_memory_type (gpu, requirements.memoryTypeBits, kind, &type_index))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "%s has no suitable memory type for %s buffers", gpu->info->name,
                   kind == AT_GPU_MEMORY_DEVICE ? "device" : "host-visible");
      return NULL;
    }
  wanted = (requirements.size + ALLOCATION_GRANULE - 1) / ALLOCATION_GRANULE * ALLOCATION_GRANULE;
  block_size = MIN (block_size, gpu->info->max_allocation_size);

  g_mutex_lock (&gpu->memory_lock);
  if (wanted <= block_size / 2)
    for (guint i = 0; i < gpu->blocks->len && block == NULL; i++)
      {
        MemoryBlock *candidate = g_ptr_array_index (gpu->blocks, i);
        if (candidate->kind == kind && candidate->type_index == type_index &&
            candidate->size == block_size &&
            block_allocate (candidate, wanted, requirements.alignment, &buffer->placement))
          block = candidate;
      }
  if (block == NULL)
    {
      /* Large buffers get a block of their own, freed with them. */
      VkDeviceSize new_size = wanted <= block_size / 2 ? block_size : wanted;
      block = block_new (gpu, new_size, type_index, kind, error);
      if (block)
        block_allocate (block, wanted, requirements.alignment, &buffer->placement);
    }
  g_mutex_unlock (&gpu->memory_lock);
  if (block == NULL)
    return NULL;

  buffer->block = block;
  if (!vk_check (vkBindBufferMemory (gpu->device, buffer->handle, block->memory,
                                     buffer->placement.offset),
                 "Binding GPU memory", error))
    return NULL;
  return g_steal_pointer (&buffer);
}

void
at_gpu_buffer_free (AtGpuBuffer *buffer)
{
  AtGpu *gpu;

  if (buffer == NULL)
    return;
  gpu = buffer->gpu;
  if (buffer->handle)
    vkDestroyBuffer (gpu->device, buffer->handle, NULL);
  if (buffer->block)
    {
      g_mutex_lock (&gpu->memory_lock);
      block_release (buffer->block, buffer->placement);
      /* Give memory back to the driver as soon as a block is empty: users watch
       * the memory meter after unloading a model. */
      if (buffer->block->used == 0)
        block_free (gpu, buffer->block);
      g_mutex_unlock (&gpu->memory_lock);
    }
  g_free (buffer);
}

gsize
at_gpu_buffer_get_size (const AtGpuBuffer *buffer)
{
  return buffer->size;
}

VkBuffer
at_gpu_buffer_get_handle (const AtGpuBuffer *buffer)
{
  return buffer->handle;
}

void *
at_gpu_buffer_get_mapped (const AtGpuBuffer *buffer)
{
  if (buffer->block == NULL || buffer->block->mapped == NULL)
    return NULL;
  return (char *) buffer->block->mapped + buffer->placement.offset;
}

/* --- Pipelines ------------------------------------------------------------------ */

static int
compare_blob_name (const void *key, const void *element)
{
  return strcmp (key, ((const AtShaderBlob *) element)->name);
}

static Pipeline *
get_pipeline (AtGpu *gpu, const char *shader, const guint32 *spec, guint n_spec,
              guint n_bindings, GError **error)
{
  char key[256];
  int len = g_snprintf (key, sizeof key, "%s|%u", shader, n_bindings);
  Pipeline *pipeline;

  for (guint i = 0; i < n_spec && len < (int) sizeof key; i++)
    len += g_snprintf (key + len, sizeof key - len, ",%u", spec[i]);

  g_mutex_lock (&gpu->pipeline_lock);
  pipeline = g_hash_table_lookup (gpu->pipelines, key);
  if (pipeline == NULL)
    {
      const AtShaderBlob *blob = bsearch (shader, at_shader_blobs, at_n_shader_blobs,
                                          sizeof (AtShaderBlob), compare_blob_name);
      VkSpecializationMapEntry entries[AT_GPU_MAX_SPEC_CONSTANTS];
      VkShaderModule module;
      VkPipeline handle;

      if (blob == NULL)
        {
          g_set_error (error, AT_ERROR, AT_ERROR_FAILED,
                       "No shader variant named “%s” is built into Atelier", shader);
          goto out;
        }
      for (guint i = 0; i < n_spec; i++)
        entries[i] = (VkSpecializationMapEntry) { i, i * sizeof (guint32), sizeof (guint32) };
      VkSpecializationInfo spec_info = {
        .mapEntryCount = n_spec,
        .pMapEntries = entries,
        .dataSize = n_spec * sizeof (guint32),
        .pData = spec,
      };
      VkShaderModuleCreateInfo module_info = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = blob->size,
        .pCode = blob->code,
      };
      if (!vk_check (vkCreateShaderModule (gpu->device, &module_info, NULL, &module),
                     "Creating a shader module", error))
        goto out;
      VkComputePipelineCreateInfo pipeline_info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {
          .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
          .stage = VK_SHADER_STAGE_COMPUTE_BIT,
          .module = module,
          .pName = "main",
          .pSpecializationInfo = n_spec ? &spec_info : NULL,
        },
        .layout = gpu->pipeline_layouts[n_bindings],
      };
      VkResult result = vkCreateComputePipelines (gpu->device, VK_NULL_HANDLE, 1,
                                                  &pipeline_info, NULL, &handle);
      vkDestroyShaderModule (gpu->device, module, NULL);
      if (!vk_check (result, "Creating a compute pipeline", error))
        goto out;
      pipeline = g_new0 (Pipeline, 1);
      pipeline->pipeline = handle;
      pipeline->n_bindings = n_bindings;
      pipeline->name = blob->name;
      g_hash_table_insert (gpu->pipelines, g_strdup (key), pipeline);
    }
out:
  g_mutex_unlock (&gpu->pipeline_lock);
  return pipeline;
}

/* --- Batches --------------------------------------------------------------------- */

AtBatch *
at_batch_new (AtGpu *gpu)
{
  AtBatch *batch = g_new0 (AtBatch, 1);
  VkCommandPoolCreateInfo pool_info = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
    .flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT,
    .queueFamilyIndex = gpu->queue_family,
  };
  VkFenceCreateInfo fence_info = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
  g_autoptr (GError) error = NULL;

  batch->gpu = gpu;
  batch->pending = g_array_new (FALSE, FALSE, sizeof (Access));
  batch->labels = g_ptr_array_new ();
  batch->timings = g_array_new (FALSE, FALSE, sizeof (AtDispatchTime));
  batch->timing = gpu->profile;
  batch->scratch = g_ptr_array_new_with_free_func ((GDestroyNotify) at_gpu_buffer_free);

  if (!vk_check (vkCreateCommandPool (gpu->device, &pool_info, NULL, &batch->pool),
                 "Creating a command pool", &error) ||
      !vk_check (vkCreateFence (gpu->device, &fence_info, NULL, &batch->fence),
                 "Creating a fence", &error))
    {
      at_batch_take_error (batch, g_steal_pointer (&error));
      return batch;
    }
  VkCommandBufferAllocateInfo cmd_info = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
    .commandPool = batch->pool,
    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
    .commandBufferCount = 1,
  };
  if (!vk_check (vkAllocateCommandBuffers (gpu->device, &cmd_info, &batch->cmd),
                 "Allocating a command buffer", &error))
    at_batch_take_error (batch, g_steal_pointer (&error));
  return batch;
}

void
at_batch_free (AtBatch *batch)
{
  VkDevice device;

  if (batch == NULL)
    return;
  device = batch->gpu->device;
  if (batch->recording)
    vkEndCommandBuffer (batch->cmd);
  if (batch->query_pool)
    vkDestroyQueryPool (device, batch->query_pool, NULL);
  if (batch->fence)
    vkDestroyFence (device, batch->fence, NULL);
  if (batch->pool)
    vkDestroyCommandPool (device, batch->pool, NULL);
  g_clear_error (&batch->error);
  g_ptr_array_unref (batch->scratch);
  g_array_unref (batch->pending);
  g_ptr_array_unref (batch->labels);
  g_array_unref (batch->timings);
  g_free (batch);
}

AtGpu *
at_batch_get_gpu (AtBatch *batch)
{
  return batch->gpu;
}

void
at_batch_take_error (AtBatch *batch, GError *error)
{
  if (batch->error == NULL)
    batch->error = error;
  else
    g_error_free (error);
}

gboolean
at_batch_has_error (AtBatch *batch)
{
  return batch->error != NULL;
}

void
at_batch_set_timing (AtBatch *batch, gboolean timing)
{
  batch->timing = timing || batch->gpu->profile;
}

static void
full_barrier (VkCommandBuffer cmd)
{
  VkMemoryBarrier barrier = {
    .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
    .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
    .dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT,
  };
  vkCmdPipelineBarrier (cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                        VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, 0, 1, &barrier, 0, NULL, 0, NULL);
}

static void
write_timestamp (AtBatch *batch, const char *label)
{
  if (batch->n_queries >= batch->query_capacity)
    return;
  vkCmdWriteTimestamp (batch->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT,
                       batch->query_pool, batch->n_queries++);
  if (label)
    g_ptr_array_add (batch->labels, (gpointer) label);
}

/* Starts recording if needed. Every command buffer opens with a full barrier so that
 * it sees what earlier submissions (uploads, the previous forward pass) wrote. */
static gboolean
ensure_recording (AtBatch *batch)
{
  VkCommandBufferBeginInfo begin = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
  };
  g_autoptr (GError) error = NULL;

  if (batch->error)
    return FALSE;
  if (batch->recording)
    return TRUE;
  if (!vk_check (vkBeginCommandBuffer (batch->cmd, &begin), "Recording commands", &error))
    {
      at_batch_take_error (batch, g_steal_pointer (&error));
      return FALSE;
    }
  batch->recording = TRUE;
  full_barrier (batch->cmd);

  if (batch->timing && batch->gpu->info->timestamps)
    {
      if (batch->query_pool == VK_NULL_HANDLE)
        {
          VkQueryPoolCreateInfo query_info = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = INITIAL_QUERY_CAPACITY,
          };
          if (vkCreateQueryPool (batch->gpu->device, &query_info, NULL,
                                 &batch->query_pool) == VK_SUCCESS)
            batch->query_capacity = INITIAL_QUERY_CAPACITY;
        }
      if (batch->query_pool)
        {
          vkCmdResetQueryPool (batch->cmd, batch->query_pool, 0, batch->query_capacity);
          write_timestamp (batch, NULL);
        }
    }
  return TRUE;
}

static gboolean
ranges_overlap (const Access *a, const Access *b)
{
  return a->buffer == b->buffer && a->offset < b->offset + b->size &&
         b->offset < a->offset + a->size;
}

/* Inserts a barrier when one of accesses conflicts with what the batch did since the
 * last barrier (read after write, write after read, write after write). */
static void
track_accesses (AtBatch *batch, const Access *accesses, guint n)
{
  gboolean conflict = batch->timing; /* timing wants each command on its own */

  for (guint i = 0; i < n && !conflict; i++)
    for (guint j = 0; j < batch->pending->len && !conflict; j++)
      {
        const Access *earlier = &g_array_index (batch->pending, Access, j);
        if ((earlier->write || accesses[i].write) && ranges_overlap (earlier, &accesses[i]))
          conflict = TRUE;
      }
  if (conflict)
    {
      full_barrier (batch->cmd);
      g_array_set_size (batch->pending, 0);
    }
  g_array_append_vals (batch->pending, accesses, n);
}

void
at_batch_dispatch (AtBatch *batch, const char *shader, const guint32 *spec, guint n_spec,
                   const AtBinding *bindings, guint n_bindings, const void *push,
                   guint push_size, guint32 groups_x, guint32 groups_y, guint32 groups_z)
{
  AtGpu *gpu = batch->gpu;
  const AtGpuDeviceInfo *info = gpu->info;
  VkDescriptorBufferInfo buffer_infos[AT_GPU_MAX_BINDINGS];
  VkWriteDescriptorSet writes[AT_GPU_MAX_BINDINGS];
  Access accesses[AT_GPU_MAX_BINDINGS];
  GError *error = NULL;
  Pipeline *pipeline;

  g_return_if_fail (n_bindings <= AT_GPU_MAX_BINDINGS);
  g_return_if_fail (n_spec <= AT_GPU_MAX_SPEC_CONSTANTS);
  g_return_if_fail (push_size <= AT_GPU_PUSH_CONSTANT_SIZE);

  if (!ensure_recording (batch))
    return;
  if (groups_x == 0 || groups_y == 0 || groups_z == 0)
    return;
  if (groups_x > info->max_workgroup_count[0] || groups_y > info->max_workgroup_count[1] ||
      groups_z > info->max_workgroup_count[2])
    {
      at_batch_take_error (batch, g_error_new (AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                                               "%s: %u×%u×%u workgroups exceed the "
                                               "device's limit", shader, groups_x,
                                               groups_y, groups_z));
      return;
    }

  for (guint i = 0; i < n_bindings; i++)
    {
      const AtBinding *b = &bindings[i];
      if (b->range > info->max_storage_buffer_range ||
          b->offset % info->min_storage_offset_alignment != 0 ||
          b->offset + b->range > b->buffer->size || b->range == 0)
        {
          at_batch_take_error (batch, g_error_new (AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                                                   "%s: binding %u (offset %zu, %zu "
                                                   "bytes) is outside its buffer, "
                                                   "misaligned or past the device's "
                                                   "storage buffer range", shader, i,
                                                   b->offset, b->range));
          return;
        }
      buffer_infos[i] = (VkDescriptorBufferInfo) {
        .buffer = b->buffer->handle,
        .offset = b->offset,
        .range = b->range,
      };
      writes[i] = (VkWriteDescriptorSet) {
        .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
        .dstBinding = i,
        .descriptorCount = 1,
        .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
        .pBufferInfo = &buffer_infos[i],
      };
      accesses[i] = (Access) { b->buffer->handle, b->offset, b->range, b->write };
    }

  pipeline = get_pipeline (gpu, shader, spec, n_spec, n_bindings, &error);
  if (pipeline == NULL)
    {
      at_batch_take_error (batch, error);
      return;
    }

  track_accesses (batch, accesses, n_bindings);
  vkCmdBindPipeline (batch->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline->pipeline);
  if (n_bindings > 0)
    gpu->cmd_push_descriptor_set (batch->cmd, VK_PIPELINE_BIND_POINT_COMPUTE,
                                  gpu->pipeline_layouts[n_bindings], 0, n_bindings, writes);
  if (push_size > 0)
    vkCmdPushConstants (batch->cmd, gpu->pipeline_layouts[n_bindings],
                        VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
  vkCmdDispatch (batch->cmd, groups_x, groups_y, groups_z);
  if (batch->query_pool)
    write_timestamp (batch, pipeline->name);
}

void
at_batch_dispatch_1d (AtBatch *batch, const char *shader, const guint32 *spec,
                      guint n_spec, const AtBinding *bindings, guint n_bindings,
                      const void *push, guint push_size, guint64 n_groups)
{
  guint64 max_x = batch->gpu->info->max_workgroup_count[0];
  guint64 x = MIN (n_groups, max_x);
  guint64 y = x ? (n_groups + x - 1) / x : 0;

  at_batch_dispatch (batch, shader, spec, n_spec, bindings, n_bindings, push, push_size,
                     (guint32) x, (guint32) y, 1);
}

void
at_batch_copy (AtBatch *batch, const AtGpuBuffer *src, gsize src_offset,
               const AtGpuBuffer *dst, gsize dst_offset, gsize size)
{
  Access accesses[2] = {
    { src->handle, src_offset, size, FALSE },
    { dst->handle, dst_offset, size, TRUE },
  };
  VkBufferCopy region = { src_offset, dst_offset, size };

  if (size == 0 || !ensure_recording (batch))
    return;
  track_accesses (batch, accesses, 2);
  vkCmdCopyBuffer (batch->cmd, src->handle, dst->handle, 1, &region);
  if (batch->query_pool)
    write_timestamp (batch, "copy");
}

static void
print_profile (AtBatch *batch)
{
  g_autoptr (GHashTable) totals = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) order = g_ptr_array_new ();

  for (guint i = 0; i < batch->timings->len; i++)
    {
      AtDispatchTime *t = &g_array_index (batch->timings, AtDispatchTime, i);
      AtDispatchTime *sum = g_hash_table_lookup (totals, t->label);
      if (sum == NULL)
        {
          sum = g_new0 (AtDispatchTime, 1);
          sum->label = t->label;
          g_hash_table_insert (totals, (gpointer) t->label, sum);
          g_ptr_array_add (order, sum);
        }
      sum->ms += t->ms;
    }
  g_printerr ("atelier profile: %u commands, %.3f ms on the GPU\n", batch->timings->len,
              batch->total_ms);
  for (guint i = 0; i < order->len; i++)
    {
      AtDispatchTime *sum = g_ptr_array_index (order, i);
      g_printerr ("  %-32s %10.3f ms\n", sum->label, sum->ms);
    }
  g_ptr_array_set_free_func (order, g_free);
}

static void
collect_timings (AtBatch *batch)
{
  g_autofree guint64 *stamps = NULL;
  double period = batch->gpu->info->timestamp_period_ns;

  g_array_set_size (batch->timings, 0);
  batch->total_ms = 0;
  if (batch->query_pool == VK_NULL_HANDLE || batch->n_queries < 2)
    return;
  stamps = g_new0 (guint64, batch->n_queries);
  if (vkGetQueryPoolResults (batch->gpu->device, batch->query_pool, 0, batch->n_queries,
                             batch->n_queries * sizeof (guint64), stamps, sizeof (guint64),
                             VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) != VK_SUCCESS)
    return;
  for (guint i = 1; i < batch->n_queries; i++)
    {
      AtDispatchTime t = {
        .label = g_ptr_array_index (batch->labels, i - 1),
        .ms = (double) (stamps[i] - stamps[i - 1]) * period * 1e-6,
      };
      g_array_append_val (batch->timings, t);
    }
  batch->total_ms = (double) (stamps[batch->n_queries - 1] - stamps[0]) * period * 1e-6;
  if (batch->gpu->profile)
    print_profile (batch);
}

AtGpuBuffer *
at_batch_get_scratch (AtBatch *batch, gsize size, gsize *offset)
{
  gsize alignment = batch->gpu->info->min_storage_offset_alignment;
  gsize start = (batch->scratch_used + alignment - 1) / alignment * alignment;
  AtGpuBuffer *last = batch->scratch->len
    ? g_ptr_array_index (batch->scratch, batch->scratch->len - 1) : NULL;
  GError *error = NULL;

  if (batch->error)
    return NULL;
  batch->scratch_demand += size + alignment;
  if (last == NULL || start + size > last->size)
    {
      gsize wanted = MAX (MAX (size, batch->scratch_peak), (gsize) 1 << 20);
      last = at_gpu_buffer_new (batch->gpu, wanted, AT_GPU_MEMORY_DEVICE, &error);
      if (last == NULL)
        {
          at_batch_take_error (batch, error);
          return NULL;
        }
      g_ptr_array_add (batch->scratch, last);
      start = 0;
    }
  batch->scratch_used = start + size;
  *offset = start;
  return last;
}

static void
reset_recording (AtBatch *batch)
{
  /* A recording that needed more than one scratch buffer gets one buffer big enough
   * for all of it next time. */
  batch->scratch_peak = MAX (batch->scratch_peak, batch->scratch_demand);
  if (batch->scratch->len > 1)
    g_ptr_array_set_size (batch->scratch, 0);
  batch->scratch_used = 0;
  batch->scratch_demand = 0;

  if (batch->recording)
    vkEndCommandBuffer (batch->cmd);
  vkResetCommandPool (batch->gpu->device, batch->pool, 0);
  batch->recording = FALSE;
  batch->n_queries = 0;
  g_ptr_array_set_size (batch->labels, 0);
  g_array_set_size (batch->pending, 0);
}

gboolean
at_batch_run (AtBatch *batch, GError **error)
{
  AtGpu *gpu = batch->gpu;
  VkResult result;

  if (batch->error)
    {
      g_propagate_error (error, g_steal_pointer (&batch->error));
      reset_recording (batch);
      return FALSE;
    }
  if (!batch->recording)
    return TRUE;

  /* Make the results visible to the host, which reads them after the fence. */
  VkMemoryBarrier to_host = {
    .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
    .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
    .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
  };
  vkCmdPipelineBarrier (batch->cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                        VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &to_host, 0, NULL, 0, NULL);
  result = vkEndCommandBuffer (batch->cmd);
  batch->recording = FALSE;
  if (!vk_check (result, "Recording commands", error))
    {
      reset_recording (batch);
      return FALSE;
    }

  VkSubmitInfo submit = {
    .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
    .commandBufferCount = 1,
    .pCommandBuffers = &batch->cmd,
  };
  g_mutex_lock (&gpu->queue_lock);
  result = vkQueueSubmit (gpu->queue, 1, &submit, batch->fence);
  g_mutex_unlock (&gpu->queue_lock);
  if (result == VK_SUCCESS)
    result = vkWaitForFences (gpu->device, 1, &batch->fence, VK_TRUE, G_MAXUINT64);
  if (!vk_check (result, "Running GPU commands", error))
    {
      reset_recording (batch);
      return FALSE;
    }
  vkResetFences (gpu->device, 1, &batch->fence);
  collect_timings (batch);
  reset_recording (batch);
  return TRUE;
}

const AtDispatchTime *
at_batch_get_timings (AtBatch *batch, guint *n_timings)
{
  *n_timings = batch->timings->len;
  return (const AtDispatchTime *) batch->timings->data;
}

double
at_batch_get_total_ms (AtBatch *batch)
{
  return batch->total_ms;
}

/* --- Transfers ------------------------------------------------------------------- */

static AtBatch *
transfer_batch (AtGpu *gpu)
{
  if (gpu->transfer_batch == NULL)
    gpu->transfer_batch = at_batch_new (gpu);
  return gpu->transfer_batch;
}

static gboolean
ensure_staging (AtGpu *gpu, AtGpuBuffer **staging, AtGpuMemoryKind kind, GError **error)
{
  if (*staging == NULL)
    *staging = at_gpu_buffer_new (gpu, STAGING_SIZE, kind, error);
  return *staging != NULL;
}

gboolean
at_gpu_upload (AtGpu *gpu, AtGpuBuffer *dst, gsize dst_offset, const void *src, gsize size,
               GError **error)
{
  gboolean ok = TRUE;

  g_return_val_if_fail (dst_offset + size <= dst->size, FALSE);
  if (dst->kind == AT_GPU_MEMORY_UPLOAD)
    {
      memcpy ((char *) at_gpu_buffer_get_mapped (dst) + dst_offset, src, size);
      return TRUE;
    }

  g_mutex_lock (&gpu->transfer_lock);
  ok = ensure_staging (gpu, &gpu->upload_staging, AT_GPU_MEMORY_UPLOAD, error);
  for (gsize done = 0; ok && done < size; done += STAGING_SIZE)
    {
      gsize n = MIN (STAGING_SIZE, size - done);
      memcpy (at_gpu_buffer_get_mapped (gpu->upload_staging), (const char *) src + done, n);
      at_batch_copy (transfer_batch (gpu), gpu->upload_staging, 0, dst, dst_offset + done, n);
      ok = at_batch_run (transfer_batch (gpu), error);
    }
  g_mutex_unlock (&gpu->transfer_lock);
  return ok;
}

gboolean
at_gpu_download (AtGpu *gpu, AtGpuBuffer *src, gsize src_offset, void *dst, gsize size,
                 GError **error)
{
  gboolean ok = TRUE;

  g_return_val_if_fail (src_offset + size <= src->size, FALSE);
  g_mutex_lock (&gpu->transfer_lock);
  ok = ensure_staging (gpu, &gpu->readback_staging, AT_GPU_MEMORY_READBACK, error);
  for (gsize done = 0; ok && done < size; done += STAGING_SIZE)
    {
      gsize n = MIN (STAGING_SIZE, size - done);
      at_batch_copy (transfer_batch (gpu), src, src_offset + done, gpu->readback_staging, 0, n);
      ok = at_batch_run (transfer_batch (gpu), error);
      if (ok)
        memcpy ((char *) dst + done, at_gpu_buffer_get_mapped (gpu->readback_staging), n);
    }
  g_mutex_unlock (&gpu->transfer_lock);
  return ok;
}

gboolean
at_gpu_fill (AtGpu *gpu, AtGpuBuffer *dst, gsize offset, gsize size, guint32 word,
             GError **error)
{
  AtBatch *batch;
  Access access = { dst->handle, offset, size, TRUE };
  gboolean ok;

  g_return_val_if_fail (offset % 4 == 0 && size % 4 == 0 && offset + size <= dst->size,
                        FALSE);
  g_mutex_lock (&gpu->transfer_lock);
  batch = transfer_batch (gpu);
  if (ensure_recording (batch))
    {
      track_accesses (batch, &access, 1);
      vkCmdFillBuffer (batch->cmd, dst->handle, offset, size, word);
    }
  ok = at_batch_run (batch, error);
  g_mutex_unlock (&gpu->transfer_lock);
  return ok;
}
