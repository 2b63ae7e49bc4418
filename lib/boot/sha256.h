/* SPDX-License-Identifier: MIT */
/* SHA-256 through OpenSSL's libcrypto (SHA-NI where the CPU has it): the
 * digest every format of KOS names, and comparing two in constant time. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define KOS_SHA256_LEN 32
#define KOS_SHA256_HEX_LEN 64

_kos_must_check_ int kos_sha256(const void *data, size_t len, uint8_t ret_digest[static KOS_SHA256_LEN]);

/* Constant-time comparison of two digests. */
_kos_must_check_ int kos_digest_equal(const uint8_t a[static KOS_SHA256_LEN], const uint8_t b[static KOS_SHA256_LEN]);
