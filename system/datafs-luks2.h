/* SPDX-License-Identifier: MIT */
/* What the DataFS's boot (datafs.h) and its encryption in place
 * (datafs-encrypt.h) share: the DataFS's state at boot, locking it with a
 * reason, the values a new secret is sealed to and its sealing, and the
 * LUKS2 header KOS writes (the sealed secret's key slot and token, the
 * recovery key slot). Below both, so neither calls the other back. */
#pragma once

#include <libcryptsetup.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datafs-key.h"
#include "kos-error.h"
#include "tpm-policy.h"
#include "tpm.h"

#define DATAFS_MAPPER_NAME "kos-data"
#define DATAFS_VOLUME_KEY_LEN 64 /* aes-xts-plain64 with AES-256: 512 bits */
#define DATAFS_REASON_MAX 256

struct datafs {
        enum datafs_mode mode;
        const char *state;              /* missing, formatted, opened, locked, ... (boot.json data.state) */
        char device[64];                /* the partition */
        char mount_device[64];          /* what to mount: the partition, or /dev/mapper/kos-data */
        char reason[DATAFS_REASON_MAX]; /* why it is locked (or empty) */
        bool tpm_used;                  /* a secret was sealed or unsealed: the leave event must be extended */
        bool needs_mkfs;                /* formatted now: make ext4 on mount_device */
        bool header_zeroed;             /* a format failed half-way: its header was zeroed again */
        bool fs_shrunk;                 /* a plain ext4 was checked and shrunk for encryption in place */
        bool encrypting;                /* an encryption in place ran on it this boot */
        double format_seconds;          /* the LUKS2 format, key slot and seal */
};

/* Locks d: the state "locked", the reason, and the console's line. */
void datafs_lock(struct datafs *d, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* Why a header-being-written marker read as r (kos_datafs_marker_read(),
 * not 0) keeps a DataFS locked: for the console's lock line. */
const char *datafs_writing_marker_why(int r);
/* The vendor's policy key (initrd) and the release's signed policy
 * (ImageFS): true when both are there; otherwise why says what is missing. */
bool datafs_read_policy(struct kos_tpm_ecc_point *key, struct kos_signed_policy *policy, struct kos_error *why);
int datafs_read_seal_values(struct kos_tpm *t, uint8_t values[24][KOS_SHA256_LEN], struct kos_error *ret_error);
int datafs_seal_new(struct kos_tpm *t, const uint8_t secret[static DATAFS_SECRET_LEN],
                    const uint8_t values[24][KOS_SHA256_LEN], struct datafs_sealed *k, struct kos_error *ret_error);
int datafs_write_luks2(struct crypt_device *cd, const uint8_t *volume_key, const char *pass, uint32_t sector_size,
                       const struct datafs_sealed *k, uint64_t generation, struct kos_error *ret_error);
void datafs_add_recovery_slot(struct crypt_device *cd, const uint8_t *volume_key, int keyslot);
