/* SPDX-License-Identifier: MIT */
#include "varlink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

int varlink_read(int fd, json_t **ret) {
        _cleanup_free_ char *buf = malloc(VARLINK_MESSAGE_MAX);
        size_t len = 0;
        json_error_t jerr;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len >= VARLINK_MESSAGE_MAX)
                        return -EMSGSIZE;
                ssize_t n = read(fd, buf + len, 1); /* byte by byte: one message, nothing read past its NUL */
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                if (buf[len] == '\0')
                        break;
                len++;
        }
        json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!o || !json_is_object(o)) {
                json_decref(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

int varlink_write(int fd, json_t *message) {
        char *text = json_dumps(message, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        int r = kos_write_all(fd, text, strlen(text) + 1); /* with its NUL */
        free(text);
        return r;
}

int varlink_call(const char *path, const char *method, json_t *parameters, json_t **ret_reply) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int r;

        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                return -errno;
        json_t *request = json_pack("{s:s, s:o}", "method", method, "parameters", parameters ? parameters : json_object());
        if (!request)
                return -ENOMEM;
        r = varlink_write(fd, request);
        json_decref(request);
        return r < 0 ? r : varlink_read(fd, ret_reply);
}
