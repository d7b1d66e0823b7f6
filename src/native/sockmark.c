/*
 * sockmark: sockets that carry a firewall mark (SO_MARK), for pybal's
 * data-path health checks (src/monitors/marked-socket.ts; docs/native.md).
 *
 * Node has no setsockopt(), so this Node-API addon opens the socket itself
 * and hands its descriptor to Node (net.Socket / dgram), which does the rest.
 *
 *   openSocket(family: 4|6, kind: 'tcp'|'udp', mark: number, localAddress?: string): number
 *       socket(AF_INET|AF_INET6, SOCK_STREAM|SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC),
 *       setsockopt(SOL_SOCKET, SO_MARK, mark) and, given localAddress, bind() to it with port 0
 *       (TCP: with IP_BIND_ADDRESS_NO_PORT, so that the port is chosen at connect()).
 *       Returns the descriptor; on a failure closes it and throws an Error whose code is the
 *       errno's name ("setsockopt(SO_MARK) failed: Operation not permitted (EPERM)").
 *   getMark(fd: number): number
 *       getsockopt(SOL_SOCKET, SO_MARK).
 *   sourceFor(family: 4|6, address: string): string
 *       The source address the kernel would choose towards `address` (a UDP socket
 *       connected to it, getsockname(), closed; no packet is sent).
 *
 * Bad arguments throw a TypeError (code ERR_MISSING_ARGS or ERR_INVALID_ARG_VALUE).
 * Setting SO_MARK needs CAP_NET_ADMIN in the socket's network namespace.
 *
 * Built by packaging/build-native.ts: cc -Wall -Wextra -Werror -O2 -fPIC -shared.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_MARK
#define SO_MARK 36
#endif
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* The errno names that socket(), setsockopt() and bind() return; others are "E<number>". */
static const char *errno_name(int err, char *buf, size_t size) {
  switch (err) {
  case EPERM: return "EPERM";
  case EACCES: return "EACCES";
  case EINVAL: return "EINVAL";
  case EBADF: return "EBADF";
  case ENOTSOCK: return "ENOTSOCK";
  case ENOPROTOOPT: return "ENOPROTOOPT";
  case EAFNOSUPPORT: return "EAFNOSUPPORT";
  case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
  case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
  case EADDRINUSE: return "EADDRINUSE";
  case ENETUNREACH: return "ENETUNREACH";
  case EHOSTUNREACH: return "EHOSTUNREACH";
  case EMFILE: return "EMFILE";
  case ENFILE: return "ENFILE";
  case ENOBUFS: return "ENOBUFS";
  case ENOMEM: return "ENOMEM";
  default: snprintf(buf, size, "E%d", err); return buf;
  }
}

/* Throws an Error for errno `err`, with its name as code; `step` says what failed. Returns NULL. */
static napi_value throw_errno(napi_env env, const char *step, int err) {
  char code_buf[16];
  char message[160];
  const char *code = errno_name(err, code_buf, sizeof code_buf);
  /* strerror: called on a JavaScript thread only, and glibc's texts of known errnos are constant. */
  snprintf(message, sizeof message, "%s failed: %s (%s)", step, strerror(err), code);
  napi_throw_error(env, code, message);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *code, const char *message) {
  napi_throw_type_error(env, code, message);
  return NULL;
}

/* A JavaScript number that is an integer in [min, max], into *out; false if it is not one. */
static int get_integer(napi_env env, napi_value value, double min, double max, double *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return 0;
  if (napi_get_value_double(env, value, out) != napi_ok) return 0;
  /* NaN fails the comparisons; within the range, the conversion is exact for integers only. */
  return *out >= min && *out <= max && *out == (double)(int64_t)*out;
}

/* A JavaScript string shorter than `size` bytes, into buf; false if it is not one. */
static int get_string(napi_env env, napi_value value, char *buf, size_t size) {
  napi_valuetype type;
  size_t length;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) return 0;
  if (napi_get_value_string_utf8(env, value, buf, size, &length) != napi_ok) return 0;
  return length < size - 1;
}

/* An IP address string of `family` (AF_INET or AF_INET6) into *out with port 0; false if it is not one. */
static int get_sockaddr(napi_env env, napi_value value, int family, struct sockaddr_storage *out, socklen_t *len) {
  char text[INET6_ADDRSTRLEN + 1];
  if (!get_string(env, value, text, sizeof text)) return 0;
  memset(out, 0, sizeof *out);
  void *addr;
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)out;
    sin->sin_family = AF_INET;
    addr = &sin->sin_addr;
    *len = sizeof *sin;
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
    sin6->sin6_family = AF_INET6;
    addr = &sin6->sin6_addr;
    *len = sizeof *sin6;
  }
  return inet_pton(family, text, addr) == 1;
}

static napi_value open_socket(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) return throw_type(env, "ERR_MISSING_ARGS", "openSocket(family, kind, mark[, localAddress]): too few arguments");

  double family_number, mark_number;
  if (!get_integer(env, argv[0], 4, 6, &family_number) || family_number == 5)
    return throw_type(env, "ERR_INVALID_ARG_VALUE", "openSocket: family must be 4 or 6");
  int family = family_number == 4 ? AF_INET : AF_INET6;

  char kind[8];
  if (!get_string(env, argv[1], kind, sizeof kind) || (strcmp(kind, "tcp") != 0 && strcmp(kind, "udp") != 0))
    return throw_type(env, "ERR_INVALID_ARG_VALUE", "openSocket: kind must be 'tcp' or 'udp'");
  int type = strcmp(kind, "tcp") == 0 ? SOCK_STREAM : SOCK_DGRAM;

  if (!get_integer(env, argv[2], 0, 4294967295.0, &mark_number))
    return throw_type(env, "ERR_INVALID_ARG_VALUE", "openSocket: mark must be an integer from 0 to 4294967295");
  uint32_t mark = (uint32_t)mark_number;

  /* The local address, if any, as a sockaddr with port 0. */
  int bind_local = 0;
  struct sockaddr_storage local;
  socklen_t local_len = 0;
  memset(&local, 0, sizeof local);
  if (argc >= 4) {
    napi_valuetype t;
    if (napi_typeof(env, argv[3], &t) != napi_ok) return NULL;
    if (t != napi_undefined && t != napi_null) {
      if (!get_sockaddr(env, argv[3], family, &local, &local_len))
        return throw_type(env, "ERR_INVALID_ARG_VALUE", family == AF_INET ? "openSocket: localAddress is not an IPv4 address" : "openSocket: localAddress is not an IPv6 address");
      bind_local = 1;
    }
  }

  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket()", errno);
  const char *step = NULL;
  /* A TCP socket bound to an address takes its port at connect(), for that destination
     (IP_BIND_ADDRESS_NO_PORT): bind() alone would take a port of the address's whole range. */
  int no_port = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) step = "setsockopt(SO_MARK)";
  else if (bind_local && type == SOCK_STREAM && setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &no_port, sizeof no_port) != 0) step = "setsockopt(IP_BIND_ADDRESS_NO_PORT)";
  else if (bind_local && bind(fd, (struct sockaddr *)&local, local_len) != 0) step = "bind()";
  if (step != NULL) {
    int err = errno;
    close(fd);
    return throw_errno(env, step, err);
  }

  napi_value result;
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    return NULL;
  }
  return result;
}

static napi_value get_mark(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  double fd;
  if (argc < 1 || !get_integer(env, argv[0], 0, 2147483647.0, &fd))
    return throw_type(env, "ERR_INVALID_ARG_VALUE", "getMark: fd must be a non-negative integer");
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (getsockopt((int)fd, SOL_SOCKET, SO_MARK, &mark, &len) != 0) return throw_errno(env, "getsockopt(SO_MARK)", errno);
  napi_value result;
  if (napi_create_uint32(env, mark, &result) != napi_ok) return NULL;
  return result;
}

static napi_value source_for(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) return throw_type(env, "ERR_MISSING_ARGS", "sourceFor(family, address): too few arguments");
  double family_number;
  if (!get_integer(env, argv[0], 4, 6, &family_number) || family_number == 5)
    return throw_type(env, "ERR_INVALID_ARG_VALUE", "sourceFor: family must be 4 or 6");
  int family = family_number == 4 ? AF_INET : AF_INET6;
  struct sockaddr_storage peer;
  socklen_t peer_len;
  if (!get_sockaddr(env, argv[1], family, &peer, &peer_len))
    return throw_type(env, "ERR_INVALID_ARG_VALUE", family == AF_INET ? "sourceFor: address is not an IPv4 address" : "sourceFor: address is not an IPv6 address");
  /* Any port: a UDP connect only looks the route up. */
  if (family == AF_INET) ((struct sockaddr_in *)&peer)->sin_port = htons(9);
  else ((struct sockaddr_in6 *)&peer)->sin6_port = htons(9);

  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket()", errno);
  struct sockaddr_storage local;
  socklen_t local_len = sizeof local;
  const char *step = NULL;
  if (connect(fd, (struct sockaddr *)&peer, peer_len) != 0) step = "connect()";
  else if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0) step = "getsockname()";
  if (step != NULL) {
    int err = errno;
    close(fd);
    return throw_errno(env, step, err);
  }
  close(fd);
  char text[INET6_ADDRSTRLEN];
  const void *addr = family == AF_INET ? (const void *)&((struct sockaddr_in *)&local)->sin_addr : (const void *)&((struct sockaddr_in6 *)&local)->sin6_addr;
  if (inet_ntop(family, addr, text, sizeof text) == NULL) return throw_errno(env, "inet_ntop()", errno);
  napi_value result;
  if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &result) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor properties[] = {
    { "openSocket", NULL, open_socket, NULL, NULL, NULL, napi_enumerable, NULL },
    { "getMark", NULL, get_mark, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sourceFor", NULL, source_for, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok) return NULL;
  return exports;
}
