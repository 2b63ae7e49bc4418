/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for what the device reads of a dbx update and of the
 * UKIs on the ESP before anything authenticates them (lib/device/dbx.h):
 * the .auth header and signature lists, and the PE parser of the
 * Authenticode hash and the certificate table. */
#include <stdlib.h>
#include <string.h>

#include "dbx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static uint8_t cert[] = "CERT";
        struct kos_uki_identity needed = {.n_certs = 1, .certs = {cert}, .cert_lens = {sizeof cert}}, parsed;
        uint8_t digest[KOS_SHA256_LEN];
        struct kos_error detail;

        memset(needed.authenticode_sha256, 0x11, KOS_SHA256_LEN);
        enum kos_dbx_verdict v = kos_dbx_check_update(data, size, &needed, 1, &detail);
        if (v >= _KOS_DBX_VERDICT_MAX)
                abort();
        v = kos_dbx_check_signature_lists(data, size, &needed, 1, &detail);
        if (v >= _KOS_DBX_VERDICT_MAX)
                abort();
        /* The same bytes as a PE image: the hash and the identity agree. */
        int r = kos_authenticode_sha256(data, size, digest);
        if (kos_uki_identity_of(data, size, &parsed) == 0) {
                if (r < 0 || memcmp(parsed.authenticode_sha256, digest, KOS_SHA256_LEN) != 0)
                        abort();
                kos_uki_identity_done(&parsed);
        }
        return 0;
}
