/* SPDX-License-Identifier: MIT */
/* The detached signature file <manifest>.json.sig: one line per signature,
 *   ed25519 <16 hex digit key id> <88 character base64 of 64 bytes>\n
 * See docs/format.md. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keyring.h"
#include "util.h"

#define KOS_SIGNATURE_FILE_MAX 8192
#define KOS_SIGNATURE_MAX_LINES 16
#define KOS_SIGNATURE_B64_LEN 88

struct kos_signature {
        uint8_t key_id[KOS_KEY_ID_LEN];
        uint8_t signature[KOS_ED25519_SIGNATURE_LEN];
};

struct kos_signature_file {
        size_t n;
        struct kos_signature lines[KOS_SIGNATURE_MAX_LINES];
};

/* Strict parse of an untrusted signature file. On -EBADMSG, ret_error says
 * which line and what is wrong. */
_kos_must_check_ int kos_signature_file_parse(const char *untrusted, size_t len, struct kos_signature_file *ret, struct kos_error *ret_error);

/* Formats one line (with its newline) into out, which must hold 128 bytes. */
void kos_signature_format_line(const struct kos_signature *sig, char out[static 128]);

enum kos_signature_verdict {
        KOS_SIGNATURE_VALID,
        KOS_SIGNATURE_KEY_UNTRUSTED, /* no line names a key of the keyring */
        KOS_SIGNATURE_INVALID,       /* lines by trusted keys exist, none verifies */
};

/* One valid line by a trusted key is enough. ret_key_id gets the id of the
 * key that verified, or of the first trusted key that failed, or of the
 * first untrusted key, for messages. */
_kos_must_check_ enum kos_signature_verdict kos_signature_file_verify(const struct kos_signature_file *sigs,
                                                     const struct kos_keyring *ring, const void *message,
                                                     size_t len, uint8_t ret_key_id[static KOS_KEY_ID_LEN]);
