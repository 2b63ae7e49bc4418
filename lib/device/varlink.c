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

int varlink_message_parse(const char *buf, size_t len, size_t *ret_used, json_t **ret_message) {
        json_error_t jerr;

        *ret_used = 0;
        *ret_message = NULL;
        const char *nul = memchr(buf, '\0', len < VARLINK_MESSAGE_MAX ? len : VARLINK_MESSAGE_MAX);
        if (!nul)
                return len >= VARLINK_MESSAGE_MAX ? -EMSGSIZE : 0;
        size_t text_len = (size_t)(nul - buf);
        /* Strings with \u0000 are refused by jansson unless JSON_ALLOW_NUL. */
        json_t *o = json_loadb(buf, text_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!o || !json_is_object(o)) {
                json_decref(o);
                return -EBADMSG;
        }
        *ret_used = text_len + 1;
        *ret_message = o;
        return 1;
}

int varlink_request_unpack(json_t *message, const char **ret_method, json_t **ret_parameters) {
        json_t *method = json_object_get(message, "method"), *parameters = json_object_get(message, "parameters");

        if (!json_is_string(method) || json_string_length(method) > VARLINK_METHOD_MAX ||
            strlen(json_string_value(method)) != json_string_length(method))
                return -EBADMSG;
        if (parameters && !json_is_object(parameters))
                return -EBADMSG;
        *ret_method = json_string_value(method);
        *ret_parameters = parameters;
        return 0;
}

int varlink_serialize(json_t *message, char **ret_text, size_t *ret_len) {
        char *text = json_dumps(message, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        *ret_len = strlen(text) + 1; /* with its NUL */
        *ret_text = text;
        return 0;
}

int varlink_read(int fd, json_t **ret) {
        _cleanup_free_ char *buf = malloc(VARLINK_MESSAGE_MAX);
        size_t len = 0, used;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                int r = varlink_message_parse(buf, len, &used, ret);
                if (r != 0)
                        return r < 0 ? r : 0;
                ssize_t n = read(fd, buf + len, VARLINK_MESSAGE_MAX - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ECONNRESET;
                len += (size_t)n;
        }
}

int varlink_write(int fd, json_t *message) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = varlink_serialize(message, &text, &len);

        return r < 0 ? r : kos_write_all(fd, text, len);
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
