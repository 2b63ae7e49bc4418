/* SPDX-License-Identifier: MIT */
/* Node Manager's Varlink server on an sd-event loop. Every connection is a
 * non-blocking socket with its own buffer and io event source, so no client
 * can hold up another or the loop: a slow client only fills its own buffer.
 * Each request must arrive whole within VARLINK_REQUEST_TIMEOUT_USEC of the
 * connection (and each reply be taken within as long), or the connection is
 * closed; messages are capped at VARLINK_MESSAGE_MAX; at most
 * VARLINK_CONNECTIONS_MAX unprivileged connections are open at once, at most
 * VARLINK_CONNECTIONS_PER_UID of them by one uid (root has its own
 * VARLINK_CONNECTIONS_MAX, so it can always get through). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <systemd/sd-event.h>
#include <sys/types.h>

#define VARLINK_REQUEST_TIMEOUT_USEC (5 * 1000000ULL)
#define VARLINK_CONNECTIONS_MAX 32
#define VARLINK_CONNECTIONS_PER_UID 4

struct varlink_server;
struct varlink_connection;

/* Called once per request. Returns the reply (the server takes it), or NULL
 * to answer later with varlink_connection_reply() (the connection then waits,
 * without a deadline, until it is answered). */
typedef json_t *(*varlink_method_fn)(struct varlink_connection *c, const char *method, json_t *parameters,
                                     void *userdata);

/* Listens on path (replacing a stale socket), mode 0666: who may call what is
 * the handler's business, by varlink_connection_uid(). */
int varlink_server_new(sd_event *event, const char *path, varlink_method_fn handler, void *userdata,
                       struct varlink_server **ret);

uid_t varlink_connection_uid(const struct varlink_connection *c);
/* Sends a reply (taken) to a request whose handler returned NULL, then closes. */
void varlink_connection_reply(struct varlink_connection *c, json_t *reply);

/* {"error": error, "parameters": {"message": message}} */
json_t *varlink_error(const char *error, const char *message);
