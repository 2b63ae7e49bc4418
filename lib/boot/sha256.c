/* SPDX-License-Identifier: MIT */
#include "sha256.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

int kos_sha256(const void *data, size_t len, uint8_t ret_digest[static KOS_SHA256_LEN]) {
        unsigned int out_len = 0;

        if (EVP_Digest(data, len, ret_digest, &out_len, EVP_sha256(), NULL) != 1 || out_len != KOS_SHA256_LEN)
                return -EIO;
        return 0;
}

int kos_digest_equal(const uint8_t a[static KOS_SHA256_LEN], const uint8_t b[static KOS_SHA256_LEN]) {
        return CRYPTO_memcmp(a, b, KOS_SHA256_LEN) == 0;
}
