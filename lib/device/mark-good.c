/* SPDX-License-Identifier: MIT */
#include "mark-good.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bootstate.h"
#include "rollback.h"
#include "select.h"

/* Takes every manifest below floor out of active, atomically; kept is
 * active as it is now. What does not authenticate stays: selection reports
 * it as it is, and it boots nothing. */
static int deactivate_below(const struct kos_imagefs *img, const struct kos_keyring *ring, uint32_t floor,
                            struct kos_mark_good_result *result, struct kos_active_list *kept) {
        struct kos_active_list list;
        int r = kos_active_read(img, &list);

        *kept = (struct kos_active_list){0};
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        kept->n_ignored = list.n_ignored;
        for (size_t i = 0; i < list.n; i++) {
                _cleanup_manifest_ struct kos_manifest *m = NULL;
                struct kos_candidate c = {0};

                if (list.entries[i].name_valid && kos_load_manifest(img, ring, list.entries[i].name, &c, &m) &&
                    m->security_version < floor)
                        snprintf(result->deactivated[result->n_deactivated++], sizeof result->deactivated[0], "%s",
                                 list.entries[i].name);
                else
                        kept->entries[kept->n++] = list.entries[i];
        }
        return kept->n == list.n ? 0 : kos_active_write(img, kept);
}

static bool active_names(const struct kos_active_list *list, const char *name) {
        for (size_t i = 0; i < list->n; i++)
                if (list->entries[i].name_valid && strcmp(list->entries[i].name, name) == 0)
                        return true;
        return false;
}

/* Uninstalls every manifest that authenticates, is below floor and that
 * active does not name (step 4 took it out, or an earlier boot did): it can
 * never boot here again, and kept it would grow the ImageFS by one manifest
 * per release for the device's life. A file that does not authenticate is
 * left alone (selection and gc report it); the next bundle install's gc
 * removes the components only these manifests referenced. Best effort: what
 * a crash leaves is removed by the next call, and nothing here can stop the
 * boot from being marked good. */
static void uninstall_below(const struct kos_imagefs *img, const struct kos_keyring *ring, uint32_t floor,
                            const struct kos_active_list *active, struct kos_mark_good_result *result) {
        int fd = openat(img->manifests_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return;
        }
        for (struct dirent *e; (e = readdir(d));) {
                char name[KOS_NAME_MAX + 1], json[KOS_NAME_MAX + 8], sig[KOS_NAME_MAX + 12];
                size_t len = strlen(e->d_name);
                if (len <= 5 || len - 5 > KOS_NAME_MAX || strcmp(e->d_name + len - 5, ".json") != 0)
                        continue;
                snprintf(name, sizeof name, "%.*s", (int)(len - 5), e->d_name);
                if (!kos_name_is_valid(name) || active_names(active, name))
                        continue;
                _cleanup_manifest_ struct kos_manifest *m = NULL;
                struct kos_candidate c = {0};
                if (!kos_load_manifest(img, ring, name, &c, &m) || m->security_version >= floor)
                        continue;
                kos_manifest_file_names(name, json, sig);
                if (unlinkat(img->manifests_fd, json, 0) < 0)
                        continue;
                (void)unlinkat(img->manifests_fd, sig, 0);
                if (result->n_uninstalled < KOS_ACTIVE_MAX)
                        snprintf(result->uninstalled[result->n_uninstalled++], sizeof result->uninstalled[0], "%s", name);
        }
        closedir(d);
        if (result->n_uninstalled > 0)
                (void)fsync(img->manifests_fd);
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
        struct kos_active_list active;
        if ((r = deactivate_below(img, ring, m->security_version, result, &active)) < 0)
                return r;
        uninstall_below(img, ring, m->security_version, &active, result);
        return 0;
}
