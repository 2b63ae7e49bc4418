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
#include <stdint.h>

#include "kos-error.h"

/* The on-disk LUKS2 header (cryptsetup's docs/on-disk-format-luks2.pdf):
 * two copies, each a 4 KiB binary header and the JSON area; the offsets of
 * the binary header's fields. */
#define LUKS2_BINARY_HEADER 4096u
#define LUKS2_HEADER_MIN 16384u
#define LUKS2_HEADER_MAX (4u << 20)
#define LUKS2_HDR_SIZE_AT 8
#define LUKS2_SEQID_AT 16
#define LUKS2_CSUM_ALG_AT 0x48
#define LUKS2_HDR_OFFSET_AT 0x100
#define LUKS2_CSUM_AT 0x1c0

/* The size of each header copy KOS writes: libcryptsetup's default, a 4 KiB
 * binary header and 12 KiB of JSON, for the first format, the encryption in
 * place and every update since. */
#define DATAFS_HEADER_COPY LUKS2_HEADER_MIN

/* The header copy (0 primary, 1 secondary) of size bytes at area is whole:
 * the magic of that copy, version 2, the size and offset of a copy of size
 * bytes, and its SHA-256 checksum over all of it (the checksum field zeroed,
 * as libcryptsetup computes it). Its sequence number in *ret_seqid. 0,
 * -EBADMSG, or a negative errno. */
int datafs_header_copy_verify(uint8_t *area, uint64_t size, int copy, uint64_t *ret_seqid);

/* Before libcryptsetup reads anything of it: the header libcryptsetup would
 * load from device is made of DATAFS_HEADER_COPY-byte copies. libcryptsetup
 * takes a copy's size from the disk, up to 4 MiB, and parses its JSON
 * before any check of KOS's: a writer of the disk could make the init parse
 * megabytes of JSON (gigabytes of memory in json-c) on every boot. Neither
 * copy's binary header (the primary at 0, the secondary at 16 KiB) claims
 * another size, whatever its checksum, and one of them verifies at that
 * size: libcryptsetup reads the secondary at the primary's size, or, the
 * primary failing, scans the secondary's offsets from 16 KiB up. */
int datafs_header_copies_are_kos(const char *device, struct kos_error *ret_error);

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
