/* SPDX-License-Identifier: MIT */
/* TPM 2.0 by hand, on purpose.
 *
 * Why not tpm2-tss: the Boot Kernel's init is one static binary and Debian
 * ships libtss2-esys/-sys/-mu only as shared libraries (libtss2-dev has no
 * .a). Shipping them in the Boot initramfs means a dynamic loader, libssl and
 * five libraries in the trusted Boot image to send a few fixed commands, all
 * with a password session and an empty password or a policy session without
 * HMAC: no parameter encryption, nothing ESAPI is for. So the commands are
 * built here from constants (golden vectors in tests/unit/test-tpm.c, checked
 * against swtpm in tests/host/test-tpm.sh and tests/vm/test-tpm.sh), and the
 * responses, which come from a device
 * we do not control, are parsed with exact lengths (every size field checked
 * against what is left, every byte consumed; a fuzzer in
 * tests/fuzz/fuzz_tpm_response.c). One implementation serves the Boot
 * Kernel, the System Kernel, Node Manager and the kos tool alike.
 *
 * Wire format: TPM 2.0 Library Part 1 ch. 18 (command/response structure) and
 * Part 3 (each command); all integers big-endian. */
#include "tpm.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tpm-marshal.h"

/* --- Writing (the writer and reader are tpm-marshal.h's) ------------------ */

/* The authorization area of one session: TPM_RS_PW with an empty password,
 * or a policy session whose policy needs no authValue; empty nonce, no
 * attributes (a policy session is not continued: the TPM flushes it after a
 * success), empty hmac (Part 1, 19.8.4). */
static void put_session(struct kos_tpm_out *w, uint32_t session) {
        out_u32(w, 9); /* authorizationSize */
        out_u32(w, session);
        out_u16(w, 0);
        out_u8(w, 0);
        out_u16(w, 0);
}

static void put_password_session(struct kos_tpm_out *w) { put_session(w, KOS_TPM_RS_PW); }

/* A TPM2B around what is put between the two: the size is patched in afterwards. */
static size_t begin_tpm2b(struct kos_tpm_out *w) {
        size_t at = w->len;
        out_u16(w, 0);
        return at;
}

static void end_tpm2b(struct kos_tpm_out *w, size_t at) {
        if (w->overflow)
                return;
        size_t n = w->len - at - 2;
        w->buf[at] = (uint8_t)(n >> 8), w->buf[at + 1] = n & 0xff;
}

int kos_tpm_build_nv_read_public(uint8_t *buf, size_t size, uint32_t index) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, KOS_TPM_CC_NV_READ_PUBLIC);
        out_u32(&w, index);
        return out_end_command(&w);
}

int kos_tpm_build_nv_read(uint8_t *buf, size_t size, uint32_t index, uint32_t session, uint16_t len,
                          uint16_t offset) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_SESSIONS, KOS_TPM_CC_NV_READ);
        out_u32(&w, index); /* authHandle: the index itself (POLICYREAD, or AUTHREAD) */
        out_u32(&w, index);
        put_session(&w, session);
        out_u16(&w, len);
        out_u16(&w, offset);
        return out_end_command(&w);
}

int kos_tpm_build_nv_define_space(uint8_t *buf, size_t size, const struct kos_tpm_nv_public *pub) {
        struct kos_tpm_out w = {buf, size, 0, false};

        if (pub->auth_policy_size > sizeof pub->auth_policy)
                return -EINVAL;
        out_begin_command(&w, KOS_TPM_ST_SESSIONS, KOS_TPM_CC_NV_DEFINE_SPACE);
        out_u32(&w, KOS_TPM_RH_OWNER);
        put_password_session(&w);
        out_u16(&w, 0); /* auth: the index's authValue, empty (and unused with a policy) */
        size_t at = begin_tpm2b(&w); /* TPM2B_NV_PUBLIC */
        out_u32(&w, pub->index);
        out_u16(&w, pub->name_alg);
        out_u32(&w, pub->attributes);
        out_u16(&w, pub->auth_policy_size);
        out_put(&w, pub->auth_policy, pub->auth_policy_size);
        out_u16(&w, pub->data_size);
        end_tpm2b(&w, at);
        return out_end_command(&w);
}

int kos_tpm_build_nv_undefine_space(uint8_t *buf, size_t size, uint32_t index) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_SESSIONS, KOS_TPM_CC_NV_UNDEFINE_SPACE);
        out_u32(&w, KOS_TPM_RH_OWNER);
        out_u32(&w, index);
        put_password_session(&w);
        return out_end_command(&w);
}

int kos_tpm_build_nv_increment(uint8_t *buf, size_t size, uint32_t index, uint32_t session) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_SESSIONS, KOS_TPM_CC_NV_INCREMENT);
        out_u32(&w, index); /* authHandle: the index itself (POLICYWRITE, or AUTHWRITE) */
        out_u32(&w, index);
        put_session(&w, session);
        return out_end_command(&w);
}

int kos_tpm_build_policy_command_code(uint8_t *buf, size_t size, uint32_t session, uint32_t cc) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, KOS_TPM_CC_POLICY_COMMAND_CODE);
        out_u32(&w, session);
        out_u32(&w, cc);
        return out_end_command(&w);
}

int kos_tpm_build_policy_or(uint8_t *buf, size_t size, uint32_t session, const uint8_t (*digests)[KOS_SHA256_LEN],
                            size_t n) {
        struct kos_tpm_out w = {buf, size, 0, false};

        if (n < 2 || n > 8) /* TPML_DIGEST of a PolicyOR: 2 to 8 branches (Part 3, 23.6) */
                return -EINVAL;
        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, KOS_TPM_CC_POLICY_OR);
        out_u32(&w, session);
        out_u32(&w, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
                out_u16(&w, KOS_SHA256_LEN);
                out_put(&w, digests[i], KOS_SHA256_LEN);
        }
        return out_end_command(&w);
}

int kos_tpm_build_pcr_extend(uint8_t *buf, size_t size, unsigned pcr, const uint8_t sha256[static KOS_SHA256_LEN],
                             const uint8_t *sha1) {
        struct kos_tpm_out w = {buf, size, 0, false};

        if (pcr > 23)
                return -EINVAL;
        out_begin_command(&w, KOS_TPM_ST_SESSIONS, KOS_TPM_CC_PCR_EXTEND);
        out_u32(&w, pcr);
        put_password_session(&w);
        out_u32(&w, sha1 ? 2 : 1); /* TPML_DIGEST_VALUES.count */
        out_u16(&w, KOS_TPM_ALG_SHA256);
        out_put(&w, sha256, KOS_SHA256_LEN);
        if (sha1) {
                out_u16(&w, KOS_TPM_ALG_SHA1);
                out_put(&w, sha1, 20);
        }
        return out_end_command(&w);
}

int kos_tpm_build_pcr_read(uint8_t *buf, size_t size, unsigned pcr) {
        struct kos_tpm_out w = {buf, size, 0, false};

        if (pcr > 23)
                return -EINVAL;
        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, KOS_TPM_CC_PCR_READ);
        out_u32(&w, 1); /* TPML_PCR_SELECTION.count */
        out_u16(&w, KOS_TPM_ALG_SHA256);
        out_u8(&w, 3); /* sizeofSelect: PCRs 0-23 */
        for (unsigned i = 0; i < 3; i++)
                out_u8(&w, i == pcr / 8 ? (uint8_t)(1u << (pcr % 8)) : 0);
        return out_end_command(&w);
}

/* TPML_PCR_SELECTION of one SHA-256 bank with the PCRs of mask (0-23). */
static void put_pcr_selection(struct kos_tpm_out *w, uint32_t mask) {
        out_u32(w, 1);
        out_u16(w, KOS_TPM_ALG_SHA256);
        out_u8(w, 3);
        for (unsigned i = 0; i < 3; i++)
                out_u8(w, (uint8_t)(mask >> (8 * i)));
}

int kos_tpm_build_create_primary(uint8_t *buf, size_t size) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_SESSIONS, KOS_TPM_CC_CREATE_PRIMARY);
        out_u32(&w, KOS_TPM_RH_OWNER);
        put_password_session(&w);
        out_u16(&w, 4); /* TPM2B_SENSITIVE_CREATE: empty userAuth, empty data */
        out_u16(&w, 0);
        out_u16(&w, 0);
        size_t at = begin_tpm2b(&w); /* TPM2B_PUBLIC */
        out_u16(&w, KOS_TPM_ALG_ECC);
        out_u16(&w, KOS_TPM_ALG_SHA256);
        /* fixedTPM fixedParent sensitiveDataOrigin userWithAuth noDA
         * restricted decrypt: a storage parent (Part 2, 8.3.3.1) */
        out_u32(&w, 0x00030472);
        out_u16(&w, 0);      /* authPolicy */
        out_u16(&w, 0x0006); /* symmetric: AES */
        out_u16(&w, 128);
        out_u16(&w, 0x0043); /* CFB */
        out_u16(&w, KOS_TPM_ALG_NULL); /* scheme */
        out_u16(&w, 0x0003);           /* TPM_ECC_NIST_P256 */
        out_u16(&w, KOS_TPM_ALG_NULL); /* kdf */
        out_u16(&w, 0);                /* unique.x */
        out_u16(&w, 0);                /* unique.y */
        end_tpm2b(&w, at);
        out_u16(&w, 0); /* outsideInfo */
        out_u32(&w, 0); /* creationPCR: none */
        return out_end_command(&w);
}

int kos_tpm_build_create(uint8_t *buf, size_t size, uint32_t parent, const uint8_t *data, size_t data_len,
                         const uint8_t policy[static KOS_SHA256_LEN]) {
        struct kos_tpm_out w = {buf, size, 0, false};

        if (data_len == 0 || data_len > KOS_TPM_SEAL_DATA_MAX)
                return -EINVAL;
        out_begin_command(&w, KOS_TPM_ST_SESSIONS, KOS_TPM_CC_CREATE);
        out_u32(&w, parent);
        put_password_session(&w);
        out_u16(&w, (uint16_t)(4 + data_len)); /* TPM2B_SENSITIVE_CREATE */
        out_u16(&w, 0);                        /* userAuth: empty, and unusable (no userWithAuth) */
        out_u16(&w, (uint16_t)data_len);
        out_put(&w, data, data_len);
        size_t at = begin_tpm2b(&w); /* TPM2B_PUBLIC */
        out_u16(&w, KOS_TPM_ALG_KEYEDHASH);
        out_u16(&w, KOS_TPM_ALG_SHA256);
        /* fixedTPM fixedParent noDA; no userWithAuth, no adminWithPolicy
         * needed: the policy is the only way to use it */
        out_u32(&w, 0x00000412);
        out_u16(&w, KOS_SHA256_LEN);
        out_put(&w, policy, KOS_SHA256_LEN);
        out_u16(&w, KOS_TPM_ALG_NULL); /* keyedHash scheme: sealed data */
        out_u16(&w, 0);                /* unique */
        end_tpm2b(&w, at);
        out_u16(&w, 0); /* outsideInfo */
        out_u32(&w, 0); /* creationPCR */
        return out_end_command(&w);
}

int kos_tpm_build_load(uint8_t *buf, size_t size, uint32_t parent, const uint8_t *private_area, uint16_t private_len,
                       const uint8_t *public_area, uint16_t public_len) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_SESSIONS, KOS_TPM_CC_LOAD);
        out_u32(&w, parent);
        put_password_session(&w);
        out_u16(&w, private_len);
        out_put(&w, private_area, private_len);
        out_u16(&w, public_len);
        out_put(&w, public_area, public_len);
        return out_end_command(&w);
}

int kos_tpm_build_start_auth_session(uint8_t *buf, size_t size, const uint8_t nonce[static 16]) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, KOS_TPM_CC_START_AUTH_SESSION);
        out_u32(&w, KOS_TPM_RH_NULL); /* tpmKey: unsalted */
        out_u32(&w, KOS_TPM_RH_NULL); /* bind: unbound */
        out_u16(&w, 16);
        out_put(&w, nonce, 16);
        out_u16(&w, 0);                /* encryptedSalt */
        out_u8(&w, 0x01);              /* TPM_SE_POLICY */
        out_u16(&w, KOS_TPM_ALG_NULL); /* symmetric: no parameter encryption */
        out_u16(&w, KOS_TPM_ALG_SHA256);
        return out_end_command(&w);
}

int kos_tpm_build_policy_pcr(uint8_t *buf, size_t size, uint32_t session, uint32_t pcr_mask) {
        struct kos_tpm_out w = {buf, size, 0, false};

        if (pcr_mask == 0 || pcr_mask >> 24)
                return -EINVAL;
        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, KOS_TPM_CC_POLICY_PCR);
        out_u32(&w, session);
        out_u16(&w, 0); /* pcrDigest: the TPM takes the current values */
        put_pcr_selection(&w, pcr_mask);
        return out_end_command(&w);
}

int kos_tpm_build_unseal(uint8_t *buf, size_t size, uint32_t item, uint32_t session) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_SESSIONS, KOS_TPM_CC_UNSEAL);
        out_u32(&w, item);
        put_session(&w, session); /* not continued, so flushed; no hmac: no PolicyAuthValue/Password */
        return out_end_command(&w);
}

int kos_tpm_build_flush_context(uint8_t *buf, size_t size, uint32_t handle) {
        struct kos_tpm_out w = {buf, size, 0, false};

        out_begin_command(&w, KOS_TPM_ST_NO_SESSIONS, KOS_TPM_CC_FLUSH_CONTEXT);
        out_u32(&w, handle);
        return out_end_command(&w);
}

/* --- Reading untrusted bytes ------------------------------------------- */

static int parse_response(const uint8_t *resp, size_t len, bool sessions, uint32_t *ret_rc, uint32_t *ret_handle,
                          const uint8_t **ret_params, size_t *ret_params_len) {
        struct kos_tpm_in r = {resp, len, 0};
        uint16_t tag;
        uint32_t size, rc, params_size;

        *ret_params = NULL;
        *ret_params_len = 0;
        if (in_u16(&r, &tag) < 0 || in_u32(&r, &size) < 0 || in_u32(&r, &rc) < 0 || size != len)
                return -EBADMSG;
        *ret_rc = rc;
        if (rc != 0) /* an error response is a bare header (Part 1, 18.4) */
                return tag == KOS_TPM_ST_NO_SESSIONS && in_at_end(&r) ? 0 : -EBADMSG;
        /* Response handles come before the parameter area (Part 1, 18.9). */
        if (ret_handle && in_u32(&r, ret_handle) < 0)
                return -EBADMSG;
        if (!sessions) {
                if (tag != KOS_TPM_ST_NO_SESSIONS)
                        return -EBADMSG;
                *ret_params = resp + r.pos;
                *ret_params_len = len - r.pos;
                return 0;
        }
        if (tag != KOS_TPM_ST_SESSIONS || in_u32(&r, &params_size) < 0 || params_size > len - r.pos)
                return -EBADMSG;
        *ret_params = resp + r.pos;
        *ret_params_len = params_size;
        r.pos += params_size;
        /* The password session's response: nonce, attributes, hmac (all empty
         * for TPM_RS_PW, but only the shape is ours to check). */
        uint8_t attributes;
        if (in_tpm2b(&r, 0, 64, NULL, NULL) < 0 || in_u8(&r, &attributes) < 0 || in_tpm2b(&r, 0, 64, NULL, NULL) < 0 ||
            !in_at_end(&r)) {
                *ret_params = NULL;
                *ret_params_len = 0;
                return -EBADMSG;
        }
        return 0;
}

int kos_tpm_parse_response(const uint8_t *resp, size_t len, bool sessions, uint32_t *ret_rc,
                           const uint8_t **ret_params, size_t *ret_params_len) {
        return parse_response(resp, len, sessions, ret_rc, NULL, ret_params, ret_params_len);
}

int kos_tpm_parse_response_handle(const uint8_t *resp, size_t len, bool sessions, uint32_t *ret_rc,
                                  uint32_t *ret_handle, const uint8_t **ret_params, size_t *ret_params_len) {
        *ret_handle = 0;
        return parse_response(resp, len, sessions, ret_rc, ret_handle, ret_params, ret_params_len);
}

/* TPMS_CREATION_DATA (sized), TPM2B_DIGEST creationHash and
 * TPMT_TK_CREATION: checked for shape and skipped. */
static int skip_creation(struct kos_tpm_in *r) {
        uint16_t tag;
        uint32_t hierarchy;

        if (in_tpm2b(r, 0, KOS_TPM_BLOB_MAX, NULL, NULL) < 0 || in_tpm2b(r, 0, 64, NULL, NULL) < 0 ||
            in_u16(r, &tag) < 0 || tag != 0x8021 /* TPM_ST_CREATION */ || in_u32(r, &hierarchy) < 0 ||
            in_tpm2b(r, 0, 64, NULL, NULL) < 0)
                return -EBADMSG;
        return 0;
}

int kos_tpm_parse_create_primary(const uint8_t *p, size_t len) {
        struct kos_tpm_in r = {p, len, 0};
        uint16_t public_size;

        if (in_tpm2b(&r, 0, KOS_TPM_BLOB_MAX, NULL, &public_size) < 0 || public_size == 0 || skip_creation(&r) < 0 ||
            in_tpm2b(&r, 0, 2 + 64, NULL, NULL) < 0 /* name */ || !in_at_end(&r))
                return -EBADMSG;
        return 0;
}

int kos_tpm_parse_create(const uint8_t *p, size_t len, uint8_t ret_private[static KOS_TPM_BLOB_MAX],
                         uint16_t *ret_private_len, uint8_t ret_public[static KOS_TPM_BLOB_MAX],
                         uint16_t *ret_public_len) {
        struct kos_tpm_in r = {p, len, 0};

        if (in_tpm2b(&r, 0, KOS_TPM_BLOB_MAX, ret_private, ret_private_len) < 0 || *ret_private_len == 0 ||
            in_tpm2b(&r, 0, KOS_TPM_BLOB_MAX, ret_public, ret_public_len) < 0 || *ret_public_len == 0 ||
            skip_creation(&r) < 0 || !in_at_end(&r))
                return -EBADMSG;
        return 0;
}

/* A parameter area that is one TPM2B of min to max bytes and nothing more:
 * its size checked before anything is copied, its bytes then copied to out
 * unless that is NULL, its size in *ret_size. */
static int parse_one_tpm2b(const uint8_t *p, size_t len, size_t min, size_t max, uint8_t *out, uint16_t *ret_size) {
        struct kos_tpm_in r = {p, len, 0};
        uint16_t n;

        if (in_u16(&r, &n) < 0 || n < min || n > max || in_get(&r, out, n) < 0 || !in_at_end(&r))
                return -EBADMSG;
        *ret_size = n;
        return 0;
}

int kos_tpm_parse_load(const uint8_t *p, size_t len) {
        uint16_t name_size;
        return parse_one_tpm2b(p, len, 2, 2 + 64, NULL, &name_size); /* name: nameAlg then a digest */
}

int kos_tpm_parse_start_auth_session(const uint8_t *p, size_t len) {
        uint16_t nonce_size;
        return parse_one_tpm2b(p, len, 16, 64, NULL, &nonce_size); /* nonceTPM */
}

int kos_tpm_parse_unseal(const uint8_t *p, size_t len, uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX],
                         size_t *ret_len) {
        uint16_t n;
        int r = parse_one_tpm2b(p, len, 0, KOS_TPM_SEAL_DATA_MAX, ret_data, &n);

        if (r < 0)
                return r;
        *ret_len = n;
        return 0;
}

const char *kos_tpm_rc_name(uint32_t rc, char *buf, size_t size) {
        if (rc & 0x80) {
                switch (rc & 0xbf) {
                case KOS_TPM_RC_VALUE:
                        return "TPM_RC_VALUE";
                case KOS_TPM_RC_POLICY_FAIL:
                        return "TPM_RC_POLICY_FAIL";
                case KOS_TPM_RC_INTEGRITY:
                        return "TPM_RC_INTEGRITY";
                case KOS_TPM_RC_HANDLE:
                        return "TPM_RC_HANDLE";
                case 0x8e:
                        return "TPM_RC_AUTH_FAIL";
                case 0x95:
                        return "TPM_RC_SIZE";
                case KOS_TPM_RC_BAD_AUTH:
                        return "TPM_RC_BAD_AUTH";
                case 0x82:
                        return "TPM_RC_ATTRIBUTES";
                case 0x85:
                        return "TPM_RC_HIERARCHY";
                }
        }
        switch (rc) {
        case 0x101:
                return "TPM_RC_FAILURE";
        case 0x12f:
                return "TPM_RC_AUTH_UNAVAILABLE";
        case 0x149:
                return "TPM_RC_NV_AUTHORIZATION";
        case 0x14a:
                return "TPM_RC_NV_UNINITIALIZED";
        case KOS_TPM_RC_NV_SPACE:
                return "TPM_RC_NV_SPACE";
        case 0x14c:
                return "TPM_RC_NV_DEFINED";
        case 0x125:
                return "TPM_RC_AUTH_MISSING";
        case 0x127:
                return "TPM_RC_PCR_CHANGED";
        case 0x902:
                return "TPM_RC_OBJECT_MEMORY";
        case 0x903:
                return "TPM_RC_SESSION_MEMORY";
        case 0x921:
                return "TPM_RC_LOCKOUT";
        }
        snprintf(buf, size, "TPM_RC_0x%03x", (unsigned)rc);
        return buf;
}

bool kos_tpm_rc_is_bad_auth(uint32_t rc) {
        return (rc & 0x80) && ((rc & 0xbf) == KOS_TPM_RC_BAD_AUTH || (rc & 0xbf) == 0x8e /* TPM_RC_AUTH_FAIL */);
}

int kos_tpm_parse_nv_read_public(const uint8_t *p, size_t len, struct kos_tpm_nv_public *ret) {
        struct kos_tpm_in r = {p, len, 0};
        uint16_t public_size, name_size;

        if (in_u16(&r, &public_size) < 0 || public_size > len - r.pos)
                return -EBADMSG;
        struct kos_tpm_in pub = {p + r.pos, public_size, 0};
        r.pos += public_size;
        if (in_u32(&pub, &ret->index) < 0 || in_u16(&pub, &ret->name_alg) < 0 ||
            in_u32(&pub, &ret->attributes) < 0 ||
            in_tpm2b(&pub, 0, sizeof ret->auth_policy, ret->auth_policy, &ret->auth_policy_size) < 0 ||
            in_u16(&pub, &ret->data_size) < 0 || !in_at_end(&pub))
                return -EBADMSG;
        /* nvName: nameAlg then a digest (at most SHA-512) */
        if (in_tpm2b(&r, 0, 2 + 64, NULL, &name_size) < 0 || !in_at_end(&r))
                return -EBADMSG;
        return 0;
}

int kos_tpm_parse_nv_read(const uint8_t *p, size_t len, uint16_t want, uint8_t *ret_data) {
        uint16_t n;
        return parse_one_tpm2b(p, len, want, want, ret_data, &n);
}

int kos_tpm_parse_pcr_read(const uint8_t *p, size_t len, unsigned pcr, uint8_t ret_value[static KOS_SHA256_LEN]) {
        struct kos_tpm_in r = {p, len, 0};
        uint32_t update_counter, n_selections, n_digests;
        uint16_t alg, digest_size;
        uint8_t select_size, select[4] = {0};

        if (pcr > 23 || in_u32(&r, &update_counter) < 0 || in_u32(&r, &n_selections) < 0 || n_selections != 1 ||
            in_u16(&r, &alg) < 0 || alg != KOS_TPM_ALG_SHA256 || in_u8(&r, &select_size) < 0 ||
            select_size < 3 || select_size > 4 || in_get(&r, select, select_size) < 0)
                return -EBADMSG;
        /* Exactly the one PCR asked for: the TPM drops PCRs it cannot read. */
        for (unsigned i = 0; i < select_size; i++)
                if (select[i] != (i == pcr / 8 ? (uint8_t)(1u << (pcr % 8)) : 0))
                        return -EBADMSG;
        if (in_u32(&r, &n_digests) < 0 || n_digests != 1 || in_u16(&r, &digest_size) < 0 ||
            digest_size != KOS_SHA256_LEN || in_get(&r, ret_value, KOS_SHA256_LEN) < 0 || !in_at_end(&r))
                return -EBADMSG;
        return 0;
}

int kos_tpm_rc_to_errno(uint32_t rc) {
        if (rc == 0)
                return 0;
        if (rc & 0x80) { /* format 1: an error about a parameter, handle or session */
                switch (rc & 0xbf) {
                case 0x8b: /* TPM_RC_HANDLE */
                        return -ENOENT;
                case 0x8e: /* TPM_RC_AUTH_FAIL */
                case 0xa2: /* TPM_RC_BAD_AUTH */
                case 0x85: /* TPM_RC_HIERARCHY */
                        return -EACCES;
                }
                return -EPROTO;
        }
        switch (rc) {
        case 0x14a: /* TPM_RC_NV_UNINITIALIZED */
                return -ENODATA;
        case 0x14c: /* TPM_RC_NV_DEFINED */
                return -EEXIST;
        case KOS_TPM_RC_NV_SPACE:
                return -ENOSPC;
        case 0x149: /* TPM_RC_NV_AUTHORIZATION */
        case 0x148: /* TPM_RC_NV_LOCKED */
        case 0x125: /* TPM_RC_AUTH_MISSING */
        case 0x12f: /* TPM_RC_AUTH_UNAVAILABLE */
        case 0x921: /* TPM_RC_LOCKOUT */
                return -EACCES;
        case 0x908: /* TPM_RC_YIELDED */
        case 0x90a: /* TPM_RC_TESTING */
        case 0x920: /* TPM_RC_NV_RATE */
        case 0x922: /* TPM_RC_RETRY */
        case 0x923: /* TPM_RC_NV_UNAVAILABLE */
                return -EAGAIN;
        }
        return -EPROTO;
}

/* --- The transport ------------------------------------------------------ */

static const char *tpm_spec; /* NULL: auto */

void kos_tpm_select(const char *spec) { tpm_spec = spec && strcmp(spec, "auto") != 0 ? spec : NULL; }

static int open_path(const char *path) {
        struct stat st;

        if (stat(path, &st) < 0)
                return -errno;
        if (S_ISCHR(st.st_mode)) {
                int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
                return fd < 0 ? -errno : fd;
        }
        if (!S_ISSOCK(st.st_mode))
                return -ENOTTY;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int kos_tpm_open(struct kos_tpm *ret) {
        static const char *const defaults[] = {"/dev/tpmrm0", "/dev/tpm0"};

        *ret = (struct kos_tpm){.fd = -1};
        if (tpm_spec && strcmp(tpm_spec, "none") == 0)
                return -ENODEV;
        if (tpm_spec) {
                snprintf(ret->path, sizeof ret->path, "%s", tpm_spec);
                ret->fd = open_path(tpm_spec);
                return ret->fd < 0 ? ret->fd : 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(defaults); i++) {
                if (access(defaults[i], F_OK) < 0)
                        continue;
                snprintf(ret->path, sizeof ret->path, "%s", defaults[i]);
                ret->fd = open_path(defaults[i]);
                return ret->fd < 0 ? ret->fd : 0;
        }
        return -ENODEV;
}

void kos_tpm_close(struct kos_tpm *t) { kos_closep(&t->fd); t->fd = -1; }

/* One response: a character device returns it in one read(); a socket may
 * deliver it in pieces, so read until the header's size is there. 30 s at
 * most: a TPM that never answers must not hang PID 1 for ever. */
static int receive(int fd, uint8_t *resp, size_t *ret_len) {
        size_t have = 0, want = 10;

        while (have < want) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                int n = poll(&pfd, 1, 30000);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -ETIMEDOUT;
                ssize_t got = read(fd, resp + have, KOS_TPM_RESPONSE_MAX - have);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got <= 0)
                        return got < 0 ? -errno : -EPIPE;
                have += (size_t)got;
                if (have >= 10) {
                        want = (size_t)resp[2] << 24 | (size_t)resp[3] << 16 | (size_t)resp[4] << 8 | resp[5];
                        if (want < 10 || want > KOS_TPM_RESPONSE_MAX)
                                return -EBADMSG;
                }
        }
        if (have != want)
                return -EBADMSG;
        *ret_len = have;
        return 0;
}

static int transact(struct kos_tpm *t, const uint8_t *cmd, size_t cmd_len, bool sessions,
                    uint8_t resp[static KOS_TPM_RESPONSE_MAX], uint32_t *ret_rc, uint32_t *ret_handle,
                    const uint8_t **ret_params, size_t *ret_params_len) {
        t->last_rc = 0;
        for (unsigned attempt = 0;; attempt++) {
                size_t len = 0;
                int r = kos_write_all(t->fd, cmd, cmd_len);
                if (r < 0)
                        return r;
                if ((r = receive(t->fd, resp, &len)) < 0)
                        return r;
                if ((r = parse_response(resp, len, sessions, ret_rc, ret_handle, ret_params, ret_params_len)) < 0)
                        return r;
                t->last_rc = *ret_rc;
                if (kos_tpm_rc_to_errno(*ret_rc) != -EAGAIN || attempt >= 50)
                        return 0;
                nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
        }
}

int kos_tpm_transact(struct kos_tpm *t, const uint8_t *cmd, size_t cmd_len, bool sessions,
                     uint8_t resp[static KOS_TPM_RESPONSE_MAX], uint32_t *ret_rc, const uint8_t **ret_params,
                     size_t *ret_params_len) {
        return transact(t, cmd, cmd_len, sessions, resp, ret_rc, NULL, ret_params, ret_params_len);
}

/* --- Commands ----------------------------------------------------------- */

/* Sends a built command; the parameters of a successful response in *params. */
static int run(struct kos_tpm *t, int built, const uint8_t *cmd, bool sessions, uint8_t *resp,
               const uint8_t **params, size_t *params_len) {
        uint32_t rc;
        const uint8_t *p;
        size_t n;

        if (built < 0)
                return built;
        int r = kos_tpm_transact(t, cmd, (size_t)built, sessions, resp, &rc, params ? params : &p,
                                 params_len ? params_len : &n);
        return r < 0 ? r : kos_tpm_rc_to_errno(rc);
}

int kos_tpm_nv_read_public(struct kos_tpm *t, uint32_t index, struct kos_tpm_nv_public *ret) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        const uint8_t *p;
        size_t n;
        int r = run(t, kos_tpm_build_nv_read_public(cmd, sizeof cmd, index), cmd, false, resp, &p, &n);

        if (r < 0)
                return r;
        if ((r = kos_tpm_parse_nv_read_public(p, n, ret)) < 0)
                return r;
        return ret->index == index ? 0 : -EBADMSG;
}

int kos_tpm_nv_read_u64(struct kos_tpm *t, uint32_t index, uint32_t session, uint64_t *ret) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX], data[8];
        const uint8_t *p;
        size_t n;
        int r = run(t, kos_tpm_build_nv_read(cmd, sizeof cmd, index, session, 8, 0), cmd, true, resp, &p, &n);

        if (r < 0)
                return r;
        if ((r = kos_tpm_parse_nv_read(p, n, 8, data)) < 0)
                return r;
        *ret = 0;
        for (size_t i = 0; i < 8; i++)
                *ret = *ret << 8 | data[i];
        return 0;
}

int kos_tpm_nv_define_space(struct kos_tpm *t, const struct kos_tpm_nv_public *pub) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        return run(t, kos_tpm_build_nv_define_space(cmd, sizeof cmd, pub), cmd, true, resp, NULL, NULL);
}

int kos_tpm_nv_undefine_space(struct kos_tpm *t, uint32_t index) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        return run(t, kos_tpm_build_nv_undefine_space(cmd, sizeof cmd, index), cmd, true, resp, NULL, NULL);
}

int kos_tpm_nv_increment(struct kos_tpm *t, uint32_t index, uint32_t session) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        return run(t, kos_tpm_build_nv_increment(cmd, sizeof cmd, index, session), cmd, true, resp, NULL, NULL);
}

int kos_tpm_policy_command_code(struct kos_tpm *t, uint32_t session, uint32_t cc) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        const uint8_t *p;
        size_t n;
        int r = run(t, kos_tpm_build_policy_command_code(cmd, sizeof cmd, session, cc), cmd, false, resp, &p, &n);

        return r < 0 ? r : n == 0 ? 0 : -EBADMSG;
}

int kos_tpm_policy_or(struct kos_tpm *t, uint32_t session, const uint8_t (*digests)[KOS_SHA256_LEN], size_t n) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        const uint8_t *p;
        size_t len;
        int r = run(t, kos_tpm_build_policy_or(cmd, sizeof cmd, session, digests, n), cmd, false, resp, &p, &len);

        return r < 0 ? r : len == 0 ? 0 : -EBADMSG;
}

int kos_tpm_pcr_extend(struct kos_tpm *t, unsigned pcr, const uint8_t sha256[static KOS_SHA256_LEN],
                       const uint8_t *sha1) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        return run(t, kos_tpm_build_pcr_extend(cmd, sizeof cmd, pcr, sha256, sha1), cmd, true, resp, NULL, NULL);
}

int kos_tpm_pcr_read(struct kos_tpm *t, unsigned pcr, uint8_t ret_value[static KOS_SHA256_LEN]) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        const uint8_t *p;
        size_t n;
        int r = run(t, kos_tpm_build_pcr_read(cmd, sizeof cmd, pcr), cmd, false, resp, &p, &n);

        return r < 0 ? r : kos_tpm_parse_pcr_read(p, n, pcr, ret_value);
}

/* Like run(), for the sealing commands: any TPM refusal is -EPROTO, as the
 * caller names t->last_rc (kos_tpm_rc_name()), which says more than an
 * errno. The response's handle goes to *ret_handle unless that is NULL (a
 * command whose response carries none). */
static int run_sealing(struct kos_tpm *t, int built, const uint8_t *cmd, bool sessions, uint8_t *resp,
                       uint32_t *ret_handle, const uint8_t **params, size_t *params_len) {
        uint32_t rc;

        if (built < 0)
                return built;
        int r = transact(t, cmd, (size_t)built, sessions, resp, &rc, ret_handle, params, params_len);
        return r < 0 ? r : rc != 0 ? -EPROTO : 0;
}

/* run_sealing() for a command without sessions whose response carries no
 * handle and no parameters. */
static int run_sealing_bare(struct kos_tpm *t, int built, const uint8_t *cmd) {
        uint8_t resp[KOS_TPM_RESPONSE_MAX];
        const uint8_t *p;
        size_t n;
        int r = run_sealing(t, built, cmd, false, resp, NULL, &p, &n);

        return r < 0 ? r : n == 0 ? 0 : -EBADMSG;
}

int kos_tpm_create_primary(struct kos_tpm *t, uint32_t *ret_handle) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        const uint8_t *p;
        size_t n;
        int r = run_sealing(t, kos_tpm_build_create_primary(cmd, sizeof cmd), cmd, true, resp, ret_handle, &p, &n);

        return r < 0 ? r : kos_tpm_parse_create_primary(p, n);
}

int kos_tpm_create(struct kos_tpm *t, uint32_t parent, const uint8_t *data, size_t data_len,
                   const uint8_t policy[static KOS_SHA256_LEN], uint8_t ret_private[static KOS_TPM_BLOB_MAX],
                   uint16_t *ret_private_len, uint8_t ret_public[static KOS_TPM_BLOB_MAX], uint16_t *ret_public_len) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        const uint8_t *p;
        size_t n;
        int r = run_sealing(t, kos_tpm_build_create(cmd, sizeof cmd, parent, data, data_len, policy), cmd, true, resp,
                            NULL, &p, &n);

        explicit_bzero(cmd, sizeof cmd); /* it held the secret */
        return r < 0 ? r : kos_tpm_parse_create(p, n, ret_private, ret_private_len, ret_public, ret_public_len);
}

int kos_tpm_load(struct kos_tpm *t, uint32_t parent, const uint8_t *private_area, uint16_t private_len,
                 const uint8_t *public_area, uint16_t public_len, uint32_t *ret_handle) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX + 2 * KOS_TPM_BLOB_MAX], resp[KOS_TPM_RESPONSE_MAX];
        const uint8_t *p;
        size_t n;
        int r = run_sealing(t,
                            kos_tpm_build_load(cmd, sizeof cmd, parent, private_area, private_len, public_area,
                                               public_len),
                            cmd, true, resp, ret_handle, &p, &n);

        return r < 0 ? r : kos_tpm_parse_load(p, n);
}

int kos_tpm_start_policy_session(struct kos_tpm *t, uint32_t *ret_handle) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX], nonce[16];
        const uint8_t *p;
        size_t n;

        /* The nonce only needs to be fresh for this unsalted session. */
        if (RAND_bytes(nonce, sizeof nonce) != 1)
                return -EIO;
        int r = run_sealing(t, kos_tpm_build_start_auth_session(cmd, sizeof cmd, nonce), cmd, false, resp, ret_handle,
                            &p, &n);
        return r < 0 ? r : kos_tpm_parse_start_auth_session(p, n);
}

int kos_tpm_policy_pcr(struct kos_tpm *t, uint32_t session, uint32_t pcr_mask) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX];
        return run_sealing_bare(t, kos_tpm_build_policy_pcr(cmd, sizeof cmd, session, pcr_mask), cmd);
}

int kos_tpm_unseal_object(struct kos_tpm *t, uint32_t item, uint32_t session,
                          uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX], size_t *ret_len) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX], resp[KOS_TPM_RESPONSE_MAX];
        const uint8_t *p;
        size_t n;
        int r = run_sealing(t, kos_tpm_build_unseal(cmd, sizeof cmd, item, session), cmd, true, resp, NULL, &p, &n);

        if (r == 0)
                r = kos_tpm_parse_unseal(p, n, ret_data, ret_len);
        explicit_bzero(resp, sizeof resp); /* it held the secret */
        return r;
}

int kos_tpm_flush_context(struct kos_tpm *t, uint32_t handle) {
        uint8_t cmd[KOS_TPM_COMMAND_MAX];
        return run_sealing_bare(t, kos_tpm_build_flush_context(cmd, sizeof cmd, handle), cmd);
}

int kos_tpm_extend_event(struct kos_tpm *t, unsigned pcr, const void *event, size_t len) {
        uint8_t sha256[KOS_SHA256_LEN], sha1[20];
        unsigned int n = 0;

        if (kos_sha256(event, len, sha256) < 0 || EVP_Digest(event, len, sha1, &n, EVP_sha1(), NULL) != 1 ||
            n != sizeof sha1)
                return -EIO;
        int r = kos_tpm_pcr_extend(t, pcr, sha256, sha1);
        if (r == -EPROTO) /* a TPM without SHA-1 at all refuses the whole list */
                r = kos_tpm_pcr_extend(t, pcr, sha256, NULL);
        return r;
}

/* --- The rollback floor ------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* The two branches: SHA-256(0^32 || TPM_CC_PolicyCommandCode || cc), for
 * NV_Read and NV_Increment (Part 3, 23.11). */
static int floor_policy_branches(uint8_t ret[2][KOS_SHA256_LEN]) {
        static const uint32_t codes[2] = {KOS_TPM_CC_NV_READ, KOS_TPM_CC_NV_INCREMENT};

        for (size_t i = 0; i < 2; i++) {
                uint8_t buf[KOS_SHA256_LEN + 8] = {0};
                put_be32(buf + KOS_SHA256_LEN, KOS_TPM_CC_POLICY_COMMAND_CODE);
                put_be32(buf + KOS_SHA256_LEN + 4, codes[i]);
                if (kos_sha256(buf, sizeof buf, ret[i]) < 0)
                        return -EIO;
        }
        return 0;
}

/* SHA-256(0^32 || TPM_CC_PolicyOR || branch 1 || branch 2) (Part 3, 23.6). */
int kos_tpm_floor_policy_digest(uint8_t ret_digest[static KOS_SHA256_LEN]) {
        uint8_t buf[KOS_SHA256_LEN + 4 + 2 * KOS_SHA256_LEN] = {0}, branches[2][KOS_SHA256_LEN];
        int r = floor_policy_branches(branches);

        if (r < 0)
                return r;
        put_be32(buf + KOS_SHA256_LEN, KOS_TPM_CC_POLICY_OR);
        memcpy(buf + KOS_SHA256_LEN + 4, branches, sizeof branches);
        return kos_sha256(buf, sizeof buf, ret_digest) < 0 ? -EIO : 0;
}

/* The counter a floor call works on: the manifest floor, or the Boot
 * Kernel floor while kos_tpm_bk_floor_*() run (same definition, same
 * policy, same arithmetic; docs/tpm.md, "The Boot Kernel floor"). */
static uint32_t floor_index(const struct kos_tpm *t) {
        return t->floor_index ? t->floor_index : KOS_TPM_FLOOR_INDEX;
}

/* The public area of the counter, or of its first definition. */
static int floor_public(const struct kos_tpm *t, bool first, struct kos_tpm_nv_public *ret) {
        *ret = (struct kos_tpm_nv_public){
                .index = floor_index(t),
                .name_alg = KOS_TPM_ALG_SHA256,
                .attributes = first ? KOS_TPM_FLOOR_FIRST_ATTRIBUTES : KOS_TPM_FLOOR_ATTRIBUTES,
                .data_size = 8,
        };
        if (first)
                return 0;
        ret->auth_policy_size = KOS_SHA256_LEN;
        return kos_tpm_floor_policy_digest(ret->auth_policy);
}

bool kos_tpm_nv_public_is(const struct kos_tpm_nv_public *have, const struct kos_tpm_nv_public *want) {
        return have->index == want->index && have->name_alg == want->name_alg &&
               (have->attributes & ~KOS_TPM_NV_WRITTEN) == want->attributes &&
               have->auth_policy_size == want->auth_policy_size &&
               memcmp(have->auth_policy, want->auth_policy, want->auth_policy_size) == 0 &&
               have->data_size == want->data_size;
}

/* Appends to a message buffer. */
static void __attribute__((format(printf, 3, 4))) append(char *buf, size_t size, const char *fmt, ...) {
        size_t used = strnlen(buf, size);
        va_list ap;

        if (used + 1 >= size)
                return;
        va_start(ap, fmt);
        vsnprintf(buf + used, size - used, fmt, ap);
        va_end(ap);
}

/* "(TPM_RC_...)" when the TPM refused the last command, else "(errno text)". */
static const char *refusal(const struct kos_tpm *t, int r, char *buf, size_t size) {
        char rc[32];

        if (t->last_rc != 0)
                snprintf(buf, size, "%s", kos_tpm_rc_name(t->last_rc, rc, sizeof rc));
        else
                snprintf(buf, size, "%s", strerror(-r));
        return buf;
}

enum floor_kind { FLOOR_ABSENT, FLOOR_OURS, FLOOR_FIRST, FLOOR_FOREIGN };

static int identify_floor(struct kos_tpm *t, enum floor_kind *ret_kind, char *message, size_t size) {
        struct kos_tpm_nv_public have, ours, first;
        char why[40], policy[KOS_SHA256_HEX_LEN + 1] = "", want[KOS_SHA256_HEX_LEN + 1];
        int r = kos_tpm_nv_read_public(t, floor_index(t), &have);

        if (r == -ENOENT) {
                *ret_kind = FLOOR_ABSENT;
                return 0;
        }
        if (r < 0) {
                snprintf(message, size, "cannot read the public area of NV 0x%08x (%s)", floor_index(t),
                         refusal(t, r, why, sizeof why));
                return r;
        }
        if ((r = floor_public(t, false, &ours)) < 0 || (r = floor_public(t, true, &first)) < 0)
                return r;
        if (kos_tpm_nv_public_is(&have, &ours))
                *ret_kind = FLOOR_OURS;
        else if (kos_tpm_nv_public_is(&have, &first) && floor_index(t) == KOS_TPM_FLOOR_INDEX)
                *ret_kind = FLOOR_FIRST;
        else {
                *ret_kind = FLOOR_FOREIGN;
                kos_hex_encode(have.auth_policy, have.auth_policy_size < 8 ? have.auth_policy_size : 8, policy);
                kos_hex_encode(ours.auth_policy, 8, want);
                snprintf(message, size,
                         "NV 0x%08x is not the KOS floor counter (attributes 0x%08x, nameAlg 0x%04x, authPolicy "
                         "%s%s, %u bytes; the counter has 0x%08x, SHA-256, %s..., 8 bytes): tampering",
                         floor_index(t), have.attributes & ~KOS_TPM_NV_WRITTEN, have.name_alg,
                         have.auth_policy_size ? policy : "none", have.auth_policy_size > 8 ? "..." : "",
                         have.data_size, KOS_TPM_FLOOR_ATTRIBUTES, want);
        }
        return 0;
}

/* Flushes a session whose command failed (the TPM flushes one that is not
 * continued only after a success), keeping the failure's code for messages. */
static void flush_after_failure(struct kos_tpm *t, uint32_t session) {
        uint32_t rc = t->last_rc;

        (void)kos_tpm_flush_context(t, session);
        t->last_rc = rc;
}

/* A policy session that satisfies the counter's authPolicy for cc. */
static int floor_policy_session(struct kos_tpm *t, uint32_t cc, uint32_t *ret_session) {
        uint8_t branches[2][KOS_SHA256_LEN];
        uint32_t session;
        int r = floor_policy_branches(branches);

        if (r < 0 || (r = kos_tpm_start_policy_session(t, &session)) < 0)
                return r;
        if ((r = kos_tpm_policy_command_code(t, session, cc)) < 0 ||
            (r = kos_tpm_policy_or(t, session, (const uint8_t(*)[KOS_SHA256_LEN])branches, 2)) < 0) {
                flush_after_failure(t, session);
                return r;
        }
        *ret_session = session;
        return 0;
}

/* The counter's value or one increment: through the policy (ours), or with
 * the empty password (the first definition). */
static int floor_counter(struct kos_tpm *t, bool first, uint64_t *ret_value) {
        uint32_t session = KOS_TPM_RS_PW;
        int r;

        if (!first && (r = floor_policy_session(t, ret_value ? KOS_TPM_CC_NV_READ : KOS_TPM_CC_NV_INCREMENT,
                                                &session)) < 0)
                return r;
        r = ret_value ? kos_tpm_nv_read_u64(t, floor_index(t), session, ret_value)
                      : kos_tpm_nv_increment(t, floor_index(t), session);
        if (r < 0 && session != KOS_TPM_RS_PW)
                flush_after_failure(t, session);
        return r;
}

static int floor_counter_read(struct kos_tpm *t, bool first, uint64_t *ret_value) {
        return floor_counter(t, first, ret_value);
}

static int floor_counter_increment(struct kos_tpm *t, bool first) { return floor_counter(t, first, NULL); }

/* The counter holds the floor + 2 (the first definition: + 1); a counter
 * at or below that offset holds floor 0. */
static uint32_t floor_of(uint64_t counter, bool first) {
        uint64_t offset = first ? 1 : KOS_TPM_FLOOR_OFFSET;
        uint64_t floor = counter <= offset ? 0 : counter - offset;
        return floor > UINT32_MAX ? UINT32_MAX : (uint32_t)floor;
}

static int say_read_failure(struct kos_tpm *t, bool first, int r, char *message, size_t size) {
        char why[40];

        if (r == -ENODATA)
                snprintf(message, size,
                         "NV 0x%08x was never incremented: defined again since it was provisioned (tampering), or "
                         "provisioning was cut short",
                         floor_index(t));
        else if (first && r == -EACCES)
                snprintf(message, size,
                         "NV 0x%08x has the first KOS definition, but the TPM refuses to read it with the empty "
                         "password (%s): it was defined again with a secret authValue (tampering)",
                         floor_index(t), refusal(t, r, why, sizeof why));
        else
                snprintf(message, size, "the TPM does not let NV 0x%08x be read through %s (%s)", floor_index(t),
                         first ? "the empty password" : "the counter's policy", refusal(t, r, why, sizeof why));
        return r;
}

static int say_increment_failure(struct kos_tpm *t, bool first, int r, char *message, size_t size) {
        char why[40];

        snprintf(message, size, "the TPM does not let NV 0x%08x be incremented through %s (%s)", floor_index(t),
                 first ? "the empty password" : "the counter's policy", refusal(t, r, why, sizeof why));
        return r;
}

/* NV_DefineSpace of the counter by the owner hierarchy. */
static int define_floor(struct kos_tpm *t, char *message, size_t size) {
        struct kos_tpm_nv_public ours;
        char why[40];
        int r = floor_public(t, false, &ours);

        if (r < 0 || (r = kos_tpm_nv_define_space(t, &ours)) >= 0)
                return r;
        if (kos_tpm_rc_is_bad_auth(t->last_rc))
                snprintf(message, size,
                         "cannot define NV 0x%08x: bad authorization for the owner hierarchy (%s): its owner has set "
                         "a password; define the counter with it (docs/tpm.md, \"An owner password\")",
                         floor_index(t), refusal(t, r, why, sizeof why));
        else if (r == -ENOSPC)
                snprintf(message, size, "cannot define NV 0x%08x: the TPM's NV memory is full (%s)",
                         floor_index(t), refusal(t, r, why, sizeof why));
        else
                snprintf(message, size, "cannot define NV 0x%08x (%s)", floor_index(t),
                         refusal(t, r, why, sizeof why));
        return r;
}

/* Increments the counter from *counter until it holds at least target. */
static int increment_to(struct kos_tpm *t, bool first, uint64_t *counter, uint64_t target, char *message,
                        size_t size) {
        int r;

        if (*counter >= target)
                return 0;
        if (target - *counter > KOS_TPM_FLOOR_MAX_STEP) {
                snprintf(message, size, "raising NV 0x%08x from %llu to %llu takes more than %u increments",
                         floor_index(t), (unsigned long long)*counter, (unsigned long long)target,
                         KOS_TPM_FLOOR_MAX_STEP);
                return -E2BIG;
        }
        for (; *counter < target; (*counter)++)
                if ((r = floor_counter_increment(t, first)) < 0)
                        return say_increment_failure(t, first, r, message, size);
        return 0;
}

/* The first definition's floor is kept: its value V is read with the empty
 * password, which must work (else it was defined again with a secret
 * authValue: tampering). Undefining it makes the TPM remember V (Part 1:
 * a new counter starts above every counter this TPM ever deleted), so ours,
 * defined at once in its place, holds V + 1 after its first increment: with
 * floor + 2 that is V - 1, the first definition's floor. Cut at any point,
 * the next provisioning finds no index or ours never incremented, and the
 * same arithmetic gives the same floor or a higher one. */
static int migrate_first_definition(struct kos_tpm *t, char *message, size_t size) {
        uint64_t old = 0, now;
        char why[40];
        int r = floor_counter_read(t, true, &old);

        if (r < 0 && r != -ENODATA)
                return say_read_failure(t, true, r, message, size);
        if ((r = kos_tpm_nv_undefine_space(t, floor_index(t))) < 0) {
                if (!kos_tpm_rc_is_bad_auth(t->last_rc)) {
                        snprintf(message, size, "cannot undefine the first definition of NV 0x%08x (%s)",
                                 floor_index(t), refusal(t, r, why, sizeof why));
                        return r;
                }
                /* The owner has set a password: nobody else can define the
                 * index again, so the first definition is as safe as ours. */
                if (old == 0 && ((r = floor_counter_increment(t, true)) < 0 || (r = floor_counter_read(t, true, &old)) < 0))
                        return say_read_failure(t, true, r, message, size);
                snprintf(message, size,
                         "kept the first definition of the counter (floor %lu): the owner hierarchy has a password, "
                         "so it cannot be migrated (docs/tpm.md, \"An owner password\")",
                         (unsigned long)floor_of(old, true));
                return 0;
        }
        if ((r = define_floor(t, message, size)) < 0)
                return r;
        if ((r = floor_counter_increment(t, false)) < 0)
                return say_increment_failure(t, false, r, message, size);
        if ((r = floor_counter_read(t, false, &now)) < 0)
                return say_read_failure(t, false, r, message, size);
        /* Only a TPM that forgot V needs this: never more than V + 1. */
        if (old > 0 && (r = increment_to(t, false, &now, old + 1, message, size)) < 0)
                return r;
        if (old > 0)
                snprintf(message, size,
                         "migrated the first definition of the counter (floor %lu) to the policy-authorized one "
                         "(floor %lu)",
                         (unsigned long)floor_of(old, true), (unsigned long)floor_of(now, false));
        else
                snprintf(message, size,
                         "migrated the first definition of the counter (never incremented) to the "
                         "policy-authorized one (floor %lu)",
                         (unsigned long)floor_of(now, false));
        return 0;
}

/* The start of every floor call: what is at the index; -EBADMSG (never
 * replaced: that would hide the tampering) when it is not ours. */
static int identify_usable_floor(struct kos_tpm *t, enum floor_kind *ret_kind, char *message, size_t size) {
        int r;

        message[0] = '\0';
        if ((r = identify_floor(t, ret_kind, message, size)) < 0)
                return r;
        return *ret_kind == FLOOR_FOREIGN ? -EBADMSG : 0;
}

int kos_tpm_floor_read(struct kos_tpm *t, uint32_t *ret_floor, char *ret_message, size_t message_size) {
        enum floor_kind kind;
        uint64_t counter;
        int r;

        if ((r = identify_usable_floor(t, &kind, ret_message, message_size)) < 0)
                return r;
        if (kind == FLOOR_ABSENT) {
                snprintf(ret_message, message_size,
                         "NV 0x%08x is not defined: never provisioned, or deleted since (the Boot Kernel provisions "
                         "it at every boot)",
                         floor_index(t));
                return -ENOENT;
        }
        if ((r = floor_counter_read(t, kind == FLOOR_FIRST, &counter)) < 0)
                return say_read_failure(t, kind == FLOOR_FIRST, r, ret_message, message_size);
        *ret_floor = floor_of(counter, kind == FLOOR_FIRST);
        return 0;
}

int kos_tpm_floor_provision(struct kos_tpm *t, char *ret_message, size_t message_size) {
        enum floor_kind kind;
        uint64_t counter;
        int r;

        if ((r = identify_usable_floor(t, &kind, ret_message, message_size)) < 0)
                return r;
        switch (kind) {
        case FLOOR_FOREIGN:
                return -EBADMSG; /* identify_usable_floor() said so */
        case FLOOR_FIRST:
                return migrate_first_definition(t, ret_message, message_size);
        case FLOOR_ABSENT:
                if ((r = define_floor(t, ret_message, message_size)) < 0)
                        return r;
                append(ret_message, message_size, "defined the counter; ");
                break;
        case FLOOR_OURS:
                break;
        }
        r = floor_counter_read(t, false, &counter);
        if (r == -ENODATA) {
                if ((r = floor_counter_increment(t, false)) < 0)
                        return say_increment_failure(t, false, r, ret_message, message_size);
                if ((r = floor_counter_read(t, false, &counter)) < 0)
                        return say_read_failure(t, false, r, ret_message, message_size);
                append(ret_message, message_size, "first increment: floor %lu",
                       (unsigned long)floor_of(counter, false));
        }
        return r < 0 ? say_read_failure(t, false, r, ret_message, message_size) : 0;
}

int kos_tpm_floor_raise(struct kos_tpm *t, uint32_t value, char *ret_message, size_t message_size) {
        enum floor_kind kind;
        uint64_t counter;
        int r;

        if ((r = identify_usable_floor(t, &kind, ret_message, message_size)) < 0)
                return r;
        if (kind == FLOOR_ABSENT) {
                if ((r = kos_tpm_floor_provision(t, ret_message, message_size)) < 0)
                        return r;
                kind = FLOOR_OURS;
        }
        bool first = kind == FLOOR_FIRST;
        r = floor_counter_read(t, first, &counter);
        if (r == -ENODATA && (r = floor_counter_increment(t, first)) >= 0)
                r = floor_counter_read(t, first, &counter);
        if (r < 0)
                return say_read_failure(t, first, r, ret_message, message_size);
        uint32_t floor = floor_of(counter, first);
        if (floor > value) {
                snprintf(ret_message, message_size, "the TPM's floor is already higher (%lu)", (unsigned long)floor);
                return -ERANGE;
        }
        if (floor == value)
                return 0;
        return increment_to(t, first, &counter, (uint64_t)value + (first ? 1 : KOS_TPM_FLOOR_OFFSET), ret_message,
                            message_size);
}

int kos_tpm_bk_floor_read(struct kos_tpm *t, uint32_t *ret_floor, char *ret_message, size_t message_size) {
        t->floor_index = KOS_TPM_BK_FLOOR_INDEX;
        int r = kos_tpm_floor_read(t, ret_floor, ret_message, message_size);
        t->floor_index = 0;
        return r;
}

int kos_tpm_bk_floor_provision(struct kos_tpm *t, char *ret_message, size_t message_size) {
        t->floor_index = KOS_TPM_BK_FLOOR_INDEX;
        int r = kos_tpm_floor_provision(t, ret_message, message_size);
        t->floor_index = 0;
        return r;
}

int kos_tpm_bk_floor_raise(struct kos_tpm *t, uint32_t value, char *ret_message, size_t message_size) {
        t->floor_index = KOS_TPM_BK_FLOOR_INDEX;
        int r = kos_tpm_floor_raise(t, value, ret_message, message_size);
        t->floor_index = 0;
        return r;
}

/* --- Measured boot ------------------------------------------------------ */

void kos_tpm_manifest_event(const uint8_t id[static KOS_SHA256_LEN], uint8_t ret_event[static KOS_TPM_EVENT_LEN]) {
        memcpy(ret_event, KOS_TPM_EVENT_PREFIX, sizeof(KOS_TPM_EVENT_PREFIX) - 1);
        memcpy(ret_event + sizeof(KOS_TPM_EVENT_PREFIX) - 1, id, KOS_SHA256_LEN);
}

int kos_tpm_manifest_event_digest(const uint8_t id[static KOS_SHA256_LEN], uint8_t ret_digest[static KOS_SHA256_LEN]) {
        uint8_t event[KOS_TPM_EVENT_LEN];

        kos_tpm_manifest_event(id, event);
        return kos_sha256(event, sizeof event, ret_digest);
}

int kos_tpm_manifest_expected_pcr(const uint8_t id[static KOS_SHA256_LEN], uint8_t ret_pcr[static KOS_SHA256_LEN]) {
        uint8_t buf[2 * KOS_SHA256_LEN] = {0};
        int r = kos_tpm_manifest_event_digest(id, buf + KOS_SHA256_LEN);

        return r < 0 ? r : kos_sha256(buf, sizeof buf, ret_pcr);
}

int kos_tpm_measure_manifest(struct kos_tpm *t, const uint8_t id[static KOS_SHA256_LEN]) {
        uint8_t event[KOS_TPM_EVENT_LEN];

        kos_tpm_manifest_event(id, event);
        int r = kos_tpm_extend_event(t, KOS_TPM_PCR, event, sizeof event);
        if (r < 0)
                return r;
        /* The verified-boot marker (docs/tpm.md, "Sealed keys"): keys sealed
         * to it open in the next kernel's initrd whatever the release. */
        return kos_tpm_extend_event(t, KOS_TPM_SEAL_PCR, KOS_TPM_MARKER_EVENT, strlen(KOS_TPM_MARKER_EVENT));
}

int kos_tpm_sysfs_pcr_read(unsigned pcr, uint8_t ret_value[static KOS_SHA256_LEN]) {
        char path[64], text[KOS_SHA256_HEX_LEN + 2];
        ssize_t n;

        /* Not kos_read_file_at(): a sysfs attribute claims st_size 4096. */
        snprintf(path, sizeof path, "/sys/class/tpm/tpm0/pcr-sha256/%u", pcr);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        do
                n = read(fd, text, sizeof text);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        /* 64 uppercase hex digits and a newline */
        if (n != KOS_SHA256_HEX_LEN + 1 || text[KOS_SHA256_HEX_LEN] != '\n')
                return -EBADMSG;
        for (size_t i = 0; i < KOS_SHA256_HEX_LEN; i++)
                if (text[i] >= 'A' && text[i] <= 'F')
                        text[i] = (char)(text[i] - 'A' + 'a');
        return kos_hex_decode(text, KOS_SHA256_HEX_LEN, ret_value, KOS_SHA256_LEN);
}
