/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the TPM response parsers (lib/boot/tpm.c) and the
 * sealed-key file (lib/system/tpm-seal.c): bytes from a device, or a disk, KOS does
 * not control. The first input byte picks the command whose response the
 * rest is taken for; whatever a parser accepts must lie inside the input and
 * be internally consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tpm-seal.h"

static void check_params(const uint8_t *resp, size_t len, const uint8_t *params, size_t n) {
        if (params < resp || n > len || (size_t)(params - resp) > len - n)
                abort();
}

/* Commands whose response carries a handle before the parameters. */
static void fuzz_handle_response(uint8_t which, const uint8_t *resp, size_t len) {
        const uint8_t *params;
        size_t n;
        uint32_t rc, handle;
        bool sessions = which != 6;

        if (kos_tpm_parse_response_handle(resp, len, sessions, &rc, &handle, &params, &n) < 0)
                return;
        if (rc != 0) {
                if (n != 0 || len != 10)
                        abort();
                return;
        }
        check_params(resp, len, params, n);
        if (which == 4)
                (void)kos_tpm_parse_create_primary(params, n);
        else if (which == 5 && kos_tpm_parse_load(params, n) == 0 && n < 4)
                abort();
        else if (which == 6 && kos_tpm_parse_start_auth_session(params, n) == 0 && (n < 18 || n > 66))
                abort();
}

static void fuzz_sealed_key_file(const uint8_t *data, size_t len) {
        static uint8_t again[KOS_SEALED_KEY_MAX];
        struct kos_sealed_key k;

        if (kos_sealed_key_parse(data, len, &k) < 0)
                return;
        if (!(k.pcr_mask & (1u << KOS_TPM_SEAL_PCR)) || k.public_len == 0 || k.public_len > KOS_TPM_BLOB_MAX ||
            k.private_len == 0 || k.private_len > KOS_TPM_BLOB_MAX)
                abort();
        /* Exact lengths: what was accepted formats back to the same bytes. */
        int n = kos_sealed_key_format(&k, again, sizeof again);
        if (n < 0 || (size_t)n != len || memcmp(again, data, len) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *params;
        size_t n, out_len;
        uint32_t rc;
        uint8_t value[KOS_SHA256_LEN], nv[8], out[KOS_TPM_SEAL_DATA_MAX];
        uint8_t priv[KOS_TPM_BLOB_MAX], pub[KOS_TPM_BLOB_MAX];
        uint16_t priv_len, pub_len;
        struct kos_tpm_nv_public pub_nv;

        if (size < 1 || size > KOS_TPM_RESPONSE_MAX + 1)
                return 0;
        uint8_t which = data[0] % 9;
        const uint8_t *resp = data + 1;
        size_t len = size - 1;
        if (which >= 4 && which <= 6) {
                fuzz_handle_response(which, resp, len);
                return 0;
        }
        if (which == 8) {
                fuzz_sealed_key_file(resp, len);
                return 0;
        }
        bool sessions = which == 1 || which == 3 || which == 7;
        if (kos_tpm_parse_response(resp, len, sessions, &rc, &params, &n) < 0)
                return 0;
        if (rc != 0) {
                if (n != 0 || len != 10)
                        abort();
                return 0;
        }
        check_params(resp, len, params, n);
        switch (which) {
        case 0:
                if (kos_tpm_parse_nv_read_public(params, n, &pub_nv) == 0 && pub_nv.auth_policy_size > 64)
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
        case 3: /* Create */
                if (kos_tpm_parse_create(params, n, priv, &priv_len, pub, &pub_len) == 0 &&
                    (priv_len == 0 || pub_len == 0 || (size_t)priv_len + pub_len + 4 > n))
                        abort();
                break;
        case 7: /* Unseal */
                if (kos_tpm_parse_unseal(params, n, out, &out_len) == 0 && (out_len > sizeof out || out_len + 2 != n))
                        abort();
                break;
        }
        return 0;
}
