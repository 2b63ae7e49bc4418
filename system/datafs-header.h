/* SPDX-License-Identifier: MIT */
/* A LUKS2 DataFS header is opened only when it is one KOS makes
 * (docs/system-kernel.md, "The DataFS"). Everything in the header is
 * written by whoever can write the disk. A key slot and digest that open
 * with the sealed passphrase cannot be forged, but they can be copied into
 * a header whose every other field the writer chose: a header
 * rebuilt around the device's own key slot with a null data cipher would
 * mount the writer's plain-text file system as /data, a key slot whose area
 * is not encrypted opens with any passphrase to a volume key the writer
 * chose, and a KDF of hours or gigabytes hangs the init. Both checks return
 * 0, or -EPERM with ret_error saying what differs. */
#pragma once

#include <libcryptsetup.h>

#include "kos-error.h"

/* PBKDF2's least iteration count libcryptsetup accepts. The passphrase is
 * 512 random bits, not something a person chose: no number of iterations
 * makes guessing it harder than it is, so the key slot costs ~1 ms instead
 * of argon2id's 2 s and 1 GiB (which the initrd could not spare either). */
#define DATAFS_PBKDF2_ITERATIONS 1000

/* Before any passphrase is tried: keyslot is an active key slot holding a
 * 512-bit key, whose area is aes-xts-plain64 with a 512-bit key, its KDF
 * PBKDF2-SHA256 of DATAFS_PBKDF2_ITERATIONS, and every digest of the header
 * is PBKDF2-SHA256 of DATAFS_PBKDF2_ITERATIONS too. */
int datafs_keyslot_is_kos(struct crypt_device *cd, int keyslot, struct kos_error *ret_error);

/* Before the volume is opened: no encryption in place is in progress, and
 * the data segment is aes-xts-plain64 with a 512-bit volume key, without
 * integrity. */
int datafs_segment_is_kos(struct crypt_device *cd, struct kos_error *ret_error);
