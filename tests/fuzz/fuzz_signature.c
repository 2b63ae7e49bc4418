/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the signature file parser: accepted input must
 * format back to exactly the same bytes (one spelling per signature). */
#include <stdlib.h>
#include <string.h>

#include "signature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct kos_signature_file sigs;
        struct kos_keyring ring = {0};
        uint8_t id[KOS_KEY_ID_LEN];
        char line[128], *again;
        struct kos_error error = KOS_ERROR_NULL;

        if (kos_signature_file_parse((const char *)data, size, &sigs, &error) < 0)
                return 0;
        again = malloc(sigs.n * 128 + 1);
        if (!again)
                return 0;
        again[0] = '\0';
        for (size_t i = 0; i < sigs.n; i++) {
                kos_signature_format_line(&sigs.lines[i], line);
                strcat(again, line);
        }
        size_t n = strlen(again);
        /* The input may lack the final newline; otherwise it must be identical. */
        if (!(n == size || n == size + 1) || memcmp(again, data, size) != 0)
                abort();
        if (kos_signature_file_verify(&sigs, &ring, data, size, id) != KOS_SIGNATURE_KEY_UNTRUSTED)
                abort();
        free(again);
        return 0;
}
