/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the TPM response parsers (lib/tpm.c): bytes from a
 * device KOS does not control. The first input byte picks the command whose
 * response the rest is taken for; whatever a parser accepts must lie inside
 * the input and be internally consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tpm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *params;
        size_t n;
        uint32_t rc;
        uint8_t value[KOS_SHA256_LEN], nv[8];
        struct kos_tpm_nv_public pub;

        if (size < 1 || size > KOS_TPM_RESPONSE_MAX + 1)
                return 0;
        uint8_t which = data[0] % 4;
        const uint8_t *resp = data + 1;
        size_t len = size - 1;
        bool sessions = which == 1 || which == 3;
        if (kos_tpm_parse_response(resp, len, sessions, &rc, &params, &n) < 0)
                return 0;
        if (rc != 0) {
                if (n != 0 || len != 10)
                        abort();
                return 0;
        }
        if (params < resp || n > len || (size_t)(params - resp) > len - n)
                abort();
        switch (which) {
        case 0:
                if (kos_tpm_parse_nv_read_public(params, n, &pub) == 0 && pub.auth_policy_size > 64)
                        abort();
                break;
        case 1:
                if (kos_tpm_parse_nv_read(params, n, sizeof nv, nv) == 0 && n != 2 + sizeof nv)
                        abort();
                break;
        case 2:
                if (kos_tpm_parse_pcr_read(params, n, KOS_TPM_PCR, value) == 0 && n < 4 + 4 + 6 + 4 + 2 + 32)
                        abort();
                break;
        case 3: /* increment, define, extend: no parameters */
                break;
        }
        return 0;
}
