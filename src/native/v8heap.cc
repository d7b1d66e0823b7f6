/*
 * v8heap: asks V8 to keep this thread's JS heap small rather than fast
 * (src/runtime/heap-mode.ts; docs/native.md).
 *
 *   preferMemory(): boolean
 *       v8::Isolate::IsolateInBackgroundNotification() on the calling
 *       thread's isolate: V8's "memory savings mode" (its header: a smaller
 *       footprint for some runtime performance); false where the thread has
 *       no isolate. The way V8 offers to favour memory for one isolate: its
 *       flags (--optimize-for-size and the like) are the whole process's,
 *       and a notification of memory pressure lasts one collection. Nothing
 *       undoes it here: a thread that asks keeps it.
 *
 * The only C++ among pybal's addons, and the only one that calls V8's own
 * API rather than Node-API's: V8 has no C interface, and Node-API no such
 * call. Two functions of the public API, by their header; an addon built
 * against one Node's headers and loaded by another whose V8 lacks them fails
 * to load (an undefined symbol), which heap-mode.ts reports as a reason.
 *
 * Built by packaging/build-native.ts: c++ -std=c++17 -fno-exceptions -fno-rtti
 * -Wall -Wextra -Werror -O2 -fPIC -shared, Node's headers as system headers.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <v8.h>

static napi_value prefer_memory(napi_env env, napi_callback_info info) {
  (void)info;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  napi_value result;
  if (napi_get_boolean(env, isolate != nullptr, &result) != napi_ok) return nullptr;
  if (isolate != nullptr) isolate->IsolateInBackgroundNotification();
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "preferMemory", NAPI_AUTO_LENGTH, prefer_memory, nullptr, &fn) != napi_ok) return nullptr;
  if (napi_set_named_property(env, exports, "preferMemory", fn) != napi_ok) return nullptr;
  return exports;
}
