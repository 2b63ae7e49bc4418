/* SPDX-License-Identifier: MIT */
/* The smallest useful part of the Varlink protocol (varlink.org): a request
 * is a JSON object {"method": "io.kos.Node.X", "parameters": {...}}, a reply
 * {"parameters": {...}} or {"error": "io.kos.Node.Y", "parameters": {...}},
 * each followed by one NUL byte, over a unix stream socket. One call per
 * connection, which is all the kos client does.
 *
 * The parsing of bytes is pure (varlink_message_parse, varlink_request_unpack:
 * no I/O, no state), so the server, the client and the fuzzer
 * (tests/fuzz/fuzz_varlink.c) share it. Node Manager's non-blocking server
 * is in varlink-server.c. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* A message with its NUL is at most this long; a longer one is -EMSGSIZE. */
#define VARLINK_MESSAGE_MAX (64 * 1024)
/* Method names longer than this are refused (they name nothing we have). */
#define VARLINK_METHOD_MAX 256

/* Looks for one message at the start of buf[0..len). Returns 0 when the
 * NUL has not come yet (read more), 1 with *ret_message (a JSON object, the
 * caller's) and *ret_used (the bytes it took, NUL included) when one is
 * complete, -EMSGSIZE when it cannot fit in VARLINK_MESSAGE_MAX, -EBADMSG
 * when it is not one JSON object (duplicate keys included). */
int varlink_message_parse(const char *buf, size_t len, size_t *ret_used, json_t **ret_message);

/* Checks a parsed request: "method" a string of at most VARLINK_METHOD_MAX
 * bytes, "parameters" an object if present. Both are borrowed from message;
 * *ret_parameters is NULL when absent. -EBADMSG otherwise. */
int varlink_request_unpack(json_t *message, const char **ret_method, json_t **ret_parameters);

/* Serialises a message with its NUL: *ret_len counts the NUL. */
int varlink_serialize(json_t *message, char **ret_text, size_t *ret_len);

/* Client side, blocking: reads one message from fd. */
int varlink_read(int fd, json_t **ret);
/* Writes one message (the object, then a NUL). */
int varlink_write(int fd, json_t *message);
/* Client: connects to path, sends method with parameters (stolen, may be
 * NULL), returns the reply object. */
int varlink_call(const char *path, const char *method, json_t *parameters, json_t **ret_reply);
