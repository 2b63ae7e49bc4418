/* SPDX-License-Identifier: MIT */
#include "rollback.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bootstate.h"
#include "load.h"
#include "tpm.h"

const char *kos_floor_source_to_string(enum kos_floor_source s) {
        switch (s) {
        case KOS_FLOOR_SOURCE_NONE:
                return "none";
        case KOS_FLOOR_SOURCE_STORED:
                return "stored";
        case KOS_FLOOR_SOURCE_DERIVED:
                return "derived";
        case KOS_FLOOR_SOURCE_CALLER:
                return "caller";
        case KOS_FLOOR_SOURCE_TPM:
                return "tpm";
        }
        return "unknown";
}

/* The ImageFS store: boot-state/rollback-floor. The TPM's counter is the
 * second store (read_tpm() and the end of kos_rollback_floor_raise()). */

static int open_state_dir(const struct kos_imagefs *img, bool create) {
        if (create && mkdirat(img->root_fd, KOS_BOOT_STATE_DIR, 0755) < 0 && errno != EEXIST)
                return -errno;
        int fd = openat(img->root_fd, KOS_BOOT_STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

/* Exactly "0" or a decimal number without leading zeros, at most 2^32-1,
 * with one optional final newline: one spelling per value. */
static int parse_floor(const char *s, size_t len, uint32_t *ret) {
        uint64_t v = 0;

        if (len > 0 && s[len - 1] == '\n')
                len--;
        if (len == 0 || len > 10 || (s[0] == '0' && len > 1))
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (v > UINT32_MAX)
                return -EBADMSG;
        *ret = (uint32_t)v;
        return 0;
}

static int unusable(struct kos_error *ret_error, const char *problem) {
        return kos_error_set(ret_error, -EBADMSG, "%s/%s %s", KOS_BOOT_STATE_DIR, KOS_ROLLBACK_FLOOR_FILE, problem);
}

static int store_read_in(const struct kos_boot_state_dir *dir, uint32_t *ret_value, struct kos_error *ret_error) {
        _cleanup_free_ char *untrusted = NULL;
        size_t len;

        if (dir->error == -ENOENT)
                return -ENOENT;
        if (dir->error == -ENOTDIR || dir->error == -ELOOP)
                return unusable(ret_error, "cannot be read: boot-state/ is not a directory");
        if (dir->fd < 0)
                return dir->error;
        int r = kos_read_file_at(dir->fd, KOS_ROLLBACK_FLOOR_FILE, KOS_ROLLBACK_FLOOR_FILE_MAX, &untrusted, &len);
        if (r == -ENOENT)
                return -ENOENT;
        if (r == -EBADFD || r == -ELOOP)
                return unusable(ret_error, "is not a regular file");
        if (r == -EFBIG)
                return unusable(ret_error, "is too large to hold a floor");
        if (r < 0)
                return r;
        if (parse_floor(untrusted, len, ret_value) < 0)
                return unusable(ret_error, "does not hold a decimal number from 0 to 4294967295");
        return 0;
}

int kos_rollback_store_read(const struct kos_imagefs *img, uint32_t *ret_value, struct kos_error *ret_error) {
        struct kos_boot_state_dir dir;

        kos_boot_state_dir_open(img, &dir);
        int r = store_read_in(&dir, ret_value, ret_error);
        kos_boot_state_dir_close(&dir);
        return r;
}

static int store_write(const struct kos_imagefs *img, uint32_t value) {
        char text[16];
        int n = snprintf(text, sizeof text, "%lu\n", (unsigned long)value);

        _cleanup_close_ int dirfd = open_state_dir(img, true);
        if (dirfd < 0)
                return dirfd;
        return kos_write_file_atomic_at(dirfd, KOS_ROLLBACK_FLOOR_FILE, text, (size_t)n, 0644);
}

/* The floor that fails safe when the store is unusable, from the manifests
 * of active that authenticate: the higher of (a) the lowest
 * security_version among them: the floor is at most that, since marking
 * good takes the lower ones out; (b) the highest among those marked good:
 * the floor is at least that, since marking good raised it so far. Neither
 * strands a manifest the real floor would let boot; (b) also holds when
 * active was edited by hand. False when none authenticates. */
static bool derive_from_active(const struct kos_imagefs *img, const struct kos_keyring *ring,
                               const struct kos_active_list *active, const struct kos_boot_state_dir *dir, uint32_t *ret) {
        struct kos_active_list own;
        const struct kos_active_list *list = active;
        uint32_t lowest = UINT32_MAX, highest_good = 0;
        bool found = false;

        if (!list) {
                if (kos_active_read(img, &own) < 0)
                        return false;
                list = &own;
        }
        for (size_t i = 0; i < list->n; i++) {
                _cleanup_manifest_ struct kos_manifest *m = NULL;
                struct kos_candidate c = {0};
                struct kos_boot_state st;

                if (!list->entries[i].name_valid || !kos_load_manifest(img, ring, list->entries[i].name, &c, &m))
                        continue;
                found = true;
                if (m->security_version < lowest)
                        lowest = m->security_version;
                if (kos_boot_state_read_in(dir, c.id, &st) >= 0 && st.kind == KOS_BOOT_STATE_GOOD &&
                    m->security_version > highest_good)
                        highest_good = m->security_version;
        }
        *ret = lowest > highest_good ? lowest : highest_good;
        return found;
}

static int read_file_floor(const struct kos_imagefs *img, const struct kos_keyring *ring,
                           const struct kos_active_list *active, const struct kos_boot_state_dir *dir,
                           struct kos_rollback_floor *ret) {
        struct kos_error why = KOS_ERROR_NULL;
        uint32_t value = 0;

        *ret = (struct kos_rollback_floor){0};
        int r = store_read_in(dir, &value, &why);
        if (r == -ENOMEM)
                return r;
        if (r == -ENOENT) {
                ret->source = KOS_FLOOR_SOURCE_NONE;
                return 0;
        }
        if (r == 0) {
                ret->value = value;
                ret->source = KOS_FLOOR_SOURCE_STORED;
                return 0;
        }
        if (r != -EBADMSG)
                kos_error_set(&why, r, "%s/%s cannot be read: %s", KOS_BOOT_STATE_DIR, KOS_ROLLBACK_FLOOR_FILE,
                              strerror(-r));
        ret->source = KOS_FLOOR_SOURCE_DERIVED;
        /* %.159s: the reason is cut where its buffer cut it before (the warning's text is a contract). */
        if (derive_from_active(img, ring, active, dir, &value)) {
                ret->value = value;
                snprintf(ret->warning, sizeof ret->warning,
                         "%.159s; using %lu, derived from the manifests in active, as the floor", why.msg,
                         (unsigned long)value);
        } else
                snprintf(ret->warning, sizeof ret->warning,
                         "%.159s and no manifest in active authenticates; the floor is taken as 0", why.msg);
        return 0;
}

/* The TPM's counter, when there is a TPM: raises ret to it. A TPM that is
 * there but whose counter cannot be read or is not exactly ours leaves no
 * floor to trust: -ENOTRECOVERABLE, never the ImageFS floor alone (root can
 * rewrite that; docs/tpm.md, "Refusals"). */
static int read_tpm(struct kos_rollback_floor *ret) {
        struct kos_tpm t;
        char why[320] = "";
        uint32_t value;
        int r = kos_tpm_open(&t);

        if (r == -ENODEV) {
                snprintf(ret->tpm, sizeof ret->tpm, "no TPM");
                return 0;
        }
        if (r < 0)
                snprintf(why, sizeof why, "cannot be opened: %s", strerror(-r));
        else
                r = kos_tpm_floor_read(&t, &value, why, sizeof why);
        kos_tpm_close(&t);
        if (r < 0) {
                snprintf(ret->tpm, sizeof ret->tpm, "TPM %s: %s; no rollback floor can be trusted, nothing may boot",
                         t.path, why);
                ret->value = UINT32_MAX; /* for a caller that would ignore the error */
                return -ENOTRECOVERABLE;
        }
        ret->tpm_used = true;
        ret->tpm_value = value;
        snprintf(ret->tpm, sizeof ret->tpm, "TPM %s NV 0x%08x holds %lu", t.path, KOS_TPM_FLOOR_INDEX,
                 (unsigned long)value);
        if (value >= ret->value && (value > 0 || ret->source == KOS_FLOOR_SOURCE_NONE)) {
                ret->value = value;
                ret->source = KOS_FLOOR_SOURCE_TPM;
        }
        return 0;
}

int kos_rollback_floor_read_in(const struct kos_imagefs *img, const struct kos_keyring *ring,
                               const struct kos_active_list *active, const struct kos_boot_state_dir *dir,
                               struct kos_rollback_floor *ret) {
        int r = read_file_floor(img, ring, active, dir, ret);

        return r < 0 ? r : read_tpm(ret);
}

int kos_rollback_floor_read(const struct kos_imagefs *img, const struct kos_keyring *ring,
                            struct kos_rollback_floor *ret) {
        struct kos_boot_state_dir dir;

        kos_boot_state_dir_open(img, &dir);
        int r = kos_rollback_floor_read_in(img, ring, NULL, &dir, ret);
        kos_boot_state_dir_close(&dir);
        return r;
}

int kos_rollback_tpm_prepare(char *ret_message, size_t message_size) {
        struct kos_tpm t;
        char done[320] = "", why[320] = "";
        uint32_t value = 0;
        int r = kos_tpm_open(&t);

        if (r == -ENODEV) {
                snprintf(ret_message, message_size, "no TPM: the rollback floor is the ImageFS's alone");
                return r;
        }
        if (r < 0)
                snprintf(why, sizeof why, "cannot be opened: %s", strerror(-r));
        else if ((r = kos_tpm_floor_provision(&t, done, sizeof done)) < 0)
                snprintf(why, sizeof why, "%s", done);
        else
                r = kos_tpm_floor_read(&t, &value, why, sizeof why);
        if (r < 0)
                snprintf(ret_message, message_size, "TPM %s: the floor counter NV 0x%08x cannot be used: %s", t.path,
                         KOS_TPM_FLOOR_INDEX, why);
        else
                snprintf(ret_message, message_size, "TPM %s: floor counter NV 0x%08x holds %lu%s%s", t.path,
                         KOS_TPM_FLOOR_INDEX, (unsigned long)value, done[0] ? "; " : "", done);
        kos_tpm_close(&t);
        return r;
}

/* Raises the TPM's counter too when there is a TPM. The file is raised
 * first: if the TPM then fails, marking good fails and is done again (Node
 * Manager does at every boot); the floor (the higher of the two) has not
 * gone down meanwhile. */
static int raise_tpm(uint32_t value, struct kos_error *ret_error) {
        struct kos_tpm t;
        char message[320] = "";
        int r = kos_tpm_open(&t);

        if (r == -ENODEV)
                return 0;
        if (r < 0)
                snprintf(message, sizeof message, "cannot be opened: %s", strerror(-r));
        else
                r = kos_tpm_floor_raise(&t, value, message, sizeof message);
        kos_tpm_close(&t);
        if (r < 0 && r != -ERANGE)
                return kos_error_set(ret_error, -ENOTRECOVERABLE,
                                     "TPM %s: the floor counter NV 0x%08x cannot be raised to %lu: %s", t.path,
                                     KOS_TPM_FLOOR_INDEX, (unsigned long)value, message);
        return r;
}

static int raise_file(const struct kos_imagefs *img, uint32_t value) {
        uint32_t stored = 0;
        int r = kos_rollback_store_read(img, &stored, NULL); /* an unusable file is replaced: no need to say why */

        if (r == 0 && stored > value)
                return -ERANGE; /* the floor never goes down */
        if ((r == 0 && stored == value) || (r == -ENOENT && value == 0))
                return 0;
        if (r < 0 && r != -ENOENT && r != -EBADMSG)
                return r;
        return store_write(img, value);
}

int kos_rollback_floor_raise(const struct kos_imagefs *img, uint32_t value, struct kos_error *ret_error) {
        int r = raise_file(img, value);

        kos_error_clear(ret_error);
        return r < 0 ? r : raise_tpm(value, ret_error);
}
