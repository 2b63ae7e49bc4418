/* SPDX-License-Identifier: MIT */
/* Keys sealed to the verified chain: the policy, the sealed-key file, and
 * seal/unseal on top of the commands of tpm.c. See tpm-seal.h and
 * docs/tpm.md, "Sealed keys". */
#include "tpm-seal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int extend_from_zero(const char *event, uint8_t ret_value[static KOS_SHA256_LEN]) {
        uint8_t buf[2 * KOS_SHA256_LEN] = {0};
        int r = kos_sha256(event, strlen(event), buf + KOS_SHA256_LEN);

        return r < 0 ? r : kos_sha256(buf, sizeof buf, ret_value);
}

int kos_tpm_seal_pcr_expected(uint8_t ret_value[static KOS_SHA256_LEN]) {
        return extend_from_zero(KOS_TPM_MARKER_EVENT, ret_value);
}

int kos_tpm_policy_pcr_digest(uint32_t mask, const uint8_t values[24][KOS_SHA256_LEN],
                              uint8_t ret_digest[static KOS_SHA256_LEN]) {
        uint8_t concat[24 * KOS_SHA256_LEN], buf[KOS_SHA256_LEN + 4 + 10 + KOS_SHA256_LEN] = {0};
        size_t n = 0;

        if (mask == 0 || mask >> 24)
                return -EINVAL;
        for (unsigned i = 0; i < 24; i++)
                if (mask & (1u << i)) {
                        memcpy(concat + n, values[i], KOS_SHA256_LEN);
                        n += KOS_SHA256_LEN;
                }
        uint8_t *p = buf + KOS_SHA256_LEN; /* the previous policyDigest: zero */
        const uint8_t tail[] = {0x00, 0x00, 0x01, 0x7f,              /* TPM_CC_PolicyPCR */
                                0x00, 0x00, 0x00, 0x01, 0x00, 0x0b, /* one selection, SHA-256 */
                                0x03, (uint8_t)mask, (uint8_t)(mask >> 8), (uint8_t)(mask >> 16)};
        memcpy(p, tail, sizeof tail);
        p += sizeof tail;
        if (kos_sha256(concat, n, p) < 0)
                return -EIO;
        return kos_sha256(buf, sizeof buf, ret_digest);
}

/* --- The file ----------------------------------------------------------- */

int kos_sealed_key_parse(const uint8_t *untrusted, size_t len, struct kos_sealed_key *ret) {
        size_t pos = sizeof(KOS_SEALED_KEY_MAGIC) - 1;

        memset(ret, 0, sizeof *ret);
        if (len > KOS_SEALED_KEY_MAX || len < pos + 4 || memcmp(untrusted, KOS_SEALED_KEY_MAGIC, pos) != 0)
                return -EBADMSG;
        ret->pcr_mask = (uint32_t)untrusted[pos] << 24 | (uint32_t)untrusted[pos + 1] << 16 |
                        (uint32_t)untrusted[pos + 2] << 8 | untrusted[pos + 3];
        pos += 4;
        if (ret->pcr_mask >> 24 || !(ret->pcr_mask & (1u << KOS_TPM_SEAL_PCR)))
                return -EBADMSG;
        for (unsigned i = 0; i < 24; i++) {
                if (!(ret->pcr_mask & (1u << i)))
                        continue;
                if (KOS_SHA256_LEN > len - pos)
                        return -EBADMSG;
                memcpy(ret->pcr_values[i], untrusted + pos, KOS_SHA256_LEN);
                pos += KOS_SHA256_LEN;
        }
        uint8_t *areas[2] = {ret->public_area, ret->private_area};
        uint16_t *lens[2] = {&ret->public_len, &ret->private_len};
        for (unsigned i = 0; i < 2; i++) {
                if (2 > len - pos)
                        return -EBADMSG;
                size_t n = (size_t)untrusted[pos] << 8 | untrusted[pos + 1];
                pos += 2;
                if (n == 0 || n > KOS_TPM_BLOB_MAX || n > len - pos)
                        return -EBADMSG;
                memcpy(areas[i], untrusted + pos, n);
                *lens[i] = (uint16_t)n;
                pos += n;
        }
        return pos == len ? 0 : -EBADMSG;
}

int kos_sealed_key_format(const struct kos_sealed_key *k, uint8_t *buf, size_t size) {
        size_t need = sizeof(KOS_SEALED_KEY_MAGIC) - 1 + 4 + 2 + k->public_len + 2 + k->private_len, pos = 0;

        for (unsigned i = 0; i < 24; i++)
                if (k->pcr_mask & (1u << i))
                        need += KOS_SHA256_LEN;
        if (need > size || need > KOS_SEALED_KEY_MAX)
                return -ENOBUFS;
        memcpy(buf, KOS_SEALED_KEY_MAGIC, sizeof(KOS_SEALED_KEY_MAGIC) - 1);
        pos += sizeof(KOS_SEALED_KEY_MAGIC) - 1;
        for (unsigned s = 0; s < 4; s++)
                buf[pos++] = (uint8_t)(k->pcr_mask >> (24 - 8 * s));
        for (unsigned i = 0; i < 24; i++)
                if (k->pcr_mask & (1u << i)) {
                        memcpy(buf + pos, k->pcr_values[i], KOS_SHA256_LEN);
                        pos += KOS_SHA256_LEN;
                }
        buf[pos++] = (uint8_t)(k->public_len >> 8), buf[pos++] = (uint8_t)k->public_len;
        memcpy(buf + pos, k->public_area, k->public_len);
        pos += k->public_len;
        buf[pos++] = (uint8_t)(k->private_len >> 8), buf[pos++] = (uint8_t)k->private_len;
        memcpy(buf + pos, k->private_area, k->private_len);
        pos += k->private_len;
        return (int)pos;
}

/* --- Sealing and unsealing ---------------------------------------------- */

int kos_tpm_say_error(struct kos_tpm *t, const char *what, int r, struct kos_error *ret_error) {
        char rc[32];

        if (r == -EPROTO && t->last_rc != 0)
                return kos_error_set(ret_error, r, "%s: the TPM refused (%s)", what,
                                     kos_tpm_rc_name(t->last_rc, rc, sizeof rc));
        return kos_error_set(ret_error, r, "%s: %s", what, strerror(-r));
}

/* CreatePrimary is the one command authorized by a hierarchy: the owner's,
 * with the empty password (docs/tpm.md, "An owner password"). */
static int say_create_primary_error(struct kos_tpm *t, int r, struct kos_error *ret_error) {
        char rc[32];

        if (r == -EPROTO && kos_tpm_rc_is_bad_auth(t->last_rc))
                return kos_error_set(ret_error, r,
                                     "CreatePrimary (the KOS storage key): bad authorization for the owner hierarchy "
                                     "(%s): its owner has set a password; sealing and unsealing need the empty one "
                                     "(docs/tpm.md, \"An owner password\")",
                                     kos_tpm_rc_name(t->last_rc, rc, sizeof rc));
        return kos_tpm_say_error(t, "CreatePrimary (the KOS storage key)", r, ret_error);
}

int kos_tpm_seal(struct kos_tpm *t, const uint8_t *data, size_t data_len, uint32_t mask,
                 const uint8_t values[24][KOS_SHA256_LEN], struct kos_sealed_key *ret, struct kos_error *ret_error) {
        uint8_t policy[KOS_SHA256_LEN];
        uint32_t primary;
        int r;

        if (!(mask & (1u << KOS_TPM_SEAL_PCR)) || data_len == 0 || data_len > KOS_TPM_SEAL_DATA_MAX)
                return kos_error_set(ret_error, -EINVAL, "the policy must include PCR %d and the key be 1 to %d bytes",
                                     KOS_TPM_SEAL_PCR, KOS_TPM_SEAL_DATA_MAX);
        memset(ret, 0, sizeof *ret);
        ret->pcr_mask = mask;
        memcpy(ret->pcr_values, values, sizeof ret->pcr_values);
        if ((r = kos_tpm_policy_pcr_digest(mask, values, policy)) < 0)
                return kos_error_set(ret_error, r, "cannot compute the policy");
        if ((r = kos_tpm_create_primary(t, &primary)) < 0)
                return say_create_primary_error(t, r, ret_error);
        r = kos_tpm_create(t, primary, data, data_len, policy, ret->private_area, &ret->private_len,
                           ret->public_area, &ret->public_len);
        if (r < 0)
                kos_tpm_say_error(t, "Create (the sealed object)", r, ret_error);
        (void)kos_tpm_flush_context(t, primary);
        return r;
}

/* After TPM_RC_POLICY_FAIL: which PCR of the policy holds another value. */
static void explain_policy_failure(struct kos_tpm *t, const struct kos_sealed_key *k, int r, struct kos_error *ret_error) {
        for (unsigned i = 0; i < 24; i++) {
                uint8_t value[KOS_SHA256_LEN];
                char have[KOS_SHA256_HEX_LEN + 1], want[KOS_SHA256_HEX_LEN + 1];

                if (!(k->pcr_mask & (1u << i)))
                        continue;
                if (kos_tpm_pcr_read(t, i, value) < 0) {
                        kos_error_set(ret_error, r, "the policy failed (TPM_RC_POLICY_FAIL) and PCR %u cannot be read", i);
                        return;
                }
                if (kos_digest_equal(value, k->pcr_values[i]))
                        continue;
                kos_hex_encode(value, KOS_SHA256_LEN, have);
                kos_hex_encode(k->pcr_values[i], KOS_SHA256_LEN, want);
                kos_error_set(ret_error, r,
                              "PCR %u does not match the sealed policy (TPM_RC_POLICY_FAIL): it holds %.16s..., the "
                              "policy needs %.16s...%s",
                              i, have, want,
                              i == KOS_TPM_SEAL_PCR ? " (no KOS Boot Kernel started this, or after the leave event)"
                              : i == 7 ? " (Secure Boot is off, or its keys or dbx differ from the sealed state)"
                                       : "");
                return;
        }
        kos_error_set(ret_error, r,
                      "the PCRs hold the values recorded in the sealed-key file, but the object's policy is another "
                      "(TPM_RC_POLICY_FAIL): the file was changed");
}

int kos_tpm_load_sealed_object(struct kos_tpm *t, uint32_t primary, const uint8_t *public_area, uint16_t public_len,
                               const uint8_t *private_area, uint16_t private_len, uint32_t *ret_item,
                               struct kos_error *ret_error) {
        char rc[32];
        int r = kos_tpm_load(t, primary, private_area, private_len, public_area, public_len, ret_item);

        if (r == -EPROTO)
                kos_error_set(ret_error, r,
                              "the TPM cannot load the sealed object (%s): it was sealed by another TPM, or changed, or "
                              "the TPM was cleared",
                              kos_tpm_rc_name(t->last_rc, rc, sizeof rc));
        else if (r < 0)
                kos_tpm_say_error(t, "Load", r, ret_error);
        return r;
}

int kos_tpm_unseal(struct kos_tpm *t, const struct kos_sealed_key *k, uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX],
                   size_t *ret_len, struct kos_error *ret_error) {
        uint32_t primary, item = 0, session = 0;
        int r;

        if ((r = kos_tpm_create_primary(t, &primary)) < 0)
                return say_create_primary_error(t, r, ret_error);
        r = kos_tpm_load_sealed_object(t, primary, k->public_area, k->public_len, k->private_area, k->private_len,
                                       &item, ret_error);
        if (r < 0)
                goto out;
        if ((r = kos_tpm_start_policy_session(t, &session)) < 0) {
                kos_tpm_say_error(t, "StartAuthSession", r, ret_error);
                goto out;
        }
        if ((r = kos_tpm_policy_pcr(t, session, k->pcr_mask)) < 0) {
                kos_tpm_say_error(t, "PolicyPCR", r, ret_error);
                goto out;
        }
        r = kos_tpm_unseal_object(t, item, session, ret_data, ret_len);
        if (r == 0)
                session = 0; /* not continued: the TPM flushed it */
        else if (r == -EPROTO && (t->last_rc & 0xbf) == KOS_TPM_RC_POLICY_FAIL && (t->last_rc & 0x80))
                explain_policy_failure(t, k, r, ret_error);
        else
                kos_tpm_say_error(t, "Unseal", r, ret_error);
out:
        if (session)
                (void)kos_tpm_flush_context(t, session);
        if (item)
                (void)kos_tpm_flush_context(t, item);
        (void)kos_tpm_flush_context(t, primary);
        return r;
}

int kos_tpm_seal_leave(struct kos_tpm *t) {
        return kos_tpm_extend_event(t, KOS_TPM_SEAL_PCR, KOS_TPM_LEAVE_EVENT, strlen(KOS_TPM_LEAVE_EVENT));
}

int kos_tpm_parse_pcr_list(const char *s, uint32_t *ret_mask) {
        uint32_t mask = 0;

        if (!*s)
                return -EINVAL;
        while (*s) {
                char *end;
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                unsigned long v = strtoul(s, &end, 10);
                if (end == s || v > 23 || (mask & (1u << v)) || (*end && *end != ','))
                        return -EINVAL;
                mask |= 1u << v;
                s = *end ? end + 1 : end;
                if (*end && !*s)
                        return -EINVAL;
        }
        *ret_mask = mask;
        return 0;
}
