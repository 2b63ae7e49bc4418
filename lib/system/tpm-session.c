/* SPDX-License-Identifier: MIT */
/* Salted policy sessions and Unseal with an encrypted response: see
 * tpm-session.h and docs/tpm.md, "Never in clear on the bus". */
#include "tpm-session.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <string.h>

#include "tpm-marshal.h"

#define CC_START_AUTH_SESSION 0x00000176u
#define CC_UNSEAL 0x0000015Eu
#define ALG_AES 0x0006
#define ALG_CFB 0x0043
#define SE_POLICY 0x01

int kos_tpm_kdfa(const uint8_t *key, size_t key_len, const char *label, const uint8_t *u, size_t u_len,
                 const uint8_t *v, size_t v_len, uint8_t *out, size_t out_len) {
        uint8_t msg[4 + 16 + 2 * 64 + 4], block[KOS_SHA256_LEN];
        size_t label_len = strlen(label) + 1; /* with its terminating zero (Part 1, 11.4.9.2) */
        uint32_t bits = (uint32_t)(out_len * 8);

        if (out_len == 0 || out_len > 64 || label_len > 16 || u_len > 64 || v_len > 64 || key_len > INT32_MAX)
                return -EINVAL;
        for (uint32_t counter = 1, done = 0; done < out_len; counter++) {
                struct kos_tpm_out w = {msg, sizeof msg, 0, false};
                unsigned block_len = 0;
                out_u32(&w, counter);
                out_put(&w, label, label_len);
                out_put(&w, u, u_len);
                out_put(&w, v, v_len);
                out_u32(&w, bits);
                if (w.overflow || !HMAC(EVP_sha256(), key, (int)key_len, msg, w.len, block, &block_len) ||
                    block_len != KOS_SHA256_LEN)
                        return -EIO;
                size_t n = out_len - done < block_len ? out_len - done : block_len;
                memcpy(out + done, block, n);
                done += (uint32_t)n;
        }
        OPENSSL_cleanse(block, sizeof block);
        return 0;
}

int kos_tpm_kdfe(const uint8_t z[static 32], const char *label, const uint8_t u[static 32], const uint8_t v[static 32],
                 uint8_t out[static KOS_SHA256_LEN]) {
        uint8_t msg[4 + 32 + 16 + 32 + 32];
        size_t label_len = strlen(label) + 1;

        if (label_len > 16)
                return -EINVAL;
        struct kos_tpm_out w = {msg, sizeof msg, 0, false};
        out_u32(&w, 1);
        out_put(&w, z, 32);
        out_put(&w, label, label_len);
        out_put(&w, u, 32);
        out_put(&w, v, 32);
        int r = w.overflow ? -ENOBUFS : kos_sha256(msg, w.len, out);
        OPENSSL_cleanse(msg, sizeof msg);
        return r;
}

/* An EVP_PKEY of a P-256 public point; NULL when it is not on the curve. */
static EVP_PKEY *point_to_pkey(const struct kos_tpm_ecc_point *point) {
        uint8_t octets[65] = {0x04};
        EVP_PKEY *pkey = NULL;

        memcpy(octets + 1, point->x, 32);
        memcpy(octets + 33, point->y, 32);
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
                OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, octets, sizeof octets),
                OSSL_PARAM_construct_end(),
        };
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
                pkey = NULL;
        EVP_PKEY_CTX_free(ctx);
        return pkey;
}

static int pkey_to_point(EVP_PKEY *pkey, struct kos_tpm_ecc_point *ret) {
        BIGNUM *x = NULL, *y = NULL;
        int r = -EINVAL;

        if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) > 0 &&
            EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) > 0 && BN_bn2binpad(x, ret->x, 32) == 32 &&
            BN_bn2binpad(y, ret->y, 32) == 32)
                r = 0;
        BN_free(x);
        BN_free(y);
        return r;
}

int kos_tpm_ecdh_salt(const struct kos_tpm_ecc_point *tpm_key, struct kos_tpm_ecc_point *ret_ephemeral,
                      uint8_t ret_salt[static KOS_SHA256_LEN]) {
        EVP_PKEY *peer = point_to_pkey(tpm_key), *mine = NULL;
        EVP_PKEY_CTX *ctx = NULL;
        uint8_t z[32];
        size_t z_len = sizeof z;
        int r = -EINVAL;

        if (!peer)
                return -EINVAL;
        mine = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (!mine || pkey_to_point(mine, ret_ephemeral) < 0)
                goto out;
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
        if (!ctx || EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer(ctx, peer) <= 0 ||
            EVP_PKEY_derive(ctx, z, &z_len) <= 0 || z_len != sizeof z)
                goto out;
        /* Part 1, C.6.1: KDFe(Z, "SECRET", QeU.x, QsB.x), the bits of the
         * storage key's nameAlg (SHA-256). */
        r = kos_tpm_kdfe(z, "SECRET", ret_ephemeral->x, tpm_key->x, ret_salt);
out:
        OPENSSL_cleanse(z, sizeof z);
        EVP_PKEY_CTX_free(ctx);
        EVP_PKEY_free(mine);
        EVP_PKEY_free(peer);
        return r;
}

int kos_tpm_build_start_salted_session(uint8_t *buf, size_t size, uint32_t tpm_key,
                                       const uint8_t nonce_caller[static KOS_TPM_NONCE_LEN],
                                       const struct kos_tpm_ecc_point *ephemeral) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, CC_START_AUTH_SESSION);
        out_u32(&w, tpm_key);         /* tpmKey: the salt is encrypted to it */
        out_u32(&w, KOS_TPM_RH_NULL); /* bind: unbound */
        out_tpm2b(&w, nonce_caller, KOS_TPM_NONCE_LEN);
        out_u16(&w, 2 + 32 + 2 + 32); /* encryptedSalt: a TPMS_ECC_POINT */
        out_tpm2b(&w, ephemeral->x, 32);
        out_tpm2b(&w, ephemeral->y, 32);
        out_u8(&w, SE_POLICY);
        out_u16(&w, ALG_AES); /* symmetric: parameter encryption */
        out_u16(&w, 128);
        out_u16(&w, ALG_CFB);
        out_u16(&w, KOS_TPM_ALG_SHA256);
        return out_end_command(&w);
}

/* HMAC(sessionKey, pHash || nonceNewer || nonceOlder || attributes): a
 * policy session that needs no authValue (no PolicyAuthValue) keys it with
 * the session key alone (Part 1, 19.6.8 and 19.6.13). */
static int session_hmac(const struct kos_tpm_session *s, const uint8_t p_hash[static KOS_SHA256_LEN],
                        const uint8_t newer[static KOS_TPM_NONCE_LEN], const uint8_t older[static KOS_TPM_NONCE_LEN],
                        uint8_t attributes, uint8_t ret[static KOS_SHA256_LEN]) {
        uint8_t msg[KOS_SHA256_LEN + 2 * KOS_TPM_NONCE_LEN + 1];
        unsigned len = 0;

        memcpy(msg, p_hash, KOS_SHA256_LEN);
        memcpy(msg + KOS_SHA256_LEN, newer, KOS_TPM_NONCE_LEN);
        memcpy(msg + KOS_SHA256_LEN + KOS_TPM_NONCE_LEN, older, KOS_TPM_NONCE_LEN);
        msg[sizeof msg - 1] = attributes;
        return HMAC(EVP_sha256(), s->key, sizeof s->key, msg, sizeof msg, ret, &len) && len == KOS_SHA256_LEN ? 0
                                                                                                                : -EIO;
}

int kos_tpm_build_unseal_encrypted(uint8_t *buf, size_t size, uint32_t item,
                                   const uint8_t item_name[static KOS_TPM_NAME_LEN], const struct kos_tpm_session *s,
                                   const uint8_t nonce_caller[static KOS_TPM_NONCE_LEN]) {
        struct kos_tpm_out w = {buf, size, 0, false};
        uint8_t cp[4 + KOS_TPM_NAME_LEN] = {CC_UNSEAL >> 24, (CC_UNSEAL >> 16) & 0xff, (CC_UNSEAL >> 8) & 0xff,
                                            CC_UNSEAL & 0xff};
        uint8_t cp_hash[KOS_SHA256_LEN], hmac[KOS_SHA256_LEN];

        /* cpHash = H(commandCode || name of itemHandle); Unseal has no parameters. */
        memcpy(cp + 4, item_name, KOS_TPM_NAME_LEN);
        if (kos_sha256(cp, sizeof cp, cp_hash) < 0 ||
            session_hmac(s, cp_hash, nonce_caller, s->nonce_tpm, KOS_TPM_SESSION_ENCRYPT, hmac) < 0)
                return -EIO;
        out_begin_command(&w, KOS_TPM_ST_SESSIONS, CC_UNSEAL);
        out_u32(&w, item);
        out_u32(&w, 4 + 2 + KOS_TPM_NONCE_LEN + 1 + 2 + KOS_SHA256_LEN); /* authorizationSize */
        out_u32(&w, s->handle);
        out_tpm2b(&w, nonce_caller, KOS_TPM_NONCE_LEN);
        out_u8(&w, KOS_TPM_SESSION_ENCRYPT); /* not continued: flushed after this command */
        out_tpm2b(&w, hmac, KOS_SHA256_LEN);
        return out_end_command(&w);
}

static int cfb_decrypt(const uint8_t key[static 16], const uint8_t iv[static 16], uint8_t *data, size_t len) {
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        int out_len = 0, r = -EIO;

        if (ctx && EVP_DecryptInit_ex(ctx, EVP_aes_128_cfb128(), NULL, key, iv) > 0 &&
            EVP_DecryptUpdate(ctx, data, &out_len, data, (int)len) > 0 && (size_t)out_len == len)
                r = 0;
        EVP_CIPHER_CTX_free(ctx);
        return r;
}

int kos_tpm_open_unseal_response(const uint8_t *resp, size_t len, const struct kos_tpm_session *s,
                                 const uint8_t nonce_caller[static KOS_TPM_NONCE_LEN],
                                 uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX], size_t *ret_len) {
        struct kos_tpm_in r = {resp, len, 0};
        uint32_t size, rc, params_size;
        uint16_t data_len;
        uint8_t nonce_tpm[KOS_TPM_NONCE_LEN], attributes, hmac[KOS_SHA256_LEN], want[KOS_SHA256_LEN];
        uint8_t rp[4 + 4 + 2 + KOS_TPM_SEAL_DATA_MAX], rp_hash[KOS_SHA256_LEN], key_iv[32];

        if (in_expect_u16(&r, KOS_TPM_ST_SESSIONS) < 0 || in_u32(&r, &size) < 0 || size != len ||
            in_u32(&r, &rc) < 0 || rc != 0 || in_u32(&r, &params_size) < 0 || params_size > len - r.pos)
                return -EBADMSG;
        size_t params_at = r.pos;
        if (in_tpm2b(&r, 0, KOS_TPM_SEAL_DATA_MAX, ret_data, &data_len) < 0 || data_len == 0 ||
            r.pos - params_at != params_size || in_tpm2b(&r, KOS_TPM_NONCE_LEN, 0, nonce_tpm, NULL) < 0 ||
            in_u8(&r, &attributes) < 0 || in_tpm2b(&r, KOS_SHA256_LEN, 0, hmac, NULL) < 0 || !in_at_end(&r))
                goto bad;
        /* rpHash = H(responseCode || commandCode || parameters), over the
         * parameters as sent (encrypted). */
        struct kos_tpm_out w = {rp, sizeof rp, 0, false};
        out_u32(&w, 0);
        out_u32(&w, CC_UNSEAL);
        out_put(&w, resp + params_at, params_size);
        if (w.overflow || kos_sha256(rp, w.len, rp_hash) < 0 ||
            session_hmac(s, rp_hash, nonce_tpm, nonce_caller, attributes, want) < 0 ||
            CRYPTO_memcmp(want, hmac, sizeof hmac) != 0)
                goto bad;
        /* Part 1, 21.4: KDFa(sessionKey, "CFB", nonceNewer, nonceOlder) gives
         * the AES key, then the IV; the TPM2B's size stays in clear. */
        if (kos_tpm_kdfa(s->key, sizeof s->key, "CFB", nonce_tpm, KOS_TPM_NONCE_LEN, nonce_caller, KOS_TPM_NONCE_LEN,
                         key_iv, sizeof key_iv) < 0 ||
            cfb_decrypt(key_iv, key_iv + 16, ret_data, data_len) < 0) {
                OPENSSL_cleanse(key_iv, sizeof key_iv);
                goto bad;
        }
        OPENSSL_cleanse(key_iv, sizeof key_iv);
        *ret_len = data_len;
        return 0;
bad:
        OPENSSL_cleanse(ret_data, KOS_TPM_SEAL_DATA_MAX);
        return -EBADMSG;
}

int kos_tpm_start_salted_policy_session(struct kos_tpm *t, uint32_t tpm_key, const struct kos_tpm_ecc_point *point,
                                        struct kos_tpm_session *ret) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX], nonce[KOS_TPM_NONCE_LEN], salt[KOS_SHA256_LEN];
        struct kos_tpm_ecc_point ephemeral;
        const uint8_t *p = NULL;
        size_t n = 0;
        uint32_t rc;
        int r;

        memset(ret, 0, sizeof *ret);
        if (RAND_bytes(nonce, sizeof nonce) != 1)
                return -EIO;
        if ((r = kos_tpm_ecdh_salt(point, &ephemeral, salt)) < 0)
                return r;
        int built = kos_tpm_build_start_salted_session(cmd, sizeof cmd, tpm_key, nonce, &ephemeral);
        r = built < 0 ? built : kos_tpm_transact(t, cmd, (size_t)built, false, resp, &rc, &p, &n);
        if (r == 0 && rc != 0)
                r = -EPROTO;
        /* The response: the session's handle, then nonceTPM. */
        struct kos_tpm_in in = {p, n, 0};
        if (r == 0 && (n < 4 || in_u32(&in, &ret->handle) < 0 ||
                       in_tpm2b(&in, KOS_TPM_NONCE_LEN, 0, ret->nonce_tpm, NULL) < 0 || !in_at_end(&in)))
                r = -EBADMSG;
        /* sessionKey = KDFa(authValue of bind (none) || salt, "ATH",
         * nonceTPM, nonceCaller) (Part 1, 19.6.8). */
        if (r == 0)
                r = kos_tpm_kdfa(salt, sizeof salt, "ATH", ret->nonce_tpm, KOS_TPM_NONCE_LEN, nonce, sizeof nonce,
                                 ret->key, sizeof ret->key);
        OPENSSL_cleanse(salt, sizeof salt);
        if (r < 0 && r != -EPROTO && ret->handle)
                (void)kos_tpm_flush_context(t, ret->handle);
        return r;
}

int kos_tpm_unseal_encrypted(struct kos_tpm *t, uint32_t item, const uint8_t item_name[static KOS_TPM_NAME_LEN],
                             const struct kos_tpm_session *s, uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX],
                             size_t *ret_len) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX], nonce[KOS_TPM_NONCE_LEN];
        const uint8_t *p = NULL;
        size_t n = 0;
        uint32_t rc;

        if (RAND_bytes(nonce, sizeof nonce) != 1)
                return -EIO;
        int built = kos_tpm_build_unseal_encrypted(cmd, sizeof cmd, item, item_name, s, nonce);
        int r = built < 0 ? built : kos_tpm_transact(t, cmd, (size_t)built, true, resp, &rc, &p, &n);
        if (r == 0 && rc != 0)
                r = -EPROTO;
        if (r == 0) {
                size_t len = (size_t)resp[2] << 24 | (size_t)resp[3] << 16 | (size_t)resp[4] << 8 | resp[5];
                r = kos_tpm_open_unseal_response(resp, len, s, nonce, ret_data, ret_len);
        }
        OPENSSL_cleanse(resp, sizeof resp);
        return r;
}
