/* SPDX-License-Identifier: MIT */
#include "signature.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* Decodes exactly one 64-byte signature. Only the canonical encoding is
 * accepted (re-encoding must give back the same text), so a signature has
 * exactly one spelling. */
static int decode_signature(const char *b64, uint8_t out[static KOS_ED25519_SIGNATURE_LEN]) {
        uint8_t decoded[KOS_SIGNATURE_B64_LEN / 4 * 3];
        char again[KOS_SIGNATURE_B64_LEN + 1];

        if (b64[KOS_SIGNATURE_B64_LEN - 2] != '=' || b64[KOS_SIGNATURE_B64_LEN - 1] != '=')
                return -EBADMSG;
        if (EVP_DecodeBlock(decoded, (const unsigned char *)b64, KOS_SIGNATURE_B64_LEN) != (int)sizeof decoded)
                return -EBADMSG;
        if (EVP_EncodeBlock((unsigned char *)again, decoded, KOS_ED25519_SIGNATURE_LEN) != KOS_SIGNATURE_B64_LEN ||
            memcmp(again, b64, KOS_SIGNATURE_B64_LEN) != 0)
                return -EBADMSG;
        memcpy(out, decoded, KOS_ED25519_SIGNATURE_LEN);
        return 0;
}

static int parse_line(const char *line, size_t len, struct kos_signature *ret) {
        static const char prefix[] = "ed25519 ";
        const size_t expected = sizeof prefix - 1 + KOS_KEY_ID_HEX_LEN + 1 + KOS_SIGNATURE_B64_LEN;
        char b64[KOS_SIGNATURE_B64_LEN + 1];

        if (len != expected || memcmp(line, prefix, sizeof prefix - 1) != 0)
                return -EBADMSG;
        line += sizeof prefix - 1;
        if (kos_hex_decode(line, KOS_KEY_ID_HEX_LEN, ret->key_id, KOS_KEY_ID_LEN) < 0)
                return -EBADMSG;
        line += KOS_KEY_ID_HEX_LEN;
        if (*line++ != ' ')
                return -EBADMSG;
        memcpy(b64, line, KOS_SIGNATURE_B64_LEN);
        b64[KOS_SIGNATURE_B64_LEN] = '\0';
        return decode_signature(b64, ret->signature);
}

int kos_signature_file_parse(const char *untrusted, size_t len, struct kos_signature_file *ret, struct kos_error *ret_error) {
        size_t pos = 0, line_no = 0;

        memset(ret, 0, sizeof *ret);
        if (len > KOS_SIGNATURE_FILE_MAX)
                return kos_error_set(ret_error, -EBADMSG, "signature file larger than %d bytes", KOS_SIGNATURE_FILE_MAX);
        if (len == 0)
                return kos_error_set(ret_error, -EBADMSG, "signature file is empty");

        while (pos < len) {
                const char *start = untrusted + pos;
                const char *newline = memchr(start, '\n', len - pos);
                size_t line_len = newline ? (size_t)(newline - start) : len - pos;

                line_no++;
                if (ret->n >= KOS_SIGNATURE_MAX_LINES)
                        return kos_error_set(ret_error, -EBADMSG, "more than %d signature lines", KOS_SIGNATURE_MAX_LINES);
                if (parse_line(start, line_len, &ret->lines[ret->n]) < 0)
                        return kos_error_set(ret_error, -EBADMSG,
                                             "line %zu is not 'ed25519 <16 hex digit key id> <88 character base64 "
                                             "signature>'",
                                             line_no);
                ret->n++;
                pos += line_len + (newline ? 1 : 0);
        }
        return 0;
}

void kos_signature_format_line(const struct kos_signature *sig, char out[static 128]) {
        char id[KOS_KEY_ID_HEX_LEN + 1];
        char b64[KOS_SIGNATURE_B64_LEN + 1];

        kos_hex_encode(sig->key_id, KOS_KEY_ID_LEN, id);
        EVP_EncodeBlock((unsigned char *)b64, sig->signature, KOS_ED25519_SIGNATURE_LEN);
        snprintf(out, 128, "ed25519 %s %s\n", id, b64);
}

enum kos_signature_verdict kos_signature_file_verify(const struct kos_signature_file *sigs,
                                                     const struct kos_keyring *ring, const void *message,
                                                     size_t len, uint8_t ret_key_id[static KOS_KEY_ID_LEN]) {
        bool any_trusted = false;

        if (sigs->n > 0)
                memcpy(ret_key_id, sigs->lines[0].key_id, KOS_KEY_ID_LEN);
        for (size_t i = 0; i < sigs->n; i++) {
                const struct kos_public_key *key = kos_keyring_find(ring, sigs->lines[i].key_id);
                if (!key)
                        continue;
                if (!any_trusted)
                        memcpy(ret_key_id, key->id, KOS_KEY_ID_LEN);
                any_trusted = true;
                if (kos_ed25519_verify(key->raw, message, len, sigs->lines[i].signature) == 1) {
                        memcpy(ret_key_id, key->id, KOS_KEY_ID_LEN);
                        return KOS_SIGNATURE_VALID;
                }
        }
        return any_trusted ? KOS_SIGNATURE_INVALID : KOS_SIGNATURE_KEY_UNTRUSTED;
}
