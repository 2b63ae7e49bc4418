/* SPDX-License-Identifier: MIT */
#include "varlink-server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"
#include "varlink.h"

#define READ_CHUNK 4096

struct varlink_connection {
        struct varlink_server *server;
        struct varlink_connection *next;
        int fd;
        uid_t uid;
        sd_event_source *io, *deadline;
        char *in, *out;
        size_t in_len, in_size, out_len, out_done;
};

struct varlink_server {
        sd_event *event;
        varlink_method_fn handler;
        void *userdata;
        struct varlink_connection *connections;
};

json_t *varlink_error(const char *error, const char *message) {
        return json_pack("{s:s, s:{s:s}}", "error", error, "parameters", "message", message);
}

uid_t varlink_connection_uid(const struct varlink_connection *c) { return c->uid; }

static void connection_free(struct varlink_connection *c) {
        for (struct varlink_connection **p = &c->server->connections; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->deadline);
        close(c->fd);
        free(c->in);
        free(c->out);
        free(c);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        connection_free(userdata); /* too slow: the client loses its call, nobody else waits */
        return 0;
}

/* Writes what the socket takes now; the rest when it is writable again. */
static int flush_reply(struct varlink_connection *c) {
        while (c->out_done < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_done, c->out_len - c->out_done, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n < 0) {
                        connection_free(c);
                        return -errno;
                }
                c->out_done += (size_t)n;
        }
        connection_free(c); /* one call per connection */
        return 1;
}

void varlink_connection_reply(struct varlink_connection *c, json_t *reply) {
        int r = reply ? varlink_serialize(reply, &c->out, &c->out_len) : -ENOMEM;

        json_decref(reply);
        if (r < 0) {
                connection_free(c);
                return;
        }
        if (flush_reply(c) != 0)
                return; /* sent, or failed: c is gone */
        /* The socket is full: wait until it is writable, with a deadline. */
        if (sd_event_source_set_io_events(c->io, EPOLLOUT) < 0 ||
            sd_event_source_set_enabled(c->io, SD_EVENT_ON) < 0 ||
            sd_event_source_set_time_relative(c->deadline, VARLINK_REQUEST_TIMEOUT_USEC) < 0 ||
            sd_event_source_set_enabled(c->deadline, SD_EVENT_ONESHOT) < 0)
                connection_free(c);
}

static void handle_request(struct varlink_connection *c, json_t *request) {
        const char *method;
        json_t *parameters, *reply;

        /* Nothing more is read from this connection. */
        sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
        sd_event_source_set_enabled(c->deadline, SD_EVENT_OFF);
        if (varlink_request_unpack(request, &method, &parameters) < 0)
                reply = varlink_error("org.varlink.service.InvalidParameter", "not a Varlink call");
        else {
                json_t *empty = parameters ? json_incref(parameters) : json_object();
                reply = c->server->handler(c, method, empty, c->server->userdata);
                json_decref(empty);
                if (!reply)
                        return; /* answered later */
        }
        varlink_connection_reply(c, reply);
}

/* Reads what is there, never waiting; a complete message is handled. */
static void read_request(struct varlink_connection *c) {
        json_t *request;
        size_t used;

        if (c->in_len == c->in_size) {
                size_t size = c->in_size ? c->in_size * 2 : READ_CHUNK;
                char *p = size <= VARLINK_MESSAGE_MAX ? realloc(c->in, size) : NULL;
                if (!p) {
                        varlink_connection_reply(c, varlink_error("org.varlink.service.InvalidParameter", "message too large"));
                        return;
                }
                c->in = p;
                c->in_size = size;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_size - c->in_len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                connection_free(c);
                return;
        }
        c->in_len += (size_t)n;
        int r = varlink_message_parse(c->in, c->in_len, &used, &request);
        if (r == 0)
                return;
        if (r < 0) {
                varlink_connection_reply(c, varlink_error("org.varlink.service.InvalidParameter",
                                                          r == -EMSGSIZE ? "message too large" : "not a Varlink call"));
                return;
        }
        handle_request(c, request);
        json_decref(request);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct varlink_connection *c = userdata;

        if (c->out)
                flush_reply(c);
        else if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                read_request(c);
        return 0;
}

/* Unprivileged connections: in all, and by this uid. Root has a quota of its own. */
static bool may_connect(const struct varlink_server *s, uid_t uid) {
        unsigned all = 0, mine = 0;

        for (const struct varlink_connection *c = s->connections; c; c = c->next) {
                if ((c->uid == 0) == (uid == 0))
                        all++;
                if (c->uid == uid)
                        mine++;
        }
        return all < VARLINK_CONNECTIONS_MAX && (uid == 0 || mine < VARLINK_CONNECTIONS_PER_UID);
}

static int add_connection(struct varlink_server *s, int fd, uid_t uid) {
        struct varlink_connection *c = calloc(1, sizeof *c);

        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        *c = (struct varlink_connection){.server = s, .next = s->connections, .fd = fd, .uid = uid};
        s->connections = c;
        int r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_io, c);
        if (r >= 0)
                r = sd_event_add_time_relative(s->event, &c->deadline, CLOCK_MONOTONIC, VARLINK_REQUEST_TIMEOUT_USEC, 0,
                                               on_deadline, c);
        if (r < 0)
                connection_free(c);
        return r;
}

static int on_listen(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct varlink_server *s = userdata;

        /* A bounded batch per wakeup, so a flood of connects cannot starve the loop. */
        for (int i = 0; i < 16; i++) {
                struct ucred cred;
                socklen_t len = sizeof cred;
                int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (client < 0)
                        return 0;
                if (getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || !may_connect(s, cred.uid)) {
                        close(client); /* over its quota: the client sees the connection closed */
                        continue;
                }
                add_connection(s, client, cred.uid);
        }
        return 0;
}

int varlink_server_new(sd_event *event, const char *path, varlink_method_fn handler, void *userdata,
                       struct varlink_server **ret) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct varlink_server *s;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0666) < 0 || listen(fd, 64) < 0)
                return -errno;
        if (!(s = calloc(1, sizeof *s)))
                return -ENOMEM;
        *s = (struct varlink_server){.event = event, .handler = handler, .userdata = userdata};
        int r = sd_event_add_io(event, NULL, fd, EPOLLIN, on_listen, s);
        if (r < 0) {
                free(s);
                return r;
        }
        TAKE_FD(fd); /* the floating event source keeps it for the life of the loop */
        *ret = s;
        return 0;
}
