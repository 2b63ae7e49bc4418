/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the parsers of signed policies (lib/system/
 * tpm-policy.c, tpm-session.c): the signed-policy file and the KOSSEAL2
 * sealed-key file from the ImageFS, ReadPublic's answer for the storage key
 * and the encrypted Unseal response from the TPM. The first input byte picks
 * the parser; what a file parser accepts must format back to the same
 * bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tpm-session.h"

static void fuzz_signed_policy(const uint8_t *data, size_t len) {
        static uint8_t again[KOS_SIGNED_POLICY_MAX];
        struct kos_signed_policy p;

        if (kos_signed_policy_parse(data, len, &p) < 0)
                return;
        if (p.n == 0 || p.n > KOS_SIGNED_POLICY_MAX_ENTRIES)
                abort();
        int n = kos_signed_policy_format(&p, again, sizeof again);
        if (n < 0 || (size_t)n != len || memcmp(again, data, len) != 0)
                abort();
}

static void fuzz_authorized_key(const uint8_t *data, size_t len) {
        static uint8_t again[KOS_AUTHORIZED_KEY_MAX];
        struct kos_authorized_key k;

        if (kos_authorized_key_parse(data, len, &k) < 0)
                return;
        int n = kos_authorized_key_format(&k, again, sizeof again);
        if (n < 0 || (size_t)n != len || memcmp(again, data, len) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct kos_tpm_ecc_point point;
        struct kos_tpm_session s = {.handle = 0x03000000};
        uint8_t nonce[KOS_TPM_NONCE_LEN] = {0}, out[KOS_TPM_SEAL_DATA_MAX];
        size_t out_len = 0;

        if (size < 1 || size > KOS_SIGNED_POLICY_MAX + 1)
                return 0;
        const uint8_t *p = data + 1;
        size_t len = size - 1;
        switch (data[0] % 4) {
        case 0: fuzz_signed_policy(p, len); break;
        case 1: fuzz_authorized_key(p, len); break;
        case 2: (void)kos_tpm_parse_storage_key_public(p, len, &point); break;
        default:
                /* Random data never carries the HMAC of this session key. */
                if (kos_tpm_open_unseal_response(p, len, &s, nonce, out, &out_len) == 0)
                        abort();
        }
        return 0;
}
