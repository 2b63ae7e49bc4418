/* SPDX-License-Identifier: MIT */
/* The DataFS generation counter and the conversion-pending marker: see
 * datafs-generation.h. */
#include "datafs-generation.h"

#include <errno.h>

static const struct kos_tpm_nv_public generation_public = {
        .index = KOS_DATAFS_GENERATION_INDEX,
        .name_alg = 0x000b, /* SHA-256 */
        .attributes = KOS_DATAFS_GENERATION_ATTRIBUTES,
        .data_size = 8,
};

/* Both markers: ordinary indexes of one byte, never written. */
static struct kos_tpm_nv_public marker_public(uint32_t index) {
        return (struct kos_tpm_nv_public){
                .index = index,
                .name_alg = 0x000b, /* SHA-256 */
                .attributes = KOS_DATAFS_PENDING_ATTRIBUTES,
                .data_size = KOS_DATAFS_PENDING_SIZE,
        };
}

int kos_datafs_generation_read(struct kos_tpm *t, uint64_t *ret) {
        struct kos_tpm_nv_public have;
        int r = kos_tpm_nv_read_public(t, KOS_DATAFS_GENERATION_INDEX, &have);

        if (r < 0)
                return r;
        if (!(have.attributes & KOS_TPM_NV_WRITTEN))
                return -ENOENT; /* defined, never incremented: a first boot cut short */
        if (!kos_tpm_nv_public_is(&have, &generation_public))
                return -EPERM;
        return kos_tpm_nv_read_u64(t, KOS_DATAFS_GENERATION_INDEX, KOS_TPM_RS_PW, ret);
}

int kos_datafs_generation_provision(struct kos_tpm *t, uint64_t *ret) {
        struct kos_tpm_nv_public have;
        int r = kos_datafs_generation_read(t, ret);

        if (r != -ENOENT)
                return r;
        if (kos_tpm_nv_read_public(t, KOS_DATAFS_GENERATION_INDEX, &have) == -ENOENT &&
            (r = kos_tpm_nv_define_space(t, &generation_public)) < 0)
                return r;
        return kos_datafs_generation_raise(t, ret);
}

int kos_datafs_generation_raise(struct kos_tpm *t, uint64_t *ret) {
        int r = kos_tpm_nv_increment(t, KOS_DATAFS_GENERATION_INDEX, KOS_TPM_RS_PW);

        return r < 0 ? r : kos_datafs_generation_read(t, ret);
}

int kos_datafs_marker_read(struct kos_tpm *t, uint32_t index) {
        struct kos_tpm_nv_public have, want = marker_public(index);
        int r = kos_tpm_nv_read_public(t, index, &have);

        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        /* TPMA_NV_WRITTEN aside (never written by KOS, but a write by root
         * changes nothing the marker says). */
        if (!kos_tpm_nv_public_is(&have, &want))
                return -EPERM;
        return 1;
}

int kos_datafs_marker_define(struct kos_tpm *t, uint32_t index) {
        struct kos_tpm_nv_public want = marker_public(index);
        int r = kos_datafs_marker_read(t, index);

        return r != 0 ? (r < 0 ? r : 0) : kos_tpm_nv_define_space(t, &want);
}

int kos_datafs_marker_remove(struct kos_tpm *t, uint32_t index) {
        int r = kos_datafs_marker_read(t, index);

        return r <= 0 ? r : kos_tpm_nv_undefine_space(t, index);
}

int kos_datafs_pending_read(struct kos_tpm *t) {
        return kos_datafs_marker_read(t, KOS_DATAFS_PENDING_INDEX);
}

int kos_datafs_pending_define(struct kos_tpm *t) {
        return kos_datafs_marker_define(t, KOS_DATAFS_PENDING_INDEX);
}

int kos_datafs_pending_remove(struct kos_tpm *t) {
        return kos_datafs_marker_remove(t, KOS_DATAFS_PENDING_INDEX);
}
