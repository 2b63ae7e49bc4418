/* SPDX-License-Identifier: MIT */
/* What kos component build derives instead of drawing at random, so that the
 * same input makes the same bytes (docs/format.md, "Reproducible
 * components"): file system and dm-verity UUIDs and the dm-verity salt from
 * the SHA-256 of the content, and a LUKS2 volume key from the key store's key. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "sha256.h"

#define KOS_UUID_STRING_LEN 36 /* 8-4-4-4-12 lowercase hex */
#define KOS_VERITY_SALT_LEN 32
#define KOS_VOLUME_KEY_LEN 64 /* aes-xts-plain64 with two 256-bit keys */

/* SHA-256 of every byte of the regular file path: 0 or a negative errno. */
int kos_file_sha256(const char *path, uint8_t ret_digest[static KOS_SHA256_LEN]);

/* SHA-256(label || 0x00 || content), cut to len (at most 32) bytes: one
 * value per (purpose, content), and different purposes never share one. */
void kos_derive_from_content(const char *label, const uint8_t content[static KOS_SHA256_LEN], uint8_t *ret,
                             size_t len);

/* A UUID (RFC 9562 version 8, "custom") of the first 16 bytes of
 * kos_derive_from_content(label, content), as 36 characters and a NUL. */
void kos_derive_uuid(const char *label, const uint8_t content[static KOS_SHA256_LEN],
                     char ret[static KOS_UUID_STRING_LEN + 1]);

/* The LUKS2 volume key pinned to a key of the key store: HMAC-SHA-512 with
 * the key file's bytes (1 to 4096) as the key over "kos-luks2-volume-key-v1".
 * 0, or a negative errno (-EBADMSG for an empty or oversized key file). */
int kos_derive_volume_key(const char *key_path, uint8_t ret[static KOS_VOLUME_KEY_LEN]);
