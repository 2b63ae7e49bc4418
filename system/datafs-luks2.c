/* SPDX-License-Identifier: MIT */
/* What the DataFS's boot (datafs.c) and its encryption in place
 * (datafs-encrypt.c) share: see datafs-luks2.h. */
#include "datafs-luks2.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "datafs-header.h"
#include "datafs-recovery.h"
#include "early.h"
#include "keystore.h"
#include "layout.h"
#include "util.h"

static void vlock(struct datafs *d, const char *format, va_list ap) __attribute__((format(printf, 2, 0)));
static void vlock(struct datafs *d, const char *format, va_list ap) {
        vsnprintf(d->reason, sizeof d->reason, format, ap);
        d->state = "locked";
        d->mount_device[0] = '\0';
        d->needs_mkfs = false;
        early_log("DataFS %s: locked: %s; continuing without /data (%s)", d->device, d->reason,
                  d->header_zeroed ? "the header this boot began to write was zeroed again"
                  : d->encrypting  ? "its encryption in place stopped where the LUKS2 header says; the next boot goes on"
                  : d->fs_shrunk   ? "its ext4 was checked and shrunk for the LUKS2 header, its files intact"
                                   : "nothing on it was written");
}

void datafs_lock(struct datafs *d, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vlock(d, format, ap);
        va_end(ap);
}

/* The vendor's policy key (initrd) and the release's signed policy
 * (ImageFS): true when both are there; otherwise why says what is missing. */
bool datafs_read_policy(struct kos_tpm_ecc_point *key, struct kos_signed_policy *policy, struct kos_error *why) {
        return kos_key_provider_tpm_read_policy(key, policy, why) >= 0;
}

/* Why a header-being-written marker read as r keeps a DataFS locked. */
const char *datafs_writing_marker_why(int r) {
        return r == 1 ? "the TPM says a power cut fell while its LUKS2 header was first written over its plain ext4 "
                        "(header-being-written marker, TPM NV 0x01004b46)"
               : r == -EPERM ? "an index at the header-being-written marker's handle (TPM NV 0x01004b46) is not the "
                               "one KOS defines"
                             : "the TPM's header-being-written marker cannot be read";
}

/* The verified chain, and nothing else, may format: PCR 15 at the marker,
 * and PCR 7 as the firmware left it (the values the secret is sealed to). */
int datafs_read_seal_values(struct kos_tpm *t, uint8_t values[24][KOS_SHA256_LEN], struct kos_error *ret_error) {
        uint8_t marker[KOS_SHA256_LEN];
        int r;

        if ((r = kos_tpm_pcr_read(t, 7, values[7])) < 0 || (r = kos_tpm_pcr_read(t, KOS_TPM_SEAL_PCR, values[KOS_TPM_SEAL_PCR])) < 0 ||
            (r = kos_tpm_seal_pcr_expected(marker)) < 0)
                return kos_error_set(ret_error, r, "cannot read PCR 7 and %d: %s", KOS_TPM_SEAL_PCR, strerror(-r));
        if (!kos_digest_equal(marker, values[KOS_TPM_SEAL_PCR]))
                return kos_error_set(ret_error, -EPERM, "PCR %d does not hold the verified-boot marker",
                                     KOS_TPM_SEAL_PCR);
        return 0;
}

/* LUKS2, one key slot (PBKDF2, DATAFS_PBKDF2_ITERATIONS) for the sealed
 * secret, the token; returns the key slot. */
int datafs_write_luks2(struct crypt_device *cd, const uint8_t *volume_key, const char *pass, uint32_t sector_size,
                       const struct datafs_sealed *k, uint64_t generation, struct kos_error *ret_error) {
        struct crypt_pbkdf_type pbkdf = {.type = CRYPT_KDF_PBKDF2, .hash = "sha256",
                                         .iterations = DATAFS_PBKDF2_ITERATIONS, .flags = CRYPT_PBKDF_NO_BENCHMARK};
        struct crypt_params_luks2 params = {.pbkdf = &pbkdf, .sector_size = sector_size, .label = KOS_LABEL_DATA};
        char json[DATAFS_TOKEN_MAX];
        int r, slot;

        if ((r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, (const char *)volume_key,
                              DATAFS_VOLUME_KEY_LEN, &params)) < 0)
                return kos_error_set(ret_error, r, "LUKS2 format: %s", strerror(-r));
        if ((slot = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, (const char *)volume_key,
                                                    DATAFS_VOLUME_KEY_LEN, pass, strlen(pass))) < 0)
                return kos_error_set(ret_error, slot, "LUKS2 key slot: %s", strerror(-slot));
        if ((r = datafs_token_format(k, slot, generation, json, sizeof json)) < 0 ||
            (r = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, json)) < 0)
                return kos_error_set(ret_error, r, "LUKS2 token: %s", strerror(-r));
        return slot;
}

/* The recovery key slot, when the initrd has the vendor's recovery
 * certificate (lib/system/datafs-recovery.h). Without it the DataFS opens
 * only with this TPM, which the console says. */
void datafs_add_recovery_slot(struct crypt_device *cd, const uint8_t *volume_key, int keyslot) {
        char pass[KOS_DATAFS_RECOVERY_PASS_MAX];
        struct kos_error why = KOS_ERROR_NULL;
        _cleanup_free_ char *json = NULL;
        int r = kos_datafs_recovery_make(KOS_DATAFS_RECOVERY_CERT, keyslot, pass, &json, &why);

        if (r == -ENOENT) {
                early_log("DataFS: no recovery certificate in the initrd (" KOS_DATAFS_RECOVERY_CERT "): no recovery "
                          "key slot; only this TPM opens it");
                return;
        }
        if (r >= 0 && (r = crypt_keyslot_add_by_volume_key(cd, keyslot, (const char *)volume_key,
                                                           DATAFS_VOLUME_KEY_LEN, pass, strlen(pass))) >= 0)
                r = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, json);
        explicit_bzero(pass, sizeof pass);
        if (r < 0) {
                (void)crypt_keyslot_destroy(cd, keyslot);
                early_log("DataFS: WARNING: no recovery key slot: %s", r == -EIO ? why.msg : strerror(-r));
                return;
        }
        early_log("DataFS: recovery key slot %d, its passphrase encrypted to the vendor's recovery certificate "
                  "(token " KOS_DATAFS_RECOVERY_TOKEN ")", keyslot);
}

/* A new secret is sealed to the vendor's signed policies when the initrd
 * and the release have them and they open it now; else to PCR values
 * (migrated at the first boot whose release's signed policy opens it). */
int datafs_seal_new(struct kos_tpm *t, const uint8_t secret[static DATAFS_SECRET_LEN],
                    const uint8_t values[24][KOS_SHA256_LEN], struct datafs_sealed *k, struct kos_error *ret_error) {
        struct kos_tpm_ecc_point policy_key;
        struct kos_signed_policy policy;
        struct kos_error policy_why = KOS_ERROR_NULL;

        if (!datafs_read_policy(&policy_key, &policy, &policy_why))
                early_log("DataFS: no signed policy (%s): its key is sealed to PCR values", policy_why.msg);
        else if (datafs_seal_key(t, secret, values, &policy_key, &policy, k, &policy_why) >= 0)
                return 0;
        else
                early_log("DataFS: the release's signed policy does not open a key sealed to it (%s): its key is sealed "
                          "to PCR values", policy_why.msg);
        return datafs_seal_key(t, secret, values, NULL, NULL, k, ret_error);
}
