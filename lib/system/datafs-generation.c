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

static const struct kos_tpm_nv_public pending_public = {
        .index = KOS_DATAFS_PENDING_INDEX,
        .name_alg = 0x000b, /* SHA-256 */
        .attributes = KOS_DATAFS_PENDING_ATTRIBUTES,
        .data_size = KOS_DATAFS_PENDING_SIZE,
};

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

int kos_datafs_pending_read(struct kos_tpm *t) {
        struct kos_tpm_nv_public have;
        int r = kos_tpm_nv_read_public(t, KOS_DATAFS_PENDING_INDEX, &have);

        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        /* TPMA_NV_WRITTEN aside (never written by KOS, but a write by root
         * changes nothing the marker says). */
        if (!kos_tpm_nv_public_is(&have, &pending_public))
                return -EPERM;
        return 1;
}

int kos_datafs_pending_define(struct kos_tpm *t) {
        int r = kos_datafs_pending_read(t);

        return r != 0 ? (r < 0 ? r : 0) : kos_tpm_nv_define_space(t, &pending_public);
}

int kos_datafs_pending_remove(struct kos_tpm *t) {
        int r = kos_datafs_pending_read(t);

        return r <= 0 ? r : kos_tpm_nv_undefine_space(t, KOS_DATAFS_PENDING_INDEX);
}
