/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the Varlink message reader: the bytes a client sends
 * Node Manager, fed whole and then one byte more at a time as a slow client
 * would. Both ways must agree, a message must never claim more bytes than
 * it was given, and an accepted request must serialise back to a message the
 * reader accepts again. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "varlink.h"

static int parse_whole(const char *data, size_t size, size_t *ret_used, json_t **ret) {
        int r = varlink_message_parse(data, size, ret_used, ret);

        if (r == 1 && (*ret_used == 0 || *ret_used > size || data[*ret_used - 1] != '\0'))
                abort();
        if (r != 1 && (*ret || *ret_used))
                abort();
        if (r < 0 && r != -EBADMSG && r != -EMSGSIZE)
                abort();
        return r;
}

/* As the server reads: growing prefixes until the reader has an answer. */
static int parse_growing(const char *data, size_t size) {
        size_t used;
        json_t *message;

        for (size_t len = 0; len <= size; len++) {
                int r = parse_whole(data, len, &used, &message);
                json_decref(message);
                if (r != 0)
                        return r;
        }
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *)data;
        json_t *message = NULL, *again = NULL, *parameters;
        const char *method;
        char *out = NULL;
        size_t used, out_len, used_again;

        int r = parse_whole(text, size, &used, &message);
        if (size <= 4096 && parse_growing(text, size) != r)
                abort();
        if (r != 1)
                return 0;
        if (varlink_request_unpack(message, &method, &parameters) == 0) {
                if (strlen(method) > VARLINK_METHOD_MAX || (parameters && !json_is_object(parameters)))
                        abort();
        }
        if (varlink_serialize(message, &out, &out_len) == 0) {
                if (out_len <= VARLINK_MESSAGE_MAX &&
                    (varlink_message_parse(out, out_len, &used_again, &again) != 1 || used_again != out_len))
                        abort();
                json_decref(again);
                free(out);
        }
        json_decref(message);
        return 0;
}
