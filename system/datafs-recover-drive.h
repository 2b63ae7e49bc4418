/* SPDX-License-Identifier: MIT */
/* The recovery drive (docs/system-kernel.md, "Recovery"): for a DataFS the
 * TPM no longer opens (a TPM replaced or cleared), a drive labelled
 * KOS-RECOVERY holding the file kos-datafs-recovery: the recovery key
 * slot's passphrase (64 hex digits, `kos datafs recover` prints it). The
 * drive is attacker input: it is mounted read-only (nosuid, nodev, noexec;
 * ext4 without its journal replayed), one file of at most 128 bytes is read
 * and checked, and only a passphrase that opens the recovery key slot does
 * anything. Opening by the passphrase writes nothing; the caller
 * (system/datafs.c) re-enrolls the volume to this TPM. */
#pragma once

#include <libcryptsetup.h>
#include <stddef.h>
#include <stdint.h>

#include "datafs-recovery.h"
#include "kos-error.h"

#define DATAFS_RECOVERY_DRIVE_LABEL "KOS-RECOVERY"
#define DATAFS_RECOVERY_DRIVE_FILE "kos-datafs-recovery"
#define DATAFS_RECOVERY_DRIVE_FILE_MAX 128
#define DATAFS_RECOVERY_DRIVE_MOUNT "/kos-recovery-drive"

/* The passphrase in the file's bytes (untrusted): exactly 64 lowercase or
 * uppercase hex digits, then at most one "\n"; returned in lowercase, as
 * kos_datafs_recovery_make() made it. 0, or -EBADMSG with the reason. */
int datafs_recovery_pass_parse(const char *untrusted, size_t len, char ret[static KOS_DATAFS_RECOVERY_PASS_MAX],
                               struct kos_error *ret_error);

/* The file DATAFS_RECOVERY_DRIVE_FILE in dirfd: a regular file (not a
 * link) of at most DATAFS_RECOVERY_DRIVE_FILE_MAX bytes, parsed as above. */
int datafs_recovery_pass_read(int dirfd, char ret[static KOS_DATAFS_RECOVERY_PASS_MAX], struct kos_error *ret_error);

/* The recovery drive's passphrase: finds the one device labelled
 * KOS-RECOVERY (waiting at most timeout_ms), mounts it read-only, reads the
 * file, unmounts. -ENOENT: no drive; -ENOTUNIQ: more than one (both
 * ignored); another negative errno with the reason. */
int datafs_recovery_drive_read(unsigned timeout_ms, char ret_device[static 64],
                               char ret[static KOS_DATAFS_RECOVERY_PASS_MAX], struct kos_error *ret_error);

/* The key slot the header's kos-recovery token names: >= 0, or -ENOENT. */
int datafs_recovery_keyslot(struct crypt_device *cd);

/* The volume key by pass on the recovery key slot (and no other): its
 * length, -EPERM when pass does not open it (nothing written), -ENOENT when
 * the header has no recovery key slot. */
int datafs_recovery_volume_key(struct crypt_device *cd, const char *pass, uint8_t *ret_key, size_t size,
                               int *ret_keyslot);
