/* SPDX-License-Identifier: MIT */
/* Signed PCR policies: see tpm-policy.h and docs/tpm.md, "Signed policies". */
#include "tpm-policy.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

#include "tpm-marshal.h"
#include "tpm-seal.h"
#include "tpm-session.h"

#define CC_POLICY_AUTHORIZE 0x0000016Au
#define CC_LOAD_EXTERNAL 0x00000167u
#define CC_VERIFY_SIGNATURE 0x00000177u
#define CC_READ_PUBLIC 0x00000173u
#define ALG_ECDSA 0x0018
#define ECC_NIST_P256 0x0003
#define ST_VERIFIED 0x8022
#define ATTR_SIGN 0x00040000u /* TPMA_OBJECT_SIGN_ENCRYPT */
#define STORAGE_KEY_ATTRIBUTES 0x00030472u /* tpm.c's CreatePrimary template */
#define TICKET_MAX (2 + 4 + 2 + 64)

int kos_tpm_ecc_point_from_pem(const char *pem, size_t len, struct kos_tpm_ecc_point *ret) {
        BIO *bio = len <= 4096 ? BIO_new_mem_buf(pem, (int)len) : NULL;
        EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIGNUM *x = NULL, *y = NULL;
        char group[32];
        int r = -EINVAL;

        if (pkey && EVP_PKEY_is_a(pkey, "EC") &&
            EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) > 0 &&
            strcmp(group, "prime256v1") == 0 && EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) > 0 &&
            EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) > 0 && BN_bn2binpad(x, ret->x, 32) == 32 &&
            BN_bn2binpad(y, ret->y, 32) == 32)
                r = 0;
        BN_free(x);
        BN_free(y);
        EVP_PKEY_free(pkey);
        BIO_free(bio);
        return r;
}

static void put_policy_key_public(struct kos_tpm_out *w, const struct kos_tpm_ecc_point *key) {
        out_u16(w, KOS_TPM_ALG_ECC);
        out_u16(w, KOS_TPM_ALG_SHA256);
        out_u32(w, ATTR_SIGN);
        out_u16(w, 0);                /* authPolicy */
        out_u16(w, KOS_TPM_ALG_NULL); /* symmetric */
        out_u16(w, ALG_ECDSA);        /* scheme: ECDSA with SHA-256 */
        out_u16(w, KOS_TPM_ALG_SHA256);
        out_u16(w, ECC_NIST_P256);
        out_u16(w, KOS_TPM_ALG_NULL); /* kdf */
        out_tpm2b(w, key->x, 32);
        out_tpm2b(w, key->y, 32);
}

int kos_tpm_policy_key_public(const struct kos_tpm_ecc_point *key, uint8_t *buf, size_t size) {
        struct kos_tpm_out w = {buf, size, 0, false};
        put_policy_key_public(&w, key);
        return out_end(&w);
}

int kos_tpm_policy_key_name(const struct kos_tpm_ecc_point *key, uint8_t ret_name[static KOS_TPM_NAME_LEN]) {
        uint8_t pub[128];
        int n = kos_tpm_policy_key_public(key, pub, sizeof pub);

        if (n < 0)
                return n;
        ret_name[0] = KOS_TPM_ALG_SHA256 >> 8, ret_name[1] = KOS_TPM_ALG_SHA256 & 0xff;
        return kos_sha256(pub, (size_t)n, ret_name + 2);
}

int kos_tpm_authorize_policy_digest(const uint8_t name[static KOS_TPM_NAME_LEN],
                                    uint8_t ret_digest[static KOS_SHA256_LEN]) {
        uint8_t buf[KOS_SHA256_LEN + 4 + KOS_TPM_NAME_LEN] = {0}, step[KOS_SHA256_LEN + sizeof(KOS_TPM_POLICY_REF) - 1];
        const uint8_t cc[4] = {0, 0, 0x01, 0x6a};

        /* PolicyUpdate(TPM_CC_PolicyAuthorize, keySign.name, policyRef) from
         * a zero digest: H(H(0 || cc || name) || policyRef). */
        memcpy(buf + KOS_SHA256_LEN, cc, 4);
        memcpy(buf + KOS_SHA256_LEN + 4, name, KOS_TPM_NAME_LEN);
        if (kos_sha256(buf, sizeof buf, step) < 0)
                return -EIO;
        memcpy(step + KOS_SHA256_LEN, KOS_TPM_POLICY_REF, sizeof(KOS_TPM_POLICY_REF) - 1);
        return kos_sha256(step, sizeof step, ret_digest);
}

int kos_signed_policy_ahash(uint32_t mask, const uint8_t values[24][KOS_SHA256_LEN],
                            uint8_t ret_ahash[static KOS_SHA256_LEN]) {
        uint8_t buf[KOS_SHA256_LEN + sizeof(KOS_TPM_POLICY_REF) - 1];
        int r = kos_tpm_policy_pcr_digest(mask, values, buf);

        if (r < 0)
                return r;
        memcpy(buf + KOS_SHA256_LEN, KOS_TPM_POLICY_REF, sizeof(KOS_TPM_POLICY_REF) - 1);
        return kos_sha256(buf, sizeof buf, ret_ahash);
}

int kos_tpm_bk_version_pcr(uint32_t security_version, uint8_t ret_value[static KOS_SHA256_LEN]) {
        char event[64];
        uint8_t buf[2 * KOS_SHA256_LEN] = {0};
        int n = snprintf(event, sizeof event, KOS_TPM_BK_VERSION_EVENT_PREFIX "%lu", (unsigned long)security_version);

        if (n < 0 || (size_t)n >= sizeof event || kos_sha256(event, (size_t)n, buf + KOS_SHA256_LEN) < 0)
                return -EIO;
        return kos_sha256(buf, sizeof buf, ret_value);
}

/* --- Files -------------------------------------------------------------- */


int kos_signed_policy_parse(const uint8_t *untrusted, size_t len, struct kos_signed_policy *ret) {
        struct kos_tpm_in r = {untrusted, len, 0};
        uint8_t magic[8], n;

        memset(ret, 0, sizeof *ret);
        if (len > KOS_SIGNED_POLICY_MAX || in_get(&r, magic, 8) < 0 || memcmp(magic, KOS_SIGNED_POLICY_MAGIC, 8) != 0 ||
            in_u8(&r, &n) < 0 || n == 0 || n > KOS_SIGNED_POLICY_MAX_ENTRIES)
                return -EBADMSG;
        for (unsigned e = 0; e < n; e++) {
                struct kos_signed_policy_entry *entry = &ret->entries[e];
                if (in_u32(&r, &entry->pcr_mask) < 0 || entry->pcr_mask == 0 || entry->pcr_mask >> 24)
                        return -EBADMSG;
                for (unsigned i = 0; i < 24; i++)
                        if ((entry->pcr_mask & (1u << i)) && in_get(&r, entry->pcr_values[i], KOS_SHA256_LEN) < 0)
                                return -EBADMSG;
                if (in_get(&r, entry->r, 32) < 0 || in_get(&r, entry->s, 32) < 0)
                        return -EBADMSG;
        }
        ret->n = n;
        return in_at_end(&r) ? 0 : -EBADMSG;
}

int kos_signed_policy_format(const struct kos_signed_policy *p, uint8_t *buf, size_t size) {
        struct kos_tpm_out w = {buf, size, 0, false};

        if (p->n == 0 || p->n > KOS_SIGNED_POLICY_MAX_ENTRIES)
                return -EINVAL;
        out_put(&w, KOS_SIGNED_POLICY_MAGIC, 8);
        out_u8(&w, (uint8_t)p->n);
        for (unsigned e = 0; e < p->n; e++) {
                const struct kos_signed_policy_entry *entry = &p->entries[e];
                if (entry->pcr_mask == 0 || entry->pcr_mask >> 24)
                        return -EINVAL;
                out_u32(&w, entry->pcr_mask);
                for (unsigned i = 0; i < 24; i++)
                        if (entry->pcr_mask & (1u << i))
                                out_put(&w, entry->pcr_values[i], KOS_SHA256_LEN);
                out_put(&w, entry->r, 32);
                out_put(&w, entry->s, 32);
        }
        return w.len > KOS_SIGNED_POLICY_MAX ? -ENOBUFS : out_end(&w);
}

int kos_authorized_key_parse(const uint8_t *untrusted, size_t len, struct kos_authorized_key *ret) {
        struct kos_tpm_in r = {untrusted, len, 0};
        uint8_t magic[8];

        memset(ret, 0, sizeof *ret);
        if (len > KOS_AUTHORIZED_KEY_MAX || in_get(&r, magic, 8) < 0 ||
            memcmp(magic, KOS_AUTHORIZED_KEY_MAGIC, 8) != 0 ||
            in_get(&r, ret->policy_key_name, KOS_TPM_NAME_LEN) < 0 || ret->policy_key_name[0] != 0 ||
            ret->policy_key_name[1] != KOS_TPM_ALG_SHA256 || in_get(&r, ret->storage_key.x, 32) < 0 ||
            in_get(&r, ret->storage_key.y, 32) < 0 ||
            in_tpm2b(&r, 0, KOS_TPM_BLOB_MAX, ret->public_area, &ret->public_len) < 0 || ret->public_len == 0 ||
            in_tpm2b(&r, 0, KOS_TPM_BLOB_MAX, ret->private_area, &ret->private_len) < 0 || ret->private_len == 0 ||
            !in_at_end(&r))
                return -EBADMSG;
        return 0;
}

int kos_authorized_key_format(const struct kos_authorized_key *k, uint8_t *buf, size_t size) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_put(&w, KOS_AUTHORIZED_KEY_MAGIC, 8);
        out_put(&w, k->policy_key_name, KOS_TPM_NAME_LEN);
        out_put(&w, k->storage_key.x, 32);
        out_put(&w, k->storage_key.y, 32);
        out_tpm2b(&w, k->public_area, k->public_len);
        out_tpm2b(&w, k->private_area, k->private_len);
        return w.len > KOS_AUTHORIZED_KEY_MAX ? -ENOBUFS : out_end(&w);
}

/* --- Commands ----------------------------------------------------------- */

int kos_tpm_build_load_external(uint8_t *buf, size_t size, const struct kos_tpm_ecc_point *key) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, CC_LOAD_EXTERNAL);
        out_u16(&w, 0); /* inPrivate: none, the public half alone */
        size_t at = w.len;
        out_u16(&w, 0);
        put_policy_key_public(&w, key);
        if (!w.overflow)
                w.buf[at] = (uint8_t)((w.len - at - 2) >> 8), w.buf[at + 1] = (uint8_t)(w.len - at - 2);
        /* The owner hierarchy, not NULL: VerifySignature's ticket for a key
         * in the NULL hierarchy is a NULL ticket, which PolicyAuthorize
         * refuses (Part 3, 20.1). */
        out_u32(&w, KOS_TPM_RH_OWNER);
        return out_end_command(&w);
}

int kos_tpm_build_verify_signature(uint8_t *buf, size_t size, uint32_t key, const uint8_t digest[static KOS_SHA256_LEN],
                                   const uint8_t r[static 32], const uint8_t s[static 32]) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, CC_VERIFY_SIGNATURE);
        out_u32(&w, key);
        out_tpm2b(&w, digest, KOS_SHA256_LEN);
        out_u16(&w, ALG_ECDSA);
        out_u16(&w, KOS_TPM_ALG_SHA256);
        out_tpm2b(&w, r, 32);
        out_tpm2b(&w, s, 32);
        return out_end_command(&w);
}

int kos_tpm_build_policy_authorize(uint8_t *buf, size_t size, uint32_t session,
                                   const uint8_t approved[static KOS_SHA256_LEN],
                                   const uint8_t name[static KOS_TPM_NAME_LEN], const uint8_t *ticket,
                                   size_t ticket_len) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, CC_POLICY_AUTHORIZE);
        out_u32(&w, session);
        out_tpm2b(&w, approved, KOS_SHA256_LEN);
        out_tpm2b(&w, KOS_TPM_POLICY_REF, sizeof(KOS_TPM_POLICY_REF) - 1);
        out_tpm2b(&w, name, KOS_TPM_NAME_LEN);
        out_put(&w, ticket, ticket_len); /* TPMT_TK_VERIFIED as VerifySignature returned it */
        return out_end_command(&w);
}

int kos_tpm_build_read_public(uint8_t *buf, size_t size, uint32_t handle) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, CC_READ_PUBLIC);
        out_u32(&w, handle);
        return out_end_command(&w);
}

int kos_tpm_parse_storage_key_public(const uint8_t *p, size_t len, struct kos_tpm_ecc_point *ret) {
        struct kos_tpm_in r = {p, len, 0};
        uint16_t pub_len;

        /* outPublic: exactly the template, with the TPM's point. */
        if (in_u16(&r, &pub_len) < 0 || pub_len != 2 + 2 + 4 + 2 + 6 + 2 + 2 + 2 + 2 * (2 + 32) ||
            in_expect_u16(&r, KOS_TPM_ALG_ECC) < 0 || in_expect_u16(&r, KOS_TPM_ALG_SHA256) < 0 ||
            in_expect_u32(&r, STORAGE_KEY_ATTRIBUTES) < 0 || in_expect_u16(&r, 0) < 0 ||
            in_expect_u16(&r, 0x0006) < 0 || in_expect_u16(&r, 128) < 0 || in_expect_u16(&r, 0x0043) < 0 ||
            in_expect_u16(&r, KOS_TPM_ALG_NULL) < 0 || in_expect_u16(&r, ECC_NIST_P256) < 0 ||
            in_expect_u16(&r, KOS_TPM_ALG_NULL) < 0 || in_tpm2b(&r, 32, 0, ret->x, NULL) < 0 ||
            in_tpm2b(&r, 32, 0, ret->y, NULL) < 0)
                return -EBADMSG;
        /* name, qualifiedName */
        if (in_tpm2b(&r, KOS_TPM_NAME_LEN, 0, NULL, NULL) < 0 || in_tpm2b(&r, KOS_TPM_NAME_LEN, 0, NULL, NULL) < 0 ||
            !in_at_end(&r))
                return -EBADMSG;
        return 0;
}

/* --- With a TPM --------------------------------------------------------- */

/* Sends a built command: 0, -EPROTO for a TPM refusal, or another errno;
 * the parameters (after any response handle) in *params. */
static int run(struct kos_tpm *t, int built, const uint8_t *cmd, uint8_t resp[static KOS_TPM_RESPONSE_MAX],
               const uint8_t **params, size_t *params_len) {
        uint32_t rc;
        if (built < 0)
                return built;
        int r = kos_tpm_transact(t, cmd, (size_t)built, false, resp, &rc, params, params_len);
        return r < 0 ? r : rc != 0 ? -EPROTO : 0;
}

static int read_storage_key(struct kos_tpm *t, uint32_t primary, struct kos_tpm_ecc_point *ret) {
        uint8_t cmd[64], resp[KOS_TPM_RESPONSE_MAX];
        const uint8_t *p = NULL;
        size_t n = 0;
        int r = run(t, kos_tpm_build_read_public(cmd, sizeof cmd, primary), cmd, resp, &p, &n);

        return r < 0 ? r : kos_tpm_parse_storage_key_public(p, n, ret);
}

int kos_tpm_storage_key_point(struct kos_tpm *t, struct kos_tpm_ecc_point *ret, struct kos_error *ret_error) {
        uint32_t primary;
        int r = kos_tpm_create_primary(t, &primary);

        if (r < 0) {
                kos_tpm_say_error(t, "CreatePrimary (the KOS storage key)", r, ret_error);
                return r;
        }
        if ((r = read_storage_key(t, primary, ret)) < 0)
                kos_tpm_say_error(t, "ReadPublic (the KOS storage key)", r, ret_error);
        (void)kos_tpm_flush_context(t, primary);
        return r;
}

int kos_tpm_seal_authorized(struct kos_tpm *t, const uint8_t *data, size_t data_len,
                            const struct kos_tpm_ecc_point *policy_key, struct kos_authorized_key *ret, struct kos_error *ret_error) {
        uint8_t policy[KOS_SHA256_LEN];
        uint32_t primary;
        int r;

        memset(ret, 0, sizeof *ret);
        if (data_len == 0 || data_len > KOS_TPM_SEAL_DATA_MAX)
                return kos_error_set(ret_error, -EINVAL, "a sealed key is 1 to %d bytes", KOS_TPM_SEAL_DATA_MAX);
        if (kos_tpm_policy_key_name(policy_key, ret->policy_key_name) < 0 ||
            kos_tpm_authorize_policy_digest(ret->policy_key_name, policy) < 0)
                return kos_error_set(ret_error, -EIO, "cannot compute the policy");
        if ((r = kos_tpm_create_primary(t, &primary)) < 0) {
                kos_tpm_say_error(t, "CreatePrimary (the KOS storage key)", r, ret_error);
                return r;
        }
        if ((r = read_storage_key(t, primary, &ret->storage_key)) < 0)
                kos_tpm_say_error(t, "ReadPublic (the KOS storage key)", r, ret_error);
        else if ((r = kos_tpm_create(t, primary, data, data_len, policy, ret->private_area, &ret->private_len,
                                     ret->public_area, &ret->public_len)) < 0)
                kos_tpm_say_error(t, "Create (the sealed object)", r, ret_error);
        (void)kos_tpm_flush_context(t, primary);
        return r;
}

/* The entry whose PCR values the TPM holds now; -EPERM with the first PCR
 * that differs from the last entry (the newest) otherwise. */
static int pick_entry(struct kos_tpm *t, const struct kos_signed_policy *policy, unsigned *ret, struct kos_error *ret_error) {
        uint8_t now[24][KOS_SHA256_LEN];
        uint32_t read = 0;
        int differs = -1;

        for (unsigned e = 0; e < policy->n; e++) {
                const struct kos_signed_policy_entry *entry = &policy->entries[e];
                differs = -1;
                for (unsigned i = 0; i < 24 && differs < 0; i++) {
                        if (!(entry->pcr_mask & (1u << i)))
                                continue;
                        if (!(read & (1u << i))) {
                                int r = kos_tpm_pcr_read(t, i, now[i]);
                                if (r < 0)
                                        return kos_tpm_say_error(t, "PCR_Read", r, ret_error);
                                read |= 1u << i;
                        }
                        if (!kos_digest_equal(now[i], entry->pcr_values[i]))
                                differs = (int)i;
                }
                if (differs < 0) {
                        *ret = e;
                        return 0;
                }
        }
        char have[KOS_SHA256_HEX_LEN + 1], want[KOS_SHA256_HEX_LEN + 1];
        kos_hex_encode(now[differs], KOS_SHA256_LEN, have);
        kos_hex_encode(policy->entries[policy->n - 1].pcr_values[differs], KOS_SHA256_LEN, want);
        return kos_error_set(
                ret_error, -EPERM,
                "no signed policy matches the PCRs: PCR %d holds %.16s..., the newest signed policy needs %.16s...%s",
                differs, have, want,
                differs == KOS_TPM_SEAL_PCR          ? " (no KOS Boot Kernel started this, or after the leave event)"
                : differs == KOS_TPM_BK_VERSION_PCR ? " (a Boot Kernel whose security version no policy approves)"
                : differs == 7                       ? " (Secure Boot is off, or its keys or dbx are not the signed ones)"
                                                     : "");
}

/* VerifySignature of the entry by the policy key, loaded from its public
 * half: the ticket PolicyAuthorize needs, in ret_ticket. */
static int verify_entry(struct kos_tpm *t, const struct kos_tpm_ecc_point *policy_key,
                        const struct kos_signed_policy_entry *entry, uint8_t ret_ticket[static TICKET_MAX],
                        size_t *ret_ticket_len, struct kos_error *ret_error) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX], ahash[KOS_SHA256_LEN];
        const uint8_t *p = NULL;
        size_t n = 0;
        uint32_t key = 0;
        int r = run(t, kos_tpm_build_load_external(cmd, sizeof cmd, policy_key), cmd, resp, &p, &n);

        struct kos_tpm_in in = {p, n, 0};
        if (r == 0 && (in_u32(&in, &key) < 0 || in_tpm2b(&in, KOS_TPM_NAME_LEN, 0, NULL, NULL) < 0 || !in_at_end(&in)))
                r = -EBADMSG;
        if (r < 0) {
                kos_tpm_say_error(t, "LoadExternal (the vendor's policy key)", r, ret_error);
                return r;
        }
        if ((r = kos_signed_policy_ahash(entry->pcr_mask, entry->pcr_values, ahash)) < 0)
                goto out;
        r = run(t, kos_tpm_build_verify_signature(cmd, sizeof cmd, key, ahash, entry->r, entry->s), cmd, resp, &p, &n);
        if (r == -EPROTO && ((t->last_rc & 0xbf) == 0x09B /* TPM_RC_SIGNATURE */)) {
                kos_error_set(ret_error, r,
                              "the signed policy is not signed by the vendor's policy key in this initrd "
                              "(TPM_RC_SIGNATURE)");
                goto out;
        }
        if (r < 0) {
                kos_tpm_say_error(t, "VerifySignature", r, ret_error);
                goto out;
        }
        /* TPMT_TK_VERIFIED: tag, hierarchy, digest; nothing after. */
        struct kos_tpm_in ticket = {p, n, 0};
        if (n > TICKET_MAX || in_expect_u16(&ticket, ST_VERIFIED) < 0 || in_u32(&ticket, &(uint32_t){0}) < 0 ||
            in_tpm2b(&ticket, 0, 64, NULL, NULL) < 0 || !in_at_end(&ticket)) {
                r = -EBADMSG;
                kos_tpm_say_error(t, "VerifySignature", r, ret_error);
                goto out;
        }
        memcpy(ret_ticket, p, n);
        *ret_ticket_len = n;
out:
        (void)kos_tpm_flush_context(t, key);
        return r;
}

static int authorize(struct kos_tpm *t, uint32_t session, const struct kos_tpm_ecc_point *policy_key,
                     const struct kos_signed_policy_entry *entry, struct kos_error *ret_error) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX], ticket[TICKET_MAX], name[KOS_TPM_NAME_LEN];
        uint8_t approved[KOS_SHA256_LEN];
        const uint8_t *p = NULL;
        size_t n, ticket_len;
        int r;

        if ((r = verify_entry(t, policy_key, entry, ticket, &ticket_len, ret_error)) < 0)
                return r;
        if ((r = kos_tpm_policy_pcr(t, session, entry->pcr_mask)) < 0) {
                kos_tpm_say_error(t, "PolicyPCR", r, ret_error);
                return r;
        }
        if (kos_tpm_policy_key_name(policy_key, name) < 0 ||
            kos_tpm_policy_pcr_digest(entry->pcr_mask, entry->pcr_values, approved) < 0)
                return -EIO;
        r = run(t, kos_tpm_build_policy_authorize(cmd, sizeof cmd, session, approved, name, ticket, ticket_len), cmd,
                resp, &p, &n);
        if (r == 0 && n != 0)
                r = -EBADMSG;
        if (r == -EPROTO && (t->last_rc & 0xbf) == KOS_TPM_RC_VALUE && (t->last_rc & 0x80))
                kos_error_set(ret_error, r, "PolicyAuthorize: the PCRs no longer hold the signed values (TPM_RC_VALUE)");
        else if (r < 0)
                kos_tpm_say_error(t, "PolicyAuthorize", r, ret_error);
        return r;
}

int kos_tpm_unseal_authorized(struct kos_tpm *t, const struct kos_authorized_key *k,
                              const struct kos_tpm_ecc_point *policy_key, const struct kos_signed_policy *policy,
                              uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX], size_t *ret_len, struct kos_error *ret_error) {
        uint8_t name[KOS_TPM_NAME_LEN], item_name[KOS_TPM_NAME_LEN];
        struct kos_tpm_session session = {0};
        uint32_t primary, item = 0;
        unsigned e = 0; /* set by pick_entry() when it returns 0 */
        int r;

        if (kos_tpm_policy_key_name(policy_key, name) < 0)
                return -EIO;
        if (!kos_digest_equal(name + 2, k->policy_key_name + 2))
                return kos_error_set(ret_error, -EPERM,
                                     "the key is sealed to another vendor policy key than the one in this initrd");
        if ((r = pick_entry(t, policy, &e, ret_error)) < 0)
                return r;
        /* The object's name, for the session's HMAC: nameAlg || H(public). */
        item_name[0] = KOS_TPM_ALG_SHA256 >> 8, item_name[1] = KOS_TPM_ALG_SHA256 & 0xff;
        if (kos_sha256(k->public_area, k->public_len, item_name + 2) < 0)
                return -EIO;
        if ((r = kos_tpm_create_primary(t, &primary)) < 0) {
                kos_tpm_say_error(t, "CreatePrimary (the KOS storage key)", r, ret_error);
                return r;
        }
        r = kos_tpm_load_sealed_object(t, primary, k->public_area, k->public_len, k->private_area, k->private_len,
                                       &item, ret_error);
        if (r < 0)
                goto out;
        /* Salted to the point recorded when sealing, not to what the TPM
         * says now: an interposer that answers with its own key cannot
         * derive the salt. */
        if ((r = kos_tpm_start_salted_policy_session(t, primary, &k->storage_key, &session)) < 0) {
                kos_tpm_say_error(t, "StartAuthSession (salted to the KOS storage key)", r, ret_error);
                goto out;
        }
        if ((r = authorize(t, session.handle, policy_key, &policy->entries[e], ret_error)) < 0)
                goto out;
        r = kos_tpm_unseal_encrypted(t, item, item_name, &session, ret_data, ret_len);
        if (r == 0 || r == -EBADMSG)
                session.handle = 0; /* not continued: the TPM flushed it */
        if (r == -EPROTO && (t->last_rc & 0xbf) == KOS_TPM_RC_POLICY_FAIL)
                kos_error_set(ret_error, r,
                              "Unseal: the object's policy is another (TPM_RC_POLICY_FAIL): the sealed-key file was "
                              "changed");
        else if (r == -EBADMSG)
                kos_error_set(ret_error, r,
                              "Unseal: the response's HMAC is not the TPM's (a changed response, or the TPM's storage "
                              "key is not the one recorded when sealing)");
        else if (r < 0)
                kos_tpm_say_error(t, "Unseal (salted, encrypted response)", r, ret_error);
out:
        if (session.handle)
                (void)kos_tpm_flush_context(t, session.handle);
        if (item)
                (void)kos_tpm_flush_context(t, item);
        (void)kos_tpm_flush_context(t, primary);
        return r;
}

int kos_tpm_reseal_authorized(struct kos_tpm *t, const uint8_t *data, size_t data_len,
                              const struct kos_tpm_ecc_point *policy_key, const struct kos_signed_policy *policy,
                              struct kos_authorized_key *ret, struct kos_error *ret_error) {
        uint8_t back[KOS_TPM_SEAL_DATA_MAX];
        size_t back_len = 0;
        struct kos_error why = KOS_ERROR_NULL;
        int r = kos_tpm_seal_authorized(t, data, data_len, policy_key, ret, ret_error);

        if (r < 0)
                return r;
        r = kos_tpm_unseal_authorized(t, ret, policy_key, policy, back, &back_len, &why);
        if (r == 0 && (back_len != data_len || CRYPTO_memcmp(back, data, data_len) != 0))
                r = kos_error_set(&why, -EIO, "it gives back another key");
        explicit_bzero(back, sizeof back);
        if (r < 0)
                return kos_error_set(ret_error, -EPERM,
                                     "sealed again, but the signed policy does not open the new object (%.399s): the "
                                     "old file stays",
                                     why.msg);
        return 0;
}
