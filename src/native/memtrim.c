/*
 * memtrim: gives the C heap's free memory back to the kernel (glibc's
 * malloc_trim), for the daemon's resident size (src/runtime/malloc-trim.ts;
 * docs/native.md).
 *
 * glibc keeps what the program frees in its arenas for the next malloc, and
 * returns it to the kernel only from the top of an arena. Buffers, sockets and
 * V8's own scratch memory come and go there at the pace of the health checks,
 * and the holes they leave stay resident: in the lab guest at 10,000 servers
 * the arenas held 36 to 48 MB, with 11 to 20 in use. malloc_trim(0) walks every
 * arena's free chunks and tells the kernel (madvise MADV_DONTNEED) it may have
 * their whole pages back.
 *
 *   stats(): { heapBytes, inUseBytes, freeBytes } | null
 *       mallinfo2(), all arenas: the memory glibc got from the kernel for the
 *       C heap (arenas and chunks of their own mapping), what of it is
 *       allocated, and what is free in the arenas (of which trimming returns
 *       the whole pages). null where the C library is not glibc.
 *   trim(): Promise<boolean>
 *       malloc_trim(0) on libuv's thread pool (it takes each arena's lock in
 *       turn, never the event loop); resolves whether any memory was returned.
 *       Resolves false where the C library is not glibc.
 *   topPad(bytes): boolean
 *       mallopt(M_TOP_PAD, bytes): how much more than asked an arena takes
 *       from the kernel when it grows, and keeps when it shrinks (glibc's
 *       default 128 KiB). The daemon raises it while it starts: V8's helper
 *       threads compile and collect then in scratch memory that an arena gave
 *       back and took again at every job, each page a fresh fault (dear in the
 *       lab guest). false where the C library is not glibc or refuses it.
 *
 * Built by packaging/build-native.ts: cc -Wall -Wextra -Werror -O2 -fPIC -shared.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <stddef.h>
#include <stdlib.h>

#ifdef __GLIBC__
#include <malloc.h>
/* mallinfo2 (size_t fields) since glibc 2.33; before, mallinfo's ints, right below 2 GiB. */
#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33)
#define MALLINFO mallinfo2
#define MALLINFO_T struct mallinfo2
#else
#define MALLINFO mallinfo
#define MALLINFO_T struct mallinfo
#endif
#endif

static napi_value set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value number;
  if (napi_create_double(env, value, &number) != napi_ok) return NULL;
  if (napi_set_named_property(env, object, name, number) != napi_ok) return NULL;
  return object;
}

static napi_value stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#ifdef __GLIBC__
  MALLINFO_T mi = MALLINFO();
  if (napi_create_object(env, &result) != napi_ok) return NULL;
  /* arena: bytes of the arenas (brk and their own mappings); hblkhd: chunks mapped on their own. */
  if (set_number(env, result, "heapBytes", (double)(size_t)mi.arena + (double)(size_t)mi.hblkhd) == NULL) return NULL;
  if (set_number(env, result, "inUseBytes", (double)(size_t)mi.uordblks + (double)(size_t)mi.hblkhd) == NULL) return NULL;
  if (set_number(env, result, "freeBytes", (double)(size_t)mi.fordblks) == NULL) return NULL;
#else
  if (napi_get_null(env, &result) != napi_ok) return NULL;
#endif
  return result;
}

struct trim_work {
  napi_async_work work;
  napi_deferred deferred;
  int released;
};

static void trim_execute(napi_env env, void *data) {
  (void)env;
  struct trim_work *w = data;
#ifdef __GLIBC__
  w->released = malloc_trim(0);
#else
  w->released = 0;
#endif
}

static void trim_complete(napi_env env, napi_status status, void *data) {
  struct trim_work *w = data;
  napi_value result;
  if (napi_get_boolean(env, status == napi_ok && w->released != 0, &result) == napi_ok) napi_resolve_deferred(env, w->deferred, result);
  napi_delete_async_work(env, w->work);
  free(w);
}

static void reject(napi_env env, napi_deferred deferred, const char *message) {
  napi_value text, error;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text) == napi_ok && napi_create_error(env, NULL, text, &error) == napi_ok)
    napi_reject_deferred(env, deferred, error);
}

static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value promise, name;
  struct trim_work *w = calloc(1, sizeof *w);
  if (w == NULL) {
    napi_throw_error(env, "ENOMEM", "memtrim.trim: out of memory");
    return NULL;
  }
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
    free(w);
    return NULL;
  }
  if (napi_create_string_utf8(env, "pybal:malloc_trim", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, trim_execute, trim_complete, w, &w->work) != napi_ok) {
    reject(env, w->deferred, "memtrim.trim: cannot make the work");
    free(w);
  } else if (napi_queue_async_work(env, w->work) != napi_ok) {
    napi_delete_async_work(env, w->work);
    reject(env, w->deferred, "memtrim.trim: cannot queue the work");
    free(w);
  }
  return promise;
}

static napi_value top_pad(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  double bytes = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_double(env, argv[0], &bytes) != napi_ok || !(bytes >= 0 && bytes <= 1073741824.0)) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "memtrim.topPad: bytes must be a number from 0 to 1 GiB");
    return NULL;
  }
  int done = 0;
#ifdef __GLIBC__
  done = mallopt(M_TOP_PAD, (int)bytes);
#endif
  if (napi_get_boolean(env, done != 0, &result) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor properties[] = {
    { "stats", NULL, stats, NULL, NULL, NULL, napi_enumerable, NULL },
    { "trim", NULL, trim, NULL, NULL, NULL, napi_enumerable, NULL },
    { "topPad", NULL, top_pad, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok) return NULL;
  return exports;
}
