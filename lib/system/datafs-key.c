/* SPDX-License-Identifier: MIT */
/* The DataFS's secret: the mode, its seal and unseal, the key slot's
 * passphrase and the LUKS2 token that carries the sealed object (no
 * libcryptsetup here, so the unit tests run it). See datafs.h. */
#include "datafs-key.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The blob: TPM2B_PRIVATE then TPM2B_PUBLIC, as systemd's tpm2-blob. */
#define DATAFS_BLOB_MAX (2 * (2 + KOS_TPM_BLOB_MAX))

int datafs_mode_parse(const char *value, enum datafs_mode *ret) {
        if (!value || !*value || strcmp(value, "plain") == 0)
                *ret = DATAFS_MODE_PLAIN;
        else if (strcmp(value, "luks2") == 0)
                *ret = DATAFS_MODE_LUKS2;
        else
                return -EINVAL;
        return 0;
}

int datafs_seal_key(struct kos_tpm *t, const uint8_t secret[static DATAFS_SECRET_LEN],
                    const uint8_t values[24][KOS_SHA256_LEN], const struct kos_tpm_ecc_point *policy_key,
                    const struct kos_signed_policy *policy, struct datafs_sealed *ret, struct kos_error *ret_error) {
        int r;

        memset(ret, 0, sizeof *ret);
        ret->authorized = policy_key && policy;
        if (ret->authorized)
                r = kos_tpm_reseal_authorized(t, secret, DATAFS_SECRET_LEN, policy_key, policy, &ret->signed_policy,
                                              ret_error);
        else
                r = kos_tpm_seal(t, secret, DATAFS_SECRET_LEN, DATAFS_SEAL_PCRS, values, &ret->pcr, ret_error);
        return r;
}

int datafs_unseal_key(struct kos_tpm *t, const struct datafs_sealed *k, const struct kos_tpm_ecc_point *policy_key,
                      const struct kos_signed_policy *policy, uint8_t ret[static DATAFS_SECRET_LEN],
                      struct kos_error *ret_error) {
        uint8_t data[KOS_TPM_SEAL_DATA_MAX];
        size_t len = 0;
        int r;

        if (k->authorized && (!policy_key || !policy))
                return kos_error_set(ret_error, -ENOKEY, "it is sealed to signed policies, and there is no policy "
                                                         "key or signed policy to open it with");
        r = k->authorized ? kos_tpm_unseal_authorized(t, &k->signed_policy, policy_key, policy, data, &len, ret_error)
                          : kos_tpm_unseal(t, &k->pcr, data, &len, ret_error);
        if (r >= 0 && len != DATAFS_SECRET_LEN)
                r = kos_error_set(ret_error, -EBADMSG, "the sealed secret is %zu bytes, not %d", len,
                                  DATAFS_SECRET_LEN);
        if (r >= 0)
                memcpy(ret, data, DATAFS_SECRET_LEN);
        explicit_bzero(data, sizeof data);
        return r;
}

int datafs_passphrase(const uint8_t secret[static DATAFS_SECRET_LEN], uint64_t generation,
                      char ret[static DATAFS_PASSPHRASE_MAX]) {
        uint8_t message[sizeof(DATAFS_PASSPHRASE_LABEL) - 1 + 8], mac[KOS_SHA256_LEN];
        unsigned mac_len = 0;

        memcpy(message, DATAFS_PASSPHRASE_LABEL, sizeof(DATAFS_PASSPHRASE_LABEL) - 1);
        for (int i = 0; i < 8; i++)
                message[sizeof(DATAFS_PASSPHRASE_LABEL) - 1 + i] = (uint8_t)(generation >> (56 - 8 * i));
        if (!HMAC(EVP_sha256(), secret, DATAFS_SECRET_LEN, message, sizeof message, mac, &mac_len) ||
            mac_len != sizeof mac)
                return -EIO;
        _Static_assert(4 * ((KOS_SHA256_LEN + 2) / 3) < DATAFS_PASSPHRASE_MAX, "base64 fits");
        int n = EVP_EncodeBlock((unsigned char *)ret, mac, sizeof mac);
        explicit_bzero(mac, sizeof mac);
        return n;
}

/* --- The token ------------------------------------------------------------ */

static size_t put_tpm2b(uint8_t *p, const uint8_t *body, uint16_t len) {
        p[0] = (uint8_t)(len >> 8);
        p[1] = (uint8_t)len;
        memcpy(p + 2, body, len);
        return 2u + len;
}

/* The signed-policy token: the KOSSEAL2 bytes as its blob, no PCRs of its
 * own (they are the signed policy's). */
static json_t *authorized_token(const struct kos_authorized_key *k, const char *slot, uint64_t generation) {
        uint8_t blob[KOS_AUTHORIZED_KEY_MAX], policy[KOS_SHA256_LEN];
        char blob64[4 * (KOS_AUTHORIZED_KEY_MAX / 3 + 1) + 1], policy_hex[KOS_SHA256_HEX_LEN + 1];
        int n = kos_authorized_key_format(k, blob, sizeof blob);

        if (n < 0 || kos_tpm_authorize_policy_digest(k->policy_key_name, policy) < 0)
                return NULL;
        EVP_EncodeBlock((unsigned char *)blob64, blob, n);
        kos_hex_encode(policy, sizeof policy, policy_hex);
        return json_pack("{s:s, s:[s], s:s, s:[], s:s, s:s, s:s, s:b, s:s, s:I}", "type", DATAFS_TOKEN_TYPE,
                         "keyslots", slot, "tpm2-blob", blob64, "tpm2-pcrs", "tpm2-pcr-bank", "sha256",
                         "tpm2-primary-alg", "ecc", "tpm2-policy-hash", policy_hex, "tpm2-pin", 0, "kos-scheme",
                         DATAFS_SCHEME_SIGNED_POLICY, "kos-generation", (json_int_t)generation);
}

static json_t *pcr_token(const struct kos_sealed_key *k, const char *slot, uint64_t generation) {
        uint8_t blob[DATAFS_BLOB_MAX], policy[KOS_SHA256_LEN];
        char blob64[4 * (DATAFS_BLOB_MAX / 3 + 1) + 1], policy_hex[KOS_SHA256_HEX_LEN + 1];
        char pcr7[KOS_SHA256_HEX_LEN + 1], pcr15[KOS_SHA256_HEX_LEN + 1];

        if (k->pcr_mask != DATAFS_SEAL_PCRS || k->private_len > KOS_TPM_BLOB_MAX || k->public_len > KOS_TPM_BLOB_MAX ||
            kos_tpm_policy_pcr_digest(k->pcr_mask, k->pcr_values, policy) < 0)
                return NULL;
        size_t n = put_tpm2b(blob, k->private_area, k->private_len);
        n += put_tpm2b(blob + n, k->public_area, k->public_len);
        EVP_EncodeBlock((unsigned char *)blob64, blob, (int)n);
        kos_hex_encode(policy, sizeof policy, policy_hex);
        kos_hex_encode(k->pcr_values[7], KOS_SHA256_LEN, pcr7);
        kos_hex_encode(k->pcr_values[KOS_TPM_SEAL_PCR], KOS_SHA256_LEN, pcr15);
        return json_pack("{s:s, s:[s], s:s, s:[i, i], s:s, s:s, s:s, s:b, s:{s:s, s:s}, s:I}", "type",
                         DATAFS_TOKEN_TYPE, "keyslots", slot, "tpm2-blob", blob64, "tpm2-pcrs", 7, KOS_TPM_SEAL_PCR,
                         "tpm2-pcr-bank", "sha256", "tpm2-primary-alg", "ecc", "tpm2-policy-hash", policy_hex,
                         "tpm2-pin", 0, "kos-pcr-values", "7", pcr7, "15", pcr15, "kos-generation",
                         (json_int_t)generation);
}

int datafs_token_format(const struct datafs_sealed *k, int keyslot, uint64_t generation, char *buf, size_t size) {
        char slot[16];

        if (keyslot < 0 || generation > INT64_MAX)
                return -EINVAL;
        snprintf(slot, sizeof slot, "%d", keyslot);
        json_t *o = k->authorized ? authorized_token(&k->signed_policy, slot, generation)
                                  : pcr_token(&k->pcr, slot, generation);
        if (!o)
                return -EINVAL;
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        int r = (size_t)snprintf(buf, size, "%s", text) < size ? 0 : -ENOBUFS;
        free(text);
        return r;
}

/* One TPM2B of the blob: 0 and the position after it, or -EBADMSG. */
static int take_tpm2b(const uint8_t *blob, size_t len, size_t *pos, uint8_t ret[static KOS_TPM_BLOB_MAX],
                      uint16_t *ret_len) {
        if (len - *pos < 2)
                return -EBADMSG;
        uint16_t n = (uint16_t)(blob[*pos] << 8 | blob[*pos + 1]);
        *pos += 2;
        if (n == 0 || n > KOS_TPM_BLOB_MAX || n > len - *pos)
                return -EBADMSG;
        memcpy(ret, blob + *pos, n);
        *ret_len = n;
        *pos += n;
        return 0;
}

/* Base64 into buf (size bytes at most): 0 with the length, or -EBADMSG. */
static int decode_base64(const char *untrusted_b64, uint8_t *buf, size_t size, size_t *ret_len) {
        size_t in = strlen(untrusted_b64), pad = 0;

        if (in == 0 || in % 4 != 0 || in / 4 * 3 > size)
                return -EBADMSG;
        while (pad < 2 && untrusted_b64[in - 1 - pad] == '=')
                pad++;
        int n = EVP_DecodeBlock(buf, (const unsigned char *)untrusted_b64, (int)in);
        if (n < 0 || (size_t)n < pad)
                return -EBADMSG;
        *ret_len = (size_t)n - pad;
        return 0;
}

/* Exactly the base64 of the two TPM2Bs, nothing after them. */
static int parse_blob(const char *untrusted_b64, struct kos_sealed_key *k) {
        uint8_t blob[4 * (DATAFS_BLOB_MAX / 3 + 1)];
        size_t len, pos = 0;

        if (decode_base64(untrusted_b64, blob, sizeof blob, &len) < 0 ||
            take_tpm2b(blob, len, &pos, k->private_area, &k->private_len) < 0 ||
            take_tpm2b(blob, len, &pos, k->public_area, &k->public_len) < 0 || pos != len)
                return -EBADMSG;
        return 0;
}

/* The base64 of a KOSSEAL2 file, every rule of kos_authorized_key_parse(). */
static int parse_authorized_blob(const char *untrusted_b64, struct kos_authorized_key *k) {
        uint8_t blob[4 * (KOS_AUTHORIZED_KEY_MAX / 3 + 1)];
        size_t len;

        if (decode_base64(untrusted_b64, blob, sizeof blob, &len) < 0 ||
            kos_authorized_key_parse(blob, len, k) < 0)
                return -EBADMSG;
        return 0;
}

static int parse_pcr_value(json_t *values, const char *pcr, uint8_t ret[static KOS_SHA256_LEN]) {
        json_t *v = json_object_get(values, pcr);
        const char *hex = json_string_value(v);

        if (!v)
                return 0; /* only for messages: zero when absent */
        return hex && kos_hex_decode(hex, strlen(hex), ret, KOS_SHA256_LEN) >= 0 ? 0 : -EBADMSG;
}

/* The PCR scheme's rules: PCRs 7 and 15 of the SHA-256 bank, the two
 * TPM2Bs, and the values (for messages only) when present. */
static int parse_pcr_token(json_t *pcrs, const char *bank, const char *blob, json_t *values,
                           struct kos_sealed_key *ret) {
        if (strcmp(bank, "sha256") != 0 || json_array_size(pcrs) != 2 ||
            json_integer_value(json_array_get(pcrs, 0)) != 7 ||
            json_integer_value(json_array_get(pcrs, 1)) != KOS_TPM_SEAL_PCR || parse_blob(blob, ret) < 0 ||
            (values && (parse_pcr_value(values, "7", ret->pcr_values[7]) < 0 ||
                        parse_pcr_value(values, "15", ret->pcr_values[KOS_TPM_SEAL_PCR]) < 0)))
                return -EBADMSG;
        ret->pcr_mask = DATAFS_SEAL_PCRS;
        return 0;
}

int datafs_token_parse(const char *untrusted_json, struct datafs_sealed *ret, int *ret_keyslot,
                       uint64_t *ret_generation) {
        const char *type, *blob, *bank, *slot, *scheme = NULL;
        json_t *keyslots, *pcrs, *values = NULL;
        json_int_t generation = 0;
        json_error_t error;
        char *end;

        memset(ret, 0, sizeof *ret);
        if (strlen(untrusted_json) > DATAFS_TOKEN_MAX)
                return -EBADMSG;
        json_t *o = json_loads(untrusted_json, JSON_REJECT_DUPLICATES, &error);
        int r = -EBADMSG;
        if (!o || json_unpack(o, "{s:s, s:o, s:s, s:o, s:s, s?o, s?s, s:I}", "type", &type, "keyslots", &keyslots,
                              "tpm2-blob", &blob, "tpm2-pcrs", &pcrs, "tpm2-pcr-bank", &bank, "kos-pcr-values",
                              &values, "kos-scheme", &scheme, "kos-generation", &generation) < 0 ||
            generation < 0)
                goto out;
        if (strcmp(type, DATAFS_TOKEN_TYPE) != 0 || json_array_size(keyslots) != 1 ||
            !(slot = json_string_value(json_array_get(keyslots, 0))))
                goto out;
        errno = 0;
        long n = strtol(slot, &end, 10);
        if (errno || *end || end == slot || n < 0 || n > 31)
                goto out;
        ret->authorized = scheme != NULL;
        if (ret->authorized ? strcmp(scheme, DATAFS_SCHEME_SIGNED_POLICY) != 0 || strcmp(bank, "sha256") != 0 ||
                                      !json_is_array(pcrs) || json_array_size(pcrs) != 0 || values ||
                                      parse_authorized_blob(blob, &ret->signed_policy) < 0
                            : parse_pcr_token(pcrs, bank, blob, values, &ret->pcr) < 0)
                goto out;
        *ret_keyslot = (int)n;
        *ret_generation = (uint64_t)generation;
        r = 0;
out:
        json_decref(o);
        if (r < 0)
                memset(ret, 0, sizeof *ret);
        return r;
}
