/* SPDX-License-Identifier: MIT */
#include "mark-good.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bootstate.h"
#include "rollback.h"
#include "select.h"

/* Takes every manifest below floor out of active, atomically. What does not
 * authenticate stays: selection reports it as it is, and it boots nothing. */
static int deactivate_below(const struct kos_imagefs *img, const struct kos_keyring *ring, uint32_t floor,
                            struct kos_mark_good_result *result) {
        struct kos_active_list list, kept = {0};
        int r = kos_active_read(img, &list);

        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        kept.n_ignored = list.n_ignored;
        for (size_t i = 0; i < list.n; i++) {
                _cleanup_manifest_ struct kos_manifest *m = NULL;
                struct kos_candidate c = {0};

                if (list.entries[i].name_valid && kos_load_manifest(img, ring, list.entries[i].name, &c, &m) &&
                    m->security_version < floor)
                        snprintf(result->deactivated[result->n_deactivated++], sizeof result->deactivated[0], "%s",
                                 list.entries[i].name);
                else
                        kept.entries[kept.n++] = list.entries[i];
        }
        return kept.n == list.n ? 0 : kos_active_write(img, &kept);
}

int kos_mark_good(const struct kos_imagefs *img, const struct kos_keyring *ring,
                  const uint8_t id[static KOS_SHA256_LEN], struct kos_mark_good_result *result) {
        _cleanup_manifest_ struct kos_manifest *m = NULL;
        struct kos_rollback_floor floor;
        struct kos_candidate c = {0};
        int r;

        memset(result, 0, sizeof *result);
        if (!kos_load_manifest_by_id(img, ring, id, &c, &m))
                return kos_error_set(&result->error, c.reason == KOS_REASON_IO_ERROR ? -EIO : -EBADMSG, "%s: %s",
                                     kos_reason_to_string(c.reason), c.detail);
        snprintf(result->name, sizeof result->name, "%s", m->name);
        result->security_version = m->security_version;
        if ((r = kos_rollback_floor_read(img, ring, &floor)) == -ENOTRECOVERABLE)
                return kos_error_set(&result->error, -EBADMSG, "%s", floor.tpm);
        if (r < 0)
                return r;
        result->floor_before = floor.value;
        if (!kos_check_rollback(m, floor.value, &c))
                return kos_error_set(&result->error, -EBADMSG, "%s: %s", kos_reason_to_string(c.reason), c.detail);
        if ((r = kos_boot_state_mark_good(img, id)) < 0)
                return r;
        struct kos_error why = KOS_ERROR_NULL;
        r = kos_rollback_floor_raise(img, m->security_version, &why);
        if (r == -ENOTRECOVERABLE) /* the TPM refused: why says what it did */
                return kos_error_set(&result->error, -EBADMSG, "%s", why.msg);
        if (r == -ERANGE)
                /* The store holds more than the floor read a moment ago: a
                 * concurrent raise. The floor stands; so does the good state. */
                return kos_error_set(&result->error, -EBADMSG,
                                     "rollback: security_version %lu is below this device's floor, raised meanwhile",
                                     (unsigned long)m->security_version);
        if (r < 0)
                return r;
        result->floor_raised = m->security_version > floor.value;
        return deactivate_below(img, ring, m->security_version, result);
}
