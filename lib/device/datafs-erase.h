/* SPDX-License-Identifier: MIT */
/* Erasing the DataFS's LUKS2 header and key slots (factory reset,
 * docs/system-kernel.md "The DataFS"): what `cryptsetup erase` destroys and
 * the headers with it, so that the partition holds no signature libblkid
 * finds and the next boot formats it anew. The data area is left as it is:
 * without a key slot its bytes are AES-XTS under a key nothing holds. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "util.h"

/* LUKS2 header sizes (binary header plus JSON area) the format allows. */
#define KOS_LUKS2_HDR_MIN 16384u
#define KOS_LUKS2_HDR_MAX 4194304u
/* No LUKS2 of KOS has a header and key slot area larger than this. */
#define KOS_LUKS2_ERASE_MAX (256u << 20)

/* Reads the LUKS2 header of fd (a block device or an image file of
 * device_size bytes, opened read-write), checks it is LUKS2 version 2 whose
 * label is label (NULL: any), and writes zeros from byte 0 up to its first
 * data segment (at least both headers and the key slot area), then fsyncs.
 * 0 and *ret_erased bytes, -EMEDIUMTYPE when it is not such a LUKS2, or
 * another negative errno; ret_error says why. */
_kos_must_check_ int kos_datafs_erase(int fd, uint64_t device_size, const char *label, uint64_t *ret_erased,
                                      struct kos_error *ret_error);
/* The primary LUKS2 header's JSON area (untrusted: NUL-terminated, its
 * checksum not checked), after the checks above: 0, or as above. */
_kos_must_check_ int kos_luks2_read_json(int fd, const char *label, char **ret_json, uint64_t *ret_hdr_size,
                                         struct kos_error *ret_error);
/* The same checks, nothing written: the bytes an erase would zero. */
_kos_must_check_ int kos_datafs_erase_extent(int fd, uint64_t device_size, const char *label, uint64_t *ret_length,
                                             struct kos_error *ret_error);

/* A factory reset of the DataFS on the partition device (a /dev/ path of
 * a block device), with the TPM of kos_tpm_select():
 *   1. the TPM forgets: the DataFS generation is raised
 *      (lib/system/datafs-generation.h), so the sealed secret, which still
 *      unseals in the verified chain, no longer gives the old passphrase;
 *   2. the disk forgets: kos_datafs_erase() with the label KOS-DATA.
 * Both are tried; ret says what each did. 0 when both did, else the first
 * error (-ENODEV: no block device; messages in ret). */
struct kos_datafs_reset {
        int tpm_result, erase_result;
        uint64_t generation, erased_bytes;
        char tpm_error[300], erase_error[300];
        /* Set when the header-being-written marker (lib/system/datafs-generation.h),
         * which the reset removes, could not be removed: the next boot
         * locks an empty-looking DataFS instead of formatting it. */
        char marker_error[200];
};
_kos_must_check_ int kos_datafs_factory_reset(const char *device, struct kos_datafs_reset *ret);
