/* SPDX-License-Identifier: MIT */
/* The smallest useful part of the Varlink protocol (varlink.org): a request
 * is a JSON object {"method": "io.kos.Node.X", "parameters": {...}}, a reply
 * {"parameters": {...}} or {"error": "io.kos.Node.Y", "parameters": {...}},
 * each followed by one NUL byte, over a unix stream socket. One call per
 * connection, which is all the kos client does. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#define VARLINK_MESSAGE_MAX (64 * 1024)

/* Reads one NUL-terminated message from fd and parses it. */
int varlink_read(int fd, json_t **ret);
/* Writes one message (the object, then a NUL). */
int varlink_write(int fd, json_t *message);
/* Client: connects to path, sends method with parameters (stolen, may be
 * NULL), returns the reply object. */
int varlink_call(const char *path, const char *method, json_t *parameters, json_t **ret_reply);
