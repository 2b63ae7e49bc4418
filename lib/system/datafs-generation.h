/* SPDX-License-Identifier: MIT */
/* The DataFS generation (docs/tpm.md, "The DataFS key"): a TPM NV counter
 * whose value is mixed into the DataFS key slot's passphrase, so that a
 * factory reset, which increments it, makes the TPM forget the old DataFS
 * for good: the old sealed secret still unseals in the verified chain, but
 * with the new generation it no longer gives the old passphrase, and a
 * TPM_NT_COUNTER never goes back (one defined anew starts at least at the
 * highest count this TPM ever had, TPM 2.0 Part 1, 37.2.2).
 *
 * Read and incremented with the empty password (AUTHREAD | AUTHWRITE): the
 * running system may raise it (a denial of service on its own data, which
 * root has anyway by erasing the disk) but never lower it. */
#pragma once

#include <stdint.h>

#include "tpm.h"

/* In the owner range beside the floor counter (0x01004B4F): "KD". */
#define KOS_DATAFS_GENERATION_INDEX 0x01004B44u
/* TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA | TPM_NT_COUNTER. */
#define KOS_DATAFS_GENERATION_ATTRIBUTES 0x02040014u

/* The generation: 0, -ENOENT when the counter is not there (or never
 * incremented), -EPERM when the index is not what KOS defines (another
 * type, attributes or size: refused, not used), another negative errno. */
_kos_must_check_ int kos_datafs_generation_read(struct kos_tpm *t, uint64_t *ret);
/* The generation, defining and incrementing the counter first when it is
 * not there (first boot). */
_kos_must_check_ int kos_datafs_generation_provision(struct kos_tpm *t, uint64_t *ret);
/* Increments it (factory reset): the new generation. */
_kos_must_check_ int kos_datafs_generation_raise(struct kos_tpm *t, uint64_t *ret);

/* The conversion-pending marker (docs/system-kernel.md, "In-place
 * encryption of a plain DataFS"): an ordinary index, defined and never
 * written, whose presence says "an encryption in place of a plain DataFS
 * was begun, and its LUKS2 header has not been written yet". It is defined
 * before the generation counter and removed just before the header's first
 * byte is written, so a power cut in between leaves a plain ext4, the
 * counter and the marker: the next boot begins that encryption again rather
 * than taking its own plain ext4 for a planted one. Only the TPM holds it:
 * a disk alone cannot say "pending". */
#define KOS_DATAFS_PENDING_INDEX 0x01004B45u /* "KE" */
/* TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA | TPM_NT_ORDINARY. */
#define KOS_DATAFS_PENDING_ATTRIBUTES 0x02040004u
#define KOS_DATAFS_PENDING_SIZE 1

/* The header-being-written marker: an index like the conversion-pending
 * marker, at its own handle, defined just before the pending marker is
 * removed and the LUKS2 header's first byte written, and removed once the
 * header written loads. A power cut in between can tear the header so that
 * libblkid finds neither the ext4 (its superblock at byte 1024 lies in the
 * LUKS2 binary header's padding) nor LUKS2: with this marker there, such a
 * partition is locked, never formatted as an empty one, and a plain ext4
 * is never begun again. A LUKS2 header that opens removes it. */
#define KOS_DATAFS_WRITING_INDEX 0x01004B46u

/* The markers (KOS_DATAFS_PENDING_INDEX, KOS_DATAFS_WRITING_INDEX) read: 1
 * when it is there, 0 when not, -EPERM when an index at its handle is not
 * what KOS defines (another type, attributes, size or a policy: not ours,
 * never taken for the marker), another negative errno. */
_kos_must_check_ int kos_datafs_marker_read(struct kos_tpm *t, uint32_t index);
/* Defines it (0 too when it is already there), -EPERM when an index at its
 * handle is not ours (left alone). */
_kos_must_check_ int kos_datafs_marker_define(struct kos_tpm *t, uint32_t index);
/* Removes it (0 too when it is not there), -EPERM when an index at its
 * handle is not ours (left alone). */
_kos_must_check_ int kos_datafs_marker_remove(struct kos_tpm *t, uint32_t index);

/* The conversion-pending marker's. */
_kos_must_check_ int kos_datafs_pending_read(struct kos_tpm *t);
_kos_must_check_ int kos_datafs_pending_define(struct kos_tpm *t);
_kos_must_check_ int kos_datafs_pending_remove(struct kos_tpm *t);
