/* SPDX-License-Identifier: MIT */
/* In-place encryption of a plain ext4 DataFS (issue 22 item 6;
 * docs/system-kernel.md, "In-place encryption of a plain DataFS").
 *
 * A device updated from a release with kos.datafs=plain to one with
 * kos.datafs=luks2 finds its old ext4. When its TPM has no DataFS generation
 * counter yet (the DataFS was never encrypted on this device) and the Boot
 * Kernel handed on the marker, the System Kernel's init, before the leave
 * event:
 *   1. checks the ext4 (e2fsck -f -y) and shrinks it by DATAFS_ENCRYPT_SHIFT
 *      (resize2fs), both from the initrd;
 *   2. seals a new secret and writes the LUKS2 header (key slot, token,
 *      recovery slot) to a file in /run, and starts LUKS2 encryption with a
 *      data shift there (crypt_reencrypt_init_by_passphrase,
 *      CRYPT_REENCRYPT_ENCRYPT, backward, resilience "datashift",
 *      CRYPT_REENCRYPT_MOVE_FIRST_SEGMENT): libcryptsetup copies the first
 *      DATAFS_ENCRYPT_SHIFT / 2 bytes into the freed tail;
 *   3. puts the header at the head of the partition (crypt_header_restore):
 *      from here the partition is LUKS2 with an encryption in progress;
 *   4. encrypts it offline, one hotzone at a time, printing its progress.
 * A power cut in 4 leaves a LUKS2 header whose reencryption segment says
 * where it was: the next boot opens the token as always and resumes it
 * (datafs_encrypt_resume()) before activating. */
#pragma once

#include <libcryptsetup.h>
#include <stdbool.h>
#include <stdint.h>

#include "datafs-luks2.h"
#include "kos-error.h"
#include "tpm.h"

/* What the ext4 gives up: half for the LUKS2 header (the fresh format's
 * 16 MiB), half for the data shift, as `cryptsetup reencrypt --encrypt
 * --reduce-device-size 32M` does. */
#define DATAFS_ENCRYPT_SHIFT (32ull << 20)
#define DATAFS_ENCRYPT_HEADER_TMP "/run/kos-datafs-header"

/* kos.datafs=luks2 and an ext4 found on d->device: encrypts it in place
 * when this is a device whose DataFS was never encrypted (its TPM has no
 * DataFS generation counter) in the verified chain (marker), and opens it;
 * otherwise locks it as a planted plain file system. Never fails the boot. */
void datafs_encrypt_plain(struct datafs *d, bool marker);

/* A LUKS2 DataFS loaded in cd whose encryption in place was cut off:
 * finishes it with the passphrase of keyslot (which the caller then
 * activates). 0, or a negative errno with ret_error filled. */
int datafs_encrypt_resume(struct crypt_device *cd, const char *device, int keyslot, const char *pass,
                          struct kos_error *ret_error);
