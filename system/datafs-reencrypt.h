/* SPDX-License-Identifier: MIT */
/* LUKS2 encryption in place of a plain DataFS with a data shift, the
 * libcryptsetup side (docs/system-kernel.md, "In-place encryption of a plain
 * DataFS"; system/datafs-encrypt.h does the rest). What `cryptsetup
 * reencrypt --encrypt --reduce-device-size` does, as calls:
 *
 *   begin:  the LUKS2 header is made in a file (header_path), its data
 *           offset shift / 2; the caller's format callback formats it and
 *           adds the key slot; libcryptsetup then initialises the
 *           encryption (CRYPT_REENCRYPT_ENCRYPT, backward, resilience
 *           "datashift", data shift shift / 2, CRYPT_REENCRYPT_MOVE_FIRST_
 *           SEGMENT: the first shift / 2 bytes of the device are copied into
 *           its free tail), and the header is put at the head of the device
 *           (crypt_header_restore). Before that last write the device is the
 *           plain file system it was; after it, LUKS2 with an encryption in
 *           progress. The device's last `shift` bytes must be free (the file
 *           system shrunk).
 *   run:    loads the encryption in progress (CRYPT_REENCRYPT_RESUME_ONLY;
 *           libcryptsetup first repairs a hotzone a power cut interrupted,
 *           from the "datashift" resilience; a cut after the last hotzone,
 *           before libcryptsetup's last header update, is finished here)
 *           and runs it to the end, offline
 *           (no device-mapper: the data is read, encrypted and written by
 *           libcryptsetup itself), calling progress after every hotzone.
 * The same run resumes it on any later boot. */
#pragma once

#include <libcryptsetup.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"

/* Formats cd (LUKS2, on the header file with the data device) and adds the
 * key slot for pass: the key slot, or a negative errno with ret_error filled. */
typedef int (*kos_datafs_reencrypt_format_fn)(struct crypt_device *cd, void *userdata, struct kos_error *ret_error);
/* Called once, just before the first byte of the header is written at the
 * head of the device (after the long part of begin: format, initialisation,
 * the first segment's copy): a negative errno, with ret_error filled, stops
 * begin there, the head of the device untouched. */
typedef int (*kos_datafs_reencrypt_head_fn)(void *userdata, struct kos_error *ret_error);
/* After each hotzone: bytes done of total. */
typedef void (*kos_datafs_reencrypt_progress_fn)(uint64_t done, uint64_t total, void *userdata);

/* 0, or a negative errno with ret_error filled. header_path must not exist
 * (created O_EXCL, removed before returning). ret_head_written: false when
 * the head of the device was not touched (it is the plain file system it
 * was, whatever the result). before_head may be NULL. */
int kos_datafs_reencrypt_begin(const char *device, const char *header_path, uint64_t shift,
                               kos_datafs_reencrypt_format_fn format, kos_datafs_reencrypt_head_fn before_head,
                               void *userdata, const char *pass,
                               bool *ret_head_written, struct kos_error *ret_error);
/* cd: the device's LUKS2 header, loaded; keyslot opened by pass; shift the
 * one kos_datafs_reencrypt_begin() was given.
 * When a cut fell after the last hotzone, before libcryptsetup's last
 * header update, this writes that update itself, one header copy at a time,
 * once the encryption's metadata verifies with the volume key, and wipes
 * the plain-text copy of the moved segment only where the shift put it.
 * 0, 1 when that is what it did, or a negative errno with ret_error filled. */
int kos_datafs_reencrypt_run(struct crypt_device *cd, int keyslot, const char *pass, uint64_t shift,
                             kos_datafs_reencrypt_progress_fn progress, void *userdata, struct kos_error *ret_error);
