/* SPDX-License-Identifier: MIT */
/* The DataFS encrypted with LUKS2, its secret sealed to the verified chain:
 * see datafs.h and docs/system-kernel.md, "The DataFS". */
#include "datafs.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <libcryptsetup.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "datafs-encrypt.h"
#include "datafs-header.h"
#include "datafs-luks2.h"
#include "datafs-generation.h"
#include "datafs-recovery.h"
#include "early.h"
#include "keystore.h"
#include "layout.h"

#define DATAFS_MAPPER_PATH "/dev/mapper/" DATAFS_MAPPER_NAME

/* --- At boot -------------------------------------------------------------- */

/* libblkid's full probe (file systems, LUKS, RAID members, partition
 * tables): 1 when it finds nothing, 0 when it finds something, or <0. */
static int probe_is_empty(const char *path) {
        blkid_probe pr = blkid_new_probe_from_filename(path);

        if (!pr)
                return -errno ? -errno : -EIO;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
        blkid_probe_enable_partitions(pr, 1);
        int r = blkid_do_safeprobe(pr); /* 0 found, 1 nothing, -2 ambiguous, -1 error */
        blkid_free_probe(pr);
        return r == 1 ? 1 : r == 0 || r == -2 ? 0 : -EIO;
}

/* A secret sealed to PCR values, just proven by opening the volume: sealed
 * again to the signed policies (the new object opened with them before it
 * is written) and put in place of the old token. LUKS2 keeps two copies of
 * its header and writes them one after the other with a rising sequence
 * number, so a power cut leaves the old token or the new one; either opens.
 * A failure costs only the migration: logged, tried again next boot. */
static void migrate_token(struct crypt_device *cd, struct kos_tpm *t, int token, int keyslot, uint64_t generation,
                          const uint8_t secret[static DATAFS_SECRET_LEN], const struct kos_tpm_ecc_point *policy_key,
                          const struct kos_signed_policy *policy) {
        struct datafs_sealed k;
        char json[DATAFS_TOKEN_MAX];
        struct kos_error why = KOS_ERROR_NULL;
        int r = datafs_seal_key(t, secret, NULL, policy_key, policy, &k, &why);

        if (r >= 0 && (r = datafs_token_format(&k, keyslot, generation, json, sizeof json)) >= 0 &&
            (r = crypt_token_json_set(cd, token, json)) >= 0) {
                early_log("DataFS: key migrated from PCR values to the vendor's signed policies (token %d)", token);
                return;
        }
        early_log("DataFS: key not migrated to the signed policies: %s", why.msg[0] ? why.msg : strerror(-r));
}

/* A conversion-pending or header-being-written marker beside a LUKS2
 * volume that opened says nothing true any more (its header was written; or
 * root defined it): removed, so that a plain ext4 put here later is taken
 * for planted, and an empty partition is formatted after a factory reset. */
static void remove_stale_marker(struct datafs *d, struct kos_tpm *t, uint32_t index, const char *name) {
        int r = kos_datafs_marker_read(t, index);

        if (r == 1 && (r = kos_datafs_marker_remove(t, index)) >= 0)
                early_log("DataFS %s: its LUKS2 volume opened, and the %s marker (TPM NV 0x%08x) was still there: "
                          "removed", d->device, name, index);
        else if (r < 0 && r != -EPERM)
                early_log("DataFS %s: cannot read or remove the %s marker (TPM NV 0x%08x): %s", d->device, name,
                          index, strerror(-r));
}

static void open_luks2(struct datafs *d) {
        struct crypt_device *cd = NULL;
        struct datafs_sealed k;
        struct kos_tpm t;
        struct kos_tpm_ecc_point policy_key;
        struct kos_signed_policy policy;
        uint8_t secret[DATAFS_SECRET_LEN];
        char pass[DATAFS_PASSPHRASE_MAX];
        struct kos_error error = KOS_ERROR_NULL, policy_why = KOS_ERROR_NULL;
        const char *json;
        uint64_t made_at = 0, generation = 0;
        int keyslot = -1, token = -1, r;
        bool tpm_open = false, have_policy = datafs_read_policy(&policy_key, &policy, &policy_why);

        if (datafs_header_copies_are_kos(d->device, &error) < 0) {
                datafs_lock(d, "its LUKS2 header is not one KOS makes: %s", error.msg);
                goto out;
        }
        if ((r = crypt_init(&cd, d->device)) < 0 || (r = crypt_load(cd, CRYPT_LUKS2, NULL)) < 0) {
                datafs_lock(d, "no LUKS2 header libcryptsetup can load (%s)", strerror(-r));
                goto out;
        }
        for (int i = 0; i < 32 && token < 0; i++)
                if (crypt_token_json_get(cd, i, &json) >= 0 && datafs_token_parse(json, &k, &keyslot, &made_at) >= 0)
                        token = i;
        if (token < 0) {
                datafs_lock(d, "its LUKS2 header has no " DATAFS_TOKEN_TYPE " token of KOS");
                goto out;
        }
        if (datafs_keyslot_is_kos(cd, keyslot, &error) < 0) {
                datafs_lock(d, "its LUKS2 header is not one KOS makes: %s", error.msg);
                goto out;
        }
        if ((r = kos_tpm_open(&t)) < 0) {
                datafs_lock(d, "its key is sealed in a TPM, and %s",
                            r == -ENODEV ? "this machine has none" : strerror(-r));
                goto out;
        }
        tpm_open = true;
        r = datafs_unseal_key(&t, &k, have_policy ? &policy_key : NULL, have_policy ? &policy : NULL, secret,
                              &error);
        int g = r < 0 ? 0 : kos_datafs_generation_read(&t, &generation);
        if (r < 0) {
                datafs_lock(d, "the TPM does not unseal its key: %s%s%s (it is sealed to %s)", error.msg,
                            k.authorized && !have_policy ? ": " : "",
                            k.authorized && !have_policy ? policy_why.msg : "",
                            k.authorized ? "the vendor's signed policies" : "PCR values");
                goto out;
        }
        d->tpm_used = true;
        if (g < 0) {
                explicit_bzero(secret, sizeof secret);
                datafs_lock(d, "cannot read the DataFS generation (TPM NV 0x%08x): %s", KOS_DATAFS_GENERATION_INDEX,
                            g == -EPERM ? "the index is not the counter KOS defines" : strerror(-g));
                goto out;
        }
        r = datafs_passphrase(secret, generation, pass);
        /* An encryption in place that a power cut interrupted: finished first. */
        if (r >= 0 && crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE) {
                d->encrypting = true;
                if ((r = datafs_encrypt_resume(cd, d->device, keyslot, pass, &error)) < 0) {
                        explicit_bzero(pass, sizeof pass);
                        explicit_bzero(secret, sizeof secret);
                        datafs_lock(d, "its encryption in place cannot be resumed: %s", error.msg);
                        goto out;
                }
        }
        if (r >= 0 && datafs_segment_is_kos(cd, &error) < 0) {
                explicit_bzero(pass, sizeof pass);
                explicit_bzero(secret, sizeof secret);
                datafs_lock(d, "its LUKS2 header is not one KOS makes: %s", error.msg);
                goto out;
        }
        if (r >= 0)
                /* The header's persistent flags (allow-discards would show
                 * the free blocks to whoever images the disk) are not KOS's. */
                r = crypt_activate_by_passphrase(cd, DATAFS_MAPPER_NAME, keyslot, pass, strlen(pass),
                                                 CRYPT_ACTIVATE_IGNORE_PERSISTENT);
        explicit_bzero(pass, sizeof pass);
        if (r >= 0 && !k.authorized && have_policy)
                migrate_token(cd, &t, token, keyslot, made_at, secret, &policy_key, &policy);
        explicit_bzero(secret, sizeof secret);
        if (r < 0 && generation != made_at) {
                datafs_lock(d, "the key slot was made at DataFS generation %llu and the TPM's is %llu: a factory "
                               "reset since (its data can never be opened again)",
                            (unsigned long long)made_at, (unsigned long long)generation);
                goto out;
        }
        if (r < 0) {
                datafs_lock(d, "the unsealed key does not open key slot %d (%s)", keyslot, strerror(-r));
                goto out;
        }
        snprintf(d->mount_device, sizeof d->mount_device, DATAFS_MAPPER_PATH);
        d->state = "mounted";
        /* A first boot cut off between the LUKS2 format and mkfs. */
        d->needs_mkfs = probe_is_empty(d->mount_device) == 1;
        early_log("DataFS %s: LUKS2 opened with the key the TPM unsealed (%s; token %d, key slot %d)%s", d->device,
                  k.authorized ? "signed policy, salted session" : "PCR 7+15", token, keyslot,
                  d->needs_mkfs ? "; no file system inside yet" : "");
        remove_stale_marker(d, &t, KOS_DATAFS_PENDING_INDEX, "conversion-pending");
        remove_stale_marker(d, &t, KOS_DATAFS_WRITING_INDEX, "header-being-written");
out:
        if (tpm_open)
                kos_tpm_close(&t);
        crypt_free(cd);
}

/* Makes the secrets, seals, formats and opens; on any failure after the
 * format the header is wiped again, so the partition is as it was. */
static int format_and_open(struct datafs *d, struct kos_tpm *t, const uint8_t values[24][KOS_SHA256_LEN],
                           struct datafs_sealed *k, struct kos_error *ret_error) {
        uint8_t secret[DATAFS_SECRET_LEN], volume_key[DATAFS_VOLUME_KEY_LEN];
        char pass[DATAFS_PASSPHRASE_MAX];
        struct crypt_device *cd = NULL;
        uint64_t generation;
        int r, slot = -1;

        if (getrandom(secret, sizeof secret, 0) != sizeof secret ||
            getrandom(volume_key, sizeof volume_key, 0) != sizeof volume_key)
                return kos_error_set(ret_error, -EIO, "getrandom: %m");
        if ((r = kos_datafs_generation_provision(t, &generation)) < 0) {
                explicit_bzero(secret, sizeof secret);
                explicit_bzero(volume_key, sizeof volume_key);
                return kos_error_set(ret_error, r, "cannot read or define the DataFS generation (TPM NV 0x%08x): %s",
                                     KOS_DATAFS_GENERATION_INDEX,
                                     r == -EPERM ? "the index is not the counter KOS defines" : strerror(-r));
        }
        r = datafs_passphrase(secret, generation, pass);
        if (r >= 0)
                r = datafs_seal_new(t, secret, values, k, ret_error);
        explicit_bzero(secret, sizeof secret);
        if (r >= 0 && (r = crypt_init(&cd, d->device)) < 0)
                kos_error_set(ret_error, r, "libcryptsetup: %s", strerror(-r));
        if (r >= 0 && (r = slot = datafs_write_luks2(cd, volume_key, pass, 4096, k, generation, ret_error)) >= 0)
                datafs_add_recovery_slot(cd, volume_key, slot + 1);
        if (r >= 0 &&
            (r = crypt_activate_by_passphrase(cd, DATAFS_MAPPER_NAME, slot, pass, strlen(pass), 0)) < 0)
                kos_error_set(ret_error, r, "activate: %s", strerror(-r));
        if (r < 0 && cd && crypt_get_type(cd)) {
                d->header_zeroed = true;
                (void)crypt_wipe(cd, d->device, CRYPT_WIPE_ZERO, 0, crypt_get_data_offset(cd) * 512, 1 << 20, 0,
                                 NULL, NULL);
        }
        explicit_bzero(pass, sizeof pass);
        explicit_bzero(volume_key, sizeof volume_key);
        crypt_free(cd);
        return r < 0 ? r : slot;
}

static void format_luks2(struct datafs *d, bool marker) {
        uint8_t values[24][KOS_SHA256_LEN] = {{0}};
        char sealed_to[64];
        struct kos_error why = KOS_ERROR_NULL;
        struct datafs_sealed k;
        struct kos_tpm t;
        double start = early_uptime();
        int r;

        if (!marker) {
                datafs_lock(d, "it is empty, and the Boot Kernel handed on no verified-boot marker: only the "
                               "verified chain formats it");
                return;
        }
        if ((r = probe_is_empty(d->device)) != 1) {
                datafs_lock(d, "libblkid finds %s on it: never formatted over", r == 0 ? "a signature" : "no answer");
                return;
        }
        if ((r = kos_tpm_open(&t)) < 0) {
                datafs_lock(d, "it is empty, and %s to seal its key", r == -ENODEV ? "there is no TPM" : strerror(-r));
                return;
        }
        /* A cut while the first LUKS2 header of an encryption in place was
         * written can leave a head in which libblkid finds nothing: the
         * data is there, after it. */
        if ((r = kos_datafs_marker_read(&t, KOS_DATAFS_WRITING_INDEX)) != 0) {
                kos_tpm_close(&t);
                datafs_lock(d, "libblkid finds nothing on it, and %s%s: never formatted over",
                            datafs_writing_marker_why(r), r == 1 ? "; its data is still there" : "");
                return;
        }
        r = datafs_read_seal_values(&t, values, &why);
        if (r >= 0)
                r = format_and_open(d, &t, values, &k, &why);
        kos_tpm_close(&t);
        if (r < 0) {
                datafs_lock(d, "it is empty, and cannot be formatted: %s", why.msg);
                return;
        }
        d->tpm_used = true;
        d->needs_mkfs = true;
        d->state = "formatted";
        d->format_seconds = early_uptime() - start;
        snprintf(d->mount_device, sizeof d->mount_device, DATAFS_MAPPER_PATH);
        if (k.authorized)
                snprintf(sealed_to, sizeof sealed_to, "the vendor's signed policies");
        else
                snprintf(sealed_to, sizeof sealed_to, "PCR 7+%d", KOS_TPM_SEAL_PCR);
        early_log("DataFS %s: formatted as LUKS2 (aes-xts-plain64, 512-bit key, key slot %d: PBKDF2 %d iterations), "
                  "its key sealed to %s in a " DATAFS_TOKEN_TYPE " token (%.3f s)",
                  d->device, r, DATAFS_PBKDF2_ITERATIONS, sealed_to, d->format_seconds);
}

static void prepare_plain(struct datafs *d, const char *type) {
        if (!type[0]) {
                early_log("DataFS: %s is empty: formatting it as ext4 (first boot)", d->device);
                d->needs_mkfs = true;
                d->state = "formatted";
        } else if (strcmp(type, "ext4") != 0) {
                early_log("DataFS: %s holds %s, not ext4; continuing without /data", d->device, type);
                return;
        } else
                d->state = "mounted";
        snprintf(d->mount_device, sizeof d->mount_device, "%s", d->device);
}

void datafs_prepare(struct datafs *d, const char *spec, bool marker) {
        struct early_device dev;

        d->state = "missing";
        if (!spec || !*spec)
                spec = "LABEL=" KOS_LABEL_DATA "|PARTLABEL=" KOS_LABEL_DATA;
        /* Its disk is normally the ImageFS's, already there: a short wait. */
        int r = early_find_device(spec, 2000, &dev);
        if (r < 0) {
                early_log("DataFS: %s %s; continuing without /data",
                          r == -ENOTUNIQ ? "more than one device (listed above) matches" : "no device matches", spec);
                return;
        }
        snprintf(d->device, sizeof d->device, "%s", dev.path);
        if (d->mode == DATAFS_MODE_PLAIN)
                prepare_plain(d, dev.type);
        else if (strcmp(dev.type, "crypto_LUKS") == 0)
                open_luks2(d);
        else if (!dev.type[0])
                format_luks2(d, marker);
        else if (strcmp(dev.type, "ext4") == 0)
                datafs_encrypt_plain(d, marker);
        else
                datafs_lock(d, "it holds %s, not LUKS2, and the signed cmdline says kos.datafs=luks2: a plain file "
                               "system is never mounted there", dev.type);
}
