/* SPDX-License-Identifier: MIT */
#include "revocation.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signature.h"

static int parse_revoked_keys(json_t *array, struct kos_revocation_list *ret, struct kos_error *ret_error) {
        if (!json_is_array(array))
                return kos_error_set(ret_error, -EBADMSG, "\"revoked_keys\" must be an array of key ids");
        if (json_array_size(array) > KOS_REVOCATION_MAX_KEYS)
                return kos_error_set(ret_error, -EBADMSG, "\"revoked_keys\" holds more than %d keys",
                                   KOS_REVOCATION_MAX_KEYS);
        for (size_t i = 0; i < json_array_size(array); i++) {
                json_t *v = json_array_get(array, i);
                const char *hex = json_string_value(v);
                if (!json_is_string(v) || json_string_length(v) != KOS_KEY_ID_HEX_LEN ||
                    strspn(hex, "0123456789abcdef") != KOS_KEY_ID_HEX_LEN ||
                    kos_hex_decode(hex, KOS_KEY_ID_HEX_LEN, ret->revoked[i], KOS_KEY_ID_LEN) < 0)
                        return kos_error_set(ret_error, -EBADMSG,
                                             "\"revoked_keys\"[%zu] is not a key id (16 lowercase hex digits)", i);
                ret->n_revoked = i + 1;
        }
        return 0;
}

static int parse_root(json_t *root, struct kos_revocation_list *ret, struct kos_error *ret_error) {
        json_t *format = json_object_get(root, "format"), *sv = json_object_get(root, "security_version");
        const char *key;
        json_t *value;

        if (!json_is_object(root))
                return kos_error_set(ret_error, -EBADMSG, "the revocation list must be a JSON object");
        if (!json_is_integer(format) || json_integer_value(format) != KOS_REVOCATION_FORMAT)
                return kos_error_set(ret_error, -EBADMSG, "\"format\" must be %d", KOS_REVOCATION_FORMAT);
        json_object_foreach(root, key, value)
                if (strcmp(key, "format") != 0 && strcmp(key, "security_version") != 0 &&
                    strcmp(key, "revoked_keys") != 0)
                        return kos_error_set(ret_error, -EBADMSG, "unknown key \"%s\"", key);
        if (!json_is_integer(sv) || json_integer_value(sv) < 0 || json_integer_value(sv) > UINT32_MAX)
                return kos_error_set(ret_error, -EBADMSG, "\"security_version\" must be an integer 0..%u", UINT32_MAX);
        ret->security_version = (uint32_t)json_integer_value(sv);
        return parse_revoked_keys(json_object_get(root, "revoked_keys"), ret, ret_error);
}

int kos_revocation_list_parse(const char *json, size_t len, struct kos_revocation_list *ret, struct kos_error *ret_error) {
        json_error_t jerr;
        int r;

        memset(ret, 0, sizeof *ret);
        if (len > KOS_REVOCATION_FILE_MAX)
                return kos_error_set(ret_error, -EBADMSG, "larger than %d bytes", KOS_REVOCATION_FILE_MAX);
        json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return kos_error_set(ret_error, -EBADMSG, "invalid JSON at line %d column %d: %s", jerr.line,
                                   jerr.column, jerr.text);
        r = parse_root(root, ret, ret_error);
        json_decref(root);
        return r;
}

int kos_revocation_list_load_verified(const struct kos_keyring *ring, const char *untrusted_json, size_t json_len,
                                      const char *untrusted_sig, size_t sig_len, struct kos_revocation_list *ret,
                                      struct kos_error *ret_error) {
        struct kos_signature_file sigs;
        uint8_t key_id[KOS_KEY_ID_LEN];
        char key_hex[KOS_KEY_ID_HEX_LEN + 1];

        memset(ret, 0, sizeof *ret);
        if (ring->n_revocation_keys == 0)
                return -ENOKEY;
        if (json_len > KOS_REVOCATION_FILE_MAX)
                return kos_error_set(ret_error, -EBADMSG, "larger than %d bytes", KOS_REVOCATION_FILE_MAX);
        if (kos_signature_file_parse(untrusted_sig, sig_len, &sigs, ret_error) < 0)
                return kos_error_prefix(ret_error, "signature file: ");
        /* Only the revocation keys vouch for a list: a leaked manifest key
         * must not be able to sign one that un-revokes it. */
        _cleanup_free_ struct kos_keyring *revokers = calloc(1, sizeof *revokers);
        if (!revokers)
                return -ENOMEM;
        revokers->n_keys = ring->n_revocation_keys;
        memcpy(revokers->keys, ring->revocation_keys, ring->n_revocation_keys * sizeof ring->revocation_keys[0]);
        enum kos_signature_verdict v = kos_signature_file_verify(&sigs, revokers, untrusted_json, json_len, key_id);
        kos_hex_encode(key_id, KOS_KEY_ID_LEN, key_hex);
        if (v == KOS_SIGNATURE_KEY_UNTRUSTED)
                return kos_error_set(ret_error, -EBADMSG, "signed by key %s, which is not a revocation key", key_hex);
        if (v != KOS_SIGNATURE_VALID)
                return kos_error_set(ret_error, -EBADMSG, "the signature by revocation key %s does not verify", key_hex);
        return kos_revocation_list_parse(untrusted_json, json_len, ret, ret_error);
}

void kos_revocation_state_read(const struct kos_imagefs *img, const struct kos_keyring *ring,
                               struct kos_revocation_state *ret) {
        _cleanup_free_ char *json = NULL, *sig = NULL;
        size_t json_len, sig_len;
        struct kos_error error = KOS_ERROR_NULL;
        int r;

        memset(ret, 0, sizeof *ret);
        ret->required = ring->n_revocation_keys > 0;
        r = kos_read_file_at(img->root_fd, KOS_REVOCATION_FILE, KOS_REVOCATION_FILE_MAX, &json, &json_len);
        if (r >= 0)
                r = kos_read_file_at(img->root_fd, KOS_REVOCATION_SIG_FILE, KOS_SIGNATURE_FILE_MAX, &sig, &sig_len);
        if (r == -ENOENT) {
                snprintf(ret->why, sizeof ret->why, "there is no %s (with its .sig)", KOS_REVOCATION_FILE);
        } else if (r < 0) {
                snprintf(ret->why, sizeof ret->why, "cannot read %s: %s", KOS_REVOCATION_FILE, strerror(-r));
        } else if (!ret->required) {
                r = -ENOKEY;
                snprintf(ret->why, sizeof ret->why, "the keyring holds no revocation key");
        } else if ((r = kos_revocation_list_load_verified(ring, json, json_len, sig, sig_len, &ret->list,
                                                          &error)) < 0)
                /* %.199s: the reason is cut where its buffer cut it before */
                snprintf(ret->why, sizeof ret->why, "%s: %.199s", KOS_REVOCATION_FILE,
                         r == -ENOMEM ? "out of memory" : error.msg);
        ret->error = r < 0 ? r : 0;
}

bool kos_revocation_list_names(const struct kos_revocation_list *list, const uint8_t id[static KOS_KEY_ID_LEN]) {
        for (size_t i = 0; i < list->n_revoked; i++)
                if (memcmp(list->revoked[i], id, KOS_KEY_ID_LEN) == 0)
                        return true;
        return false;
}

void kos_keyring_narrow(const struct kos_keyring *ring, const struct kos_revocation_list *list,
                        struct kos_keyring *ret) {
        *ret = *ring;
        ret->n_keys = 0;
        for (size_t i = 0; i < ring->n_keys; i++)
                if (!kos_revocation_list_names(list, ring->keys[i].id))
                        ret->keys[ret->n_keys++] = ring->keys[i];
}

int kos_revocation_list_format(const struct kos_revocation_list *list, char **ret_json) {
        char hex[KOS_KEY_ID_HEX_LEN + 1];
        json_t *keys = json_array();

        for (size_t i = 0; keys && i < list->n_revoked; i++) {
                kos_hex_encode(list->revoked[i], KOS_KEY_ID_LEN, hex);
                if (json_array_append_new(keys, json_string(hex)) < 0) {
                        json_decref(keys);
                        return -ENOMEM;
                }
        }
        json_t *root = json_pack("{s:i, s:I, s:o}", "format", KOS_REVOCATION_FORMAT, "security_version",
                                 (json_int_t)list->security_version, "revoked_keys", keys);
        if (!root)
                return -ENOMEM;
        char *text = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(2));
        json_decref(root);
        if (!text)
                return -ENOMEM;
        size_t n = strlen(text);
        char *out = realloc(text, n + 2);
        if (!out) {
                free(text);
                return -ENOMEM;
        }
        memcpy(out + n, "\n", 2);
        *ret_json = out;
        return 0;
}
