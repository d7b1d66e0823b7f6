/*
 * tcpcheck: the plain TCP connection of an HTTP check (ProxyFetch over http://
 * to a server's own address), on libuv directly, without a net.Socket
 * (src/monitors/native-fetch.ts; docs/native.md).
 *
 * A net.Socket is about 1.3 KB of JS objects (the socket, its stream states,
 * its event table, its handle's wrapper), built and torn down through Node's
 * stream machinery at every check, 1,000 times a second at 10,000 servers.
 * Here a connection is a small C struct and a number; JS sees one callback for
 * every connection's events, with the bytes in one shared buffer.
 *
 *   init(callback, buffer): void
 *       Once per thread. callback(id, event, value) is called for every
 *       connection's events (EVENT_* below); buffer is where every read lands:
 *       the callback must take what it keeps before it returns.
 *   open(address, port, family, request): number
 *       Connects to address:port (an IPv4 or IPv6 literal, family 4 or 6) and,
 *       once connected, writes request (copied here) and reads until the end
 *       or close(). Returns the connection's id (0 or more; an id is reused
 *       once its connection is closed), or a negative libuv error code when
 *       the connect could not even start (EINVAL for a bad address).
 *   close(id): void
 *       Closes the connection (close(2): a FIN, or an RST with unread data)
 *       and drops its events. Closing an id that is closed is a no-op.
 *
 * Events: EVENT_DATA (value: bytes in the buffer), EVENT_END (the server's
 * FIN), EVENT_CONNECT_ERROR, EVENT_WRITE_ERROR, EVENT_READ_ERROR (value: the
 * libuv error code, negative). After an error or the end the connection stays
 * open until close().
 *
 * The thread may end with connections open: an async cleanup hook closes them
 * and the thread's loop runs their close callbacks before it is closed.
 *
 * Built by packaging/build-native.ts: cc -Wall -Wextra -Werror -O2 -fPIC -shared.
 * libuv's functions are the node binary's own.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { EVENT_DATA = 1, EVENT_END = 2, EVENT_CONNECT_ERROR = 3, EVENT_WRITE_ERROR = 4, EVENT_READ_ERROR = 5 };

struct addon;

struct conn {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  struct addon *addon;
  int32_t id;
  int closing;
  size_t length;
  char request[];
};

struct addon {
  napi_env env;
  uv_loop_t *loop;
  napi_ref callback;
  napi_ref buffer;
  char *base;
  size_t size;
  napi_async_context context;
  /* Connections by id; free ids are kept in a stack. */
  struct conn **slots;
  int32_t capacity;
  int32_t *free_ids;
  int32_t free_count;
  int32_t used;
  /* Connections not yet through their close callback. */
  int32_t open;
  napi_async_cleanup_hook_handle cleanup;
  /* The environment is going: no more calls into JS. */
  int tearing_down;
  /* The instance data's finalizer has run: the last close callback frees this. */
  int finalized;
};

static void free_addon(struct addon *a) {
  free(a->slots);
  free(a->free_ids);
  free(a);
}

static void emit(struct conn *c, int event, double value) {
  struct addon *a = c->addon;
  if (c->closing || a->tearing_down || a->callback == NULL) return;
  napi_env env = a->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, recv, argv[3], result;
  if (napi_get_reference_value(env, a->callback, &callback) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, c->id, &argv[0]) == napi_ok && napi_create_int32(env, event, &argv[1]) == napi_ok &&
      napi_create_double(env, value, &argv[2]) == napi_ok) {
    if (napi_make_callback(env, a->context, recv, callback, 3, argv, &result) == napi_pending_exception) {
      /* As Node does for its own callbacks: the thread's uncaughtException. */
      napi_value error;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_close(uv_handle_t *handle) {
  struct conn *c = handle->data;
  struct addon *a = c->addon;
  if (c->id >= 0) {
    a->slots[c->id] = NULL;
    a->free_ids[a->free_count++] = c->id;
  }
  free(c);
  a->open--;
  if (a->open == 0 && a->tearing_down && a->cleanup != NULL) {
    napi_async_cleanup_hook_handle cleanup = a->cleanup;
    a->cleanup = NULL;
    napi_remove_async_cleanup_hook(cleanup);
  }
  if (a->open == 0 && a->finalized) free_addon(a);
}

static void close_conn(struct conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct conn *c = handle->data;
  buf->base = c->addon->base;
  buf->len = c->addon->size;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct conn *c = stream->data;
  if (nread > 0) {
    emit(c, EVENT_DATA, (double)nread);
  } else if (nread < 0) {
    uv_read_stop(stream);
    emit(c, nread == UV_EOF ? EVENT_END : EVENT_READ_ERROR, nread == UV_EOF ? 0 : (double)nread);
  }
}

static void on_write(uv_write_t *req, int status) {
  struct conn *c = req->data;
  if (status < 0) emit(c, EVENT_WRITE_ERROR, status);
}

static void on_connect(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  if (c->closing) return;
  if (status < 0) {
    emit(c, EVENT_CONNECT_ERROR, status);
    return;
  }
  uv_buf_t buf = uv_buf_init(c->request, (unsigned int)c->length);
  int err = uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
  if (err < 0) {
    emit(c, EVENT_WRITE_ERROR, err);
    return;
  }
  /* The write callback may have closed it (it does not run synchronously, but be safe). */
  if (c->closing) return;
  err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (err < 0) emit(c, EVENT_READ_ERROR, err);
}

static struct addon *get_addon(napi_env env) {
  struct addon *a = NULL;
  if (napi_get_instance_data(env, (void **)&a) != napi_ok || a == NULL) {
    napi_throw_error(env, "ERR_TCPCHECK", "tcpcheck: no instance data");
    return NULL;
  }
  return a;
}

static int take_id(struct addon *a) {
  if (a->free_count > 0) return a->free_ids[--a->free_count];
  if (a->used == a->capacity) {
    int32_t capacity = a->capacity == 0 ? 256 : a->capacity * 2;
    struct conn **slots = realloc(a->slots, (size_t)capacity * sizeof *slots);
    if (slots == NULL) return -1;
    a->slots = slots;
    int32_t *free_ids = realloc(a->free_ids, (size_t)capacity * sizeof *free_ids);
    if (free_ids == NULL) return -1;
    a->free_ids = free_ids;
    a->capacity = capacity;
  }
  return a->used++;
}

static napi_value init(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  struct addon *a = get_addon(env);
  if (a == NULL || napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype type;
  bool is_buffer = false;
  void *data = NULL;
  size_t size = 0;
  if (argc < 2 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function || napi_is_buffer(env, argv[1], &is_buffer) != napi_ok ||
      !is_buffer || napi_get_buffer_info(env, argv[1], &data, &size) != napi_ok || size == 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "tcpcheck.init(callback, buffer): a function and a non-empty Buffer");
    return NULL;
  }
  if (a->callback != NULL) {
    napi_throw_error(env, "ERR_TCPCHECK", "tcpcheck.init: already initialised in this thread");
    return NULL;
  }
  napi_value name;
  if (napi_create_reference(env, argv[0], 1, &a->callback) != napi_ok || napi_create_reference(env, argv[1], 1, &a->buffer) != napi_ok ||
      napi_create_string_utf8(env, "pybal:tcpcheck", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &a->context) != napi_ok)
    return NULL;
  a->base = data;
  a->size = size;
  return NULL;
}

static napi_value open_conn(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  struct addon *a = get_addon(env);
  if (a == NULL || napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  char address[64];
  size_t address_length = 0;
  int32_t port = 0, family = 0;
  bool is_buffer = false;
  void *request = NULL;
  size_t length = 0;
  if (argc < 4 || napi_get_value_string_utf8(env, argv[0], address, sizeof address, &address_length) != napi_ok ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || napi_get_value_int32(env, argv[2], &family) != napi_ok ||
      napi_is_buffer(env, argv[3], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[3], &request, &length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "tcpcheck.open(address, port, family, request): a string, two numbers and a Buffer");
    return NULL;
  }
  if (a->callback == NULL) {
    napi_throw_error(env, "ERR_TCPCHECK", "tcpcheck.open: init() first");
    return NULL;
  }
  struct sockaddr_storage storage;
  int err = UV_EINVAL;
  if (port > 0 && port < 65536 && address_length < sizeof address - 1) {
    if (family == 4) err = uv_ip4_addr(address, port, (struct sockaddr_in *)&storage);
    else if (family == 6) err = uv_ip6_addr(address, port, (struct sockaddr_in6 *)&storage);
  }
  if (err == 0 && a->tearing_down) err = UV_ECANCELED;
  if (err == 0) {
    struct conn *c = malloc(sizeof *c + length);
    if (c == NULL) {
      err = UV_ENOMEM;
    } else {
      memset(c, 0, sizeof *c);
      c->addon = a;
      c->id = -1;
      c->length = length;
      memcpy(c->request, request, length);
      c->tcp.data = c;
      c->connect.data = c;
      c->write.data = c;
      err = uv_tcp_init(a->loop, &c->tcp);
      if (err < 0) {
        free(c);
      } else {
        a->open++;
        int id = take_id(a);
        if (id < 0) {
          err = UV_ENOMEM;
          c->closing = 1;
          uv_close((uv_handle_t *)&c->tcp, on_close);
        } else {
          c->id = id;
          a->slots[id] = c;
          err = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&storage, on_connect);
          if (err < 0) close_conn(c);
          else err = id;
        }
      }
    }
  }
  if (napi_create_int32(env, err, &result) != napi_ok) return NULL;
  return result;
}

static napi_value close_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  struct addon *a = get_addon(env);
  int32_t id = -1;
  if (a == NULL || napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &id) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "tcpcheck.close(id): a number");
    return NULL;
  }
  if (id >= 0 && id < a->used && a->slots[id] != NULL) close_conn(a->slots[id]);
  return NULL;
}

static void on_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  struct addon *a = arg;
  a->tearing_down = 1;
  if (a->open == 0) {
    a->cleanup = NULL;
    napi_remove_async_cleanup_hook(handle);
    return;
  }
  for (int32_t id = 0; id < a->used; id++)
    if (a->slots[id] != NULL) close_conn(a->slots[id]);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  struct addon *a = data;
  a->tearing_down = 1;
  if (a->callback != NULL) napi_delete_reference(env, a->callback);
  if (a->buffer != NULL) napi_delete_reference(env, a->buffer);
  if (a->context != NULL) napi_async_destroy(env, a->context);
  a->callback = NULL;
  a->buffer = NULL;
  a->context = NULL;
  a->finalized = 1;
  if (a->open != 0) return;
  /* Its cleanup hook has not run (or found nothing open and is gone already). */
  if (a->cleanup != NULL) napi_remove_async_cleanup_hook(a->cleanup);
  free_addon(a);
}

NAPI_MODULE_INIT() {
  struct addon *a = calloc(1, sizeof *a);
  if (a == NULL) {
    napi_throw_error(env, "ENOMEM", "tcpcheck: out of memory");
    return NULL;
  }
  a->env = env;
  if (napi_get_uv_event_loop(env, &a->loop) != napi_ok || napi_set_instance_data(env, a, finalize, NULL) != napi_ok) {
    free(a);
    return NULL;
  }
  if (napi_add_async_cleanup_hook(env, on_cleanup, a, &a->cleanup) != napi_ok) return NULL;
  napi_value event;
  napi_property_descriptor properties[] = {
    { "init", NULL, init, NULL, NULL, NULL, napi_enumerable, NULL },
    { "open", NULL, open_conn, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, close_js, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok) return NULL;
  static const struct { const char *name; int value; } events[] = {
    { "EVENT_DATA", EVENT_DATA }, { "EVENT_END", EVENT_END }, { "EVENT_CONNECT_ERROR", EVENT_CONNECT_ERROR },
    { "EVENT_WRITE_ERROR", EVENT_WRITE_ERROR }, { "EVENT_READ_ERROR", EVENT_READ_ERROR },
  };
  for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
    if (napi_create_int32(env, events[i].value, &event) != napi_ok || napi_set_named_property(env, exports, events[i].name, event) != napi_ok) return NULL;
  return exports;
}
