/* SPDX-License-Identifier: MIT */
#include "select.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "bootstate.h"
#include "revocation.h"
#include "verify.h"
#include "verity.h"

#define reject kos_candidate_reject

/* Present and a regular file (never following a symlink), of the declared
 * size: all before a single byte is hashed. */
static int open_blob(const struct kos_imagefs *img, const struct kos_blob *blob, const char *label,
                     struct kos_candidate *c) {
        char hex[KOS_SHA256_HEX_LEN + 1];
        struct stat st, st_open;

        kos_hex_encode(blob->sha256, KOS_SHA256_LEN, hex);
        if (fstatat(img->components_fd, hex, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                int r = errno;
                if (r == ENOENT)
                        reject(c, KOS_REASON_COMPONENT_MISSING, "%s: components/%s does not exist", label, hex);
                else
                        reject(c, KOS_REASON_IO_ERROR, "%s: cannot stat components/%s: %s", label, hex, strerror(r));
                return -1;
        }
        if (!S_ISREG(st.st_mode)) {
                reject(c, KOS_REASON_COMPONENT_NOT_REGULAR, "%s: components/%s is a %s, not a regular file", label,
                       hex, S_ISLNK(st.st_mode) ? "symlink" : S_ISDIR(st.st_mode) ? "directory" : "special file");
                return -1;
        }
        if ((uint64_t)st.st_size != blob->size) {
                reject(c, KOS_REASON_COMPONENT_SIZE_MISMATCH, "%s: components/%s has %llu bytes, manifest says %llu",
                       label, hex, (unsigned long long)st.st_size, (unsigned long long)blob->size);
                return -1;
        }
        int fd = kos_open_regular_at(img->components_fd, hex, O_NOFOLLOW, &st_open);
        if (fd < 0 || st_open.st_ino != st.st_ino || st_open.st_dev != st.st_dev || st_open.st_size != st.st_size) {
                /* Replaced between the checks: treat as not what was declared. */
                if (fd >= 0)
                        close(fd);
                if (fd == -ELOOP || fd == -EBADFD)
                        reject(c, KOS_REASON_COMPONENT_NOT_REGULAR, "%s: components/%s is no longer a regular file",
                               label, hex);
                else if (fd < 0)
                        reject(c, KOS_REASON_IO_ERROR, "%s: cannot open components/%s: %s", label, hex, strerror(-fd));
                else
                        reject(c, KOS_REASON_COMPONENT_SIZE_MISMATCH, "%s: components/%s changed while checked",
                               label, hex);
                return -1;
        }
        return fd;
}

static bool job_failed(const struct kos_hash_job *job, const char *label, struct kos_candidate *c) {
        char hex[KOS_SHA256_HEX_LEN + 1], actual[KOS_SHA256_HEX_LEN + 1];

        kos_hex_encode(job->expected, KOS_SHA256_LEN, hex);
        switch (job->status) {
        case KOS_HASH_MATCH:
                return false;
        case KOS_HASH_MISMATCH:
                kos_hex_encode(job->digest, KOS_SHA256_LEN, actual);
                reject(c, KOS_REASON_COMPONENT_HASH_MISMATCH, "%s: components/%s hashes to %s", label, hex, actual);
                return true;
        case KOS_HASH_TREE_MISMATCH:
                reject(c, KOS_REASON_HASH_TREE_MISMATCH, "%s: components/%s: %s", label, hex, job->detail);
                return true;
        case KOS_HASH_SIZE_CHANGED:
                if (job->hash_tree)
                        reject(c, KOS_REASON_COMPONENT_SIZE_MISMATCH, "%s: components/%s: %s", label, hex, job->detail);
                else
                        reject(c, KOS_REASON_COMPONENT_SIZE_MISMATCH, "%s: components/%s changed size while read",
                               label, hex);
                return true;
        case KOS_HASH_IO_ERROR:
                reject(c, KOS_REASON_IO_ERROR, "%s: reading components/%s: %s", label, hex, strerror(-job->error));
                return true;
        case KOS_HASH_PENDING:
        case KOS_HASH_CANCELLED:
                reject(c, KOS_REASON_IO_ERROR, "%s: components/%s was not hashed", label, hex);
                return true;
        }
        return true;
}

static int new_memfd(const char *name) {
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        return fd < 0 ? -errno : fd;
}

static int seal_memfd(int fd) {
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        return lseek(fd, 0, SEEK_SET) < 0 ? -errno : 0;
}

struct blob_check {
        size_t n;
        const struct kos_blob *blobs[KOS_MANIFEST_MAX_BLOBS];
        const char *labels[KOS_MANIFEST_MAX_BLOBS];
        struct kos_hash_job jobs[KOS_MANIFEST_MAX_BLOBS];
};

static void blob_check_release(struct blob_check *bc) {
        for (size_t i = 0; i < bc->n; i++) {
                kos_closep(&bc->jobs[i].fd);
                kos_closep(&bc->jobs[i].copy_fd);
        }
}

/* Hashes jobs [from, to) and checks each in list order. */
static bool hash_range(struct blob_check *bc, size_t from, size_t to, const struct kos_select_options *options,
                       struct kos_candidate *c) {
        int r = kos_hash_jobs(bc->jobs + from, to - from, options->progress, options->userdata);

        if (r < 0)
                return reject(c, KOS_REASON_IO_ERROR, "cannot start hashing: %s", strerror(-r));
        for (size_t i = from; i < to; i++)
                c->hashed_bytes += bc->jobs[i].read_bytes; /* what was read, a tree or the whole file */
        for (size_t i = from; i < to; i++)
                if (job_failed(&bc->jobs[i], bc->labels[i], c))
                        return false;
        return true;
}

/* A "verity" component checked by its sha256 has the signed bytes, but the
 * System Kernel maps it only with a superblock it accepts (sha256, 4096-byte
 * blocks, the data blocks hash_offset implies: verity.h). Reading that
 * one block here costs nothing next to the hash and spares a boot that
 * would stop at 'open dm-verity'. An encrypted component's superblock is
 * inside LUKS2, where only the System Kernel can read it. */
static bool verity_superblocks_accepted(const struct kos_manifest *m, const struct blob_check *bc,
                                        struct kos_candidate *c) {
        uint8_t salt[KOS_VERITY_MAX_SALT];
        char hex[KOS_SHA256_HEX_LEN + 1];
        struct kos_error error = KOS_ERROR_NULL;
        size_t salt_size;

        for (size_t i = 0; i < m->n_components; i++) {
                const struct kos_component *comp = &m->components[i];
                if (!comp->verity.enabled || comp->encryption.enabled || c->checks[i] != KOS_VERIFY_SHA256)
                        continue;
                /* Jobs 2 onwards are the components, in order (kos_manifest_blobs). */
                int r = kos_verity_read_superblock(bc->jobs[2 + i].fd, comp->verity.hash_offset, salt, &salt_size, &error);
                kos_hex_encode(comp->blob.sha256, KOS_SHA256_LEN, hex);
                if (r < 0)
                        return reject(c, r == -EBADMSG ? KOS_REASON_VERITY_SUPERBLOCK_MISMATCH : KOS_REASON_IO_ERROR,
                                      "%s: components/%s: %s", bc->labels[2 + i], hex, error.msg);
        }
        return true;
}

static bool seal_boot_files(struct blob_check *bc, struct kos_candidate *c) {
        int r;

        if ((r = seal_memfd(bc->jobs[0].copy_fd)) < 0 || (r = seal_memfd(bc->jobs[1].copy_fd)) < 0)
                return reject(c, KOS_REASON_IO_ERROR, "cannot seal memfd: %s", strerror(-r));
        return true;
}

bool kos_check_components(const struct kos_imagefs *img, const struct kos_manifest *m,
                          const struct kos_select_options *options, struct kos_candidate *c, int *ret_kernel_fd,
                          int *ret_initrd_fd) {
        struct blob_check bc = {0};
        bool ok = false;
        int r;

        /* The kernel, the initrd and the components: a Boot Kernel UKI and a
         * dbx update the release carries (listed last) are not needed to
         * boot it, and Node Manager checks their hashes when it uses them. */
        bc.n = kos_manifest_blobs(m, bc.blobs, bc.labels, KOS_MANIFEST_MAX_BLOBS);
        bc.n -= (size_t)m->boot_kernel.present + (size_t)m->dbx_update.present;
        for (size_t i = 0; i < bc.n; i++)
                bc.jobs[i] = (struct kos_hash_job){.fd = -1, .copy_fd = -1};
        for (size_t i = 0; i < bc.n; i++) {
                bc.jobs[i].fd = open_blob(img, bc.blobs[i], bc.labels[i], c);
                if (bc.jobs[i].fd < 0)
                        goto out;
                bc.jobs[i].size = bc.blobs[i]->size;
                memcpy(bc.jobs[i].expected, bc.blobs[i]->sha256, KOS_SHA256_LEN);
        }
        /* Jobs 2 onwards are the components, in order (kos_manifest_blobs). */
        for (size_t i = 0; i < m->n_components; i++) {
                const struct kos_component *comp = &m->components[i];
                c->checks[i] = options->sha256_only ? KOS_VERIFY_SHA256 : comp->verify;
                if (c->checks[i] == KOS_VERIFY_HASH_TREE) {
                        bc.jobs[2 + i].hash_tree = true;
                        bc.jobs[2 + i].hash_offset = comp->verity.hash_offset;
                        memcpy(bc.jobs[2 + i].expected, comp->verity.root_hash, KOS_SHA256_LEN);
                }
        }
        c->n_checks = m->n_components;
        if (options->capture_boot_files) {
                /* Jobs 0 and 1 are the kernel and initrd (kos_manifest_blobs). */
                if ((r = bc.jobs[0].copy_fd = new_memfd("kos-kernel")) < 0 ||
                    (r = bc.jobs[1].copy_fd = new_memfd("kos-initrd")) < 0) {
                        reject(c, KOS_REASON_IO_ERROR, "cannot create memfd: %s", strerror(-r));
                        goto out;
                }
        }
        if (options->capture_boot_files && options->boot_files_verified) {
                /* The kernel and initrd first, so the caller can start using
                 * them while the components are hashed. */
                if (!hash_range(&bc, 0, 2, options, c) || !seal_boot_files(&bc, c))
                        goto out;
                options->boot_files_verified(c, m, bc.jobs[0].copy_fd, bc.jobs[1].copy_fd,
                                             options->boot_files_userdata);
                if (!hash_range(&bc, 2, bc.n, options, c))
                        goto out;
        } else if (!hash_range(&bc, 0, bc.n, options, c) ||
                   (options->capture_boot_files && !seal_boot_files(&bc, c)))
                goto out;
        if (!verity_superblocks_accepted(m, &bc, c))
                goto out;
        if (options->capture_boot_files) {
                if (ret_kernel_fd)
                        *ret_kernel_fd = TAKE_FD(bc.jobs[0].copy_fd);
                if (ret_initrd_fd)
                        *ret_initrd_fd = TAKE_FD(bc.jobs[1].copy_fd);
        }
        ok = true;
out:
        blob_check_release(&bc);
        return ok;
}

/* Whether this boot may check "hash-tree" components by their tree alone:
 * only when the last boot of the manifest was confirmed and this one is
 * recorded as unconfirmed before it happens (options->record_unconfirmed).
 * Else c->full_check_why says why they are hashed in full. */
static bool hash_tree_allowed(const struct kos_boot_state_dir *dir, const struct kos_select_options *options,
                              struct kos_candidate *c) {
        bool unconfirmed;
        int r = kos_boot_state_is_unconfirmed_in(dir, c->id, &unconfirmed);

        if (r < 0)
                snprintf(c->full_check_why, sizeof c->full_check_why, "cannot look for boot-state/<id>.unconfirmed: %s",
                         strerror(-r));
        else if (unconfirmed)
                snprintf(c->full_check_why, sizeof c->full_check_why, "its last boot was never confirmed");
        else if (options->record_unconfirmed && (r = options->record_unconfirmed(c->id, options->consume_userdata)) < 0)
                snprintf(c->full_check_why, sizeof c->full_check_why, "cannot record this boot as unconfirmed: %s",
                         strerror(-r));
        else
                return true;
        return false;
}

/* The state selection reads of the ImageFS, read once for all candidates:
 * `active` and boot-state/ (trials, unconfirmed markers, the floor file). */
struct device_state {
        struct kos_active_list active;
        int active_error;
        struct kos_boot_state_dir boot_state;
        /* The revocation list, and the keyring it narrows (ring without the
         * keys it revokes: the one every manifest is checked against). */
        struct kos_revocation_state revocation;
        const struct kos_keyring *narrowed;
        struct kos_keyring *narrowed_copy; /* owned; NULL when narrowed is the caller's ring */
};

/* A manifest no key of the narrowed keyring signed: key-revoked instead of
 * key-untrusted when a key the list revokes did sign it, so the log names
 * the leak rather than a missing key. */
static void explain_revoked(const struct kos_imagefs *img, const struct kos_keyring *ring, const char *name,
                            const struct device_state *state, struct kos_candidate *c) {
        struct kos_candidate full = {0};
        struct kos_manifest *m = NULL;
        char signer[KOS_KEY_ID_HEX_LEN + 1];

        if (c->reason != KOS_REASON_KEY_UNTRUSTED || state->narrowed == ring || !kos_load_manifest(img, ring, name, &full, &m))
                return;
        kos_manifest_free(m);
        if (!kos_revocation_list_names(&state->revocation.list, full.signer))
                return;
        kos_hex_encode(full.signer, KOS_KEY_ID_LEN, signer);
        reject(c, KOS_REASON_KEY_REVOKED, "signed by key %s, which %s (security_version %lu) revokes", signer,
               KOS_REVOCATION_FILE, (unsigned long)state->revocation.list.security_version);
}

/* With revocation keys in the keyring, a manifest boots only beside a valid
 * list at least as new as itself: a leaked key's manifest needs a list from
 * after the leak, which names it (docs/trust-chain.md). */
static bool check_revocation_fresh(const struct kos_manifest *m, const struct kos_revocation_state *rs,
                                   struct kos_candidate *c) {
        if (!rs->required)
                return true;
        if (rs->error < 0)
                return reject(c, KOS_REASON_REVOCATION_LIST_STALE,
                              "the keyring holds revocation keys and %s, so no manifest can be trusted", rs->why);
        if (rs->list.security_version < m->security_version)
                return reject(c, KOS_REASON_REVOCATION_LIST_STALE,
                              "security_version %lu, but %s vouches only up to %lu", (unsigned long)m->security_version,
                              KOS_REVOCATION_FILE, (unsigned long)rs->list.security_version);
        return true;
}

static void examine(const struct kos_imagefs *img, const struct kos_keyring *ring, const char *name,
                    const struct kos_select_options *options, const struct device_state *device, uint32_t floor,
                    struct kos_candidate *c, struct kos_manifest **ret_manifest, int *ret_kernel_fd, int *ret_initrd_fd) {
        const struct kos_boot_state_dir *dir = &device->boot_state;
        struct kos_manifest *m = NULL;

        struct kos_boot_state state;
        int r;

        if (!kos_load_manifest(img, device->narrowed, name, c, &m)) {
                explain_revoked(img, ring, name, device, c);
                return;
        }
        /* Anti-rollback right after authenticating and parsing: a manifest
         * this device has outgrown costs neither boot-state nor hashing. */
        if (!kos_check_rollback(m, floor, c) || !check_revocation_fresh(m, &device->revocation, c))
                goto rejected;
        /* Boot counting before hashing: an exhausted manifest costs nothing. */
        if ((r = kos_boot_state_read_in(dir, c->id, &state)) < 0) {
                reject(c, KOS_REASON_IO_ERROR, "cannot read boot-state/: %s", strerror(-r));
                goto rejected;
        }
        if (state.kind == KOS_BOOT_STATE_TRIES && state.tries_left == 0) {
                reject(c, KOS_REASON_TRIES_EXHAUSTED, "every try was used and the manifest was never marked good");
                goto rejected;
        }
        struct kos_select_options component_options = *options;
        if (!options->sha256_only && kos_manifest_has_hash_tree(m))
                component_options.sha256_only = !hash_tree_allowed(dir, options, c);
        if (!kos_check_components(img, m, &component_options, c, ret_kernel_fd, ret_initrd_fd))
                goto rejected;
        if (state.kind == KOS_BOOT_STATE_TRIES) {
                c->on_trial = true;
                c->tries_left = state.tries_left;
                if (options->consume_try && (r = options->consume_try(c->id, &c->tries_left, options->consume_userdata)) < 0) {
                        reject(c, KOS_REASON_IO_ERROR, "cannot record the boot try: %s", strerror(-r));
                        if (ret_kernel_fd)
                                kos_closep(ret_kernel_fd);
                        if (ret_initrd_fd)
                                kos_closep(ret_initrd_fd);
                        goto rejected;
                }
        }
        c->verdict = KOS_VERDICT_VALID;
        c->reason = KOS_REASON_NONE;
        c->detail[0] = '\0';
        if (ret_manifest)
                *ret_manifest = m;
        else
                kos_manifest_free(m);
        return;
rejected:
        kos_manifest_free(m);
}

/* The floor options give, or the one the rollback store holds. */
static int resolve_floor(const struct kos_imagefs *img, const struct kos_keyring *ring,
                         const struct kos_select_options *options, const struct device_state *state,
                         struct kos_rollback_floor *ret) {
        if (options->floor) {
                *ret = (struct kos_rollback_floor){.value = *options->floor, .source = KOS_FLOOR_SOURCE_CALLER};
                return 0;
        }
        return kos_rollback_floor_read_in(img, ring, state->active_error < 0 ? NULL : &state->active,
                                          &state->boot_state, ret);
}

/* ret->narrowed is ring itself unless a valid list revokes keys (then a
 * narrowed copy; -ENOMEM when memory ran out). Release with device_state_done(). */
static int device_state_read(const struct kos_imagefs *img, const struct kos_keyring *ring, struct device_state *ret) {
        ret->active_error = kos_active_read(img, &ret->active);
        kos_boot_state_dir_open(img, &ret->boot_state);
        kos_revocation_state_read(img, ring, &ret->revocation);
        ret->narrowed = ring;
        ret->narrowed_copy = NULL;
        if (ret->revocation.required && ret->revocation.error == 0 && ret->revocation.list.n_revoked > 0) {
                ret->narrowed_copy = malloc(sizeof *ret->narrowed_copy);
                if (!ret->narrowed_copy)
                        return -ENOMEM;
                kos_keyring_narrow(ring, &ret->revocation.list, ret->narrowed_copy);
                ret->narrowed = ret->narrowed_copy;
        }
        return 0;
}

static void device_state_done(struct device_state *state) {
        kos_boot_state_dir_close(&state->boot_state);
        free(TAKE_PTR(state->narrowed_copy));
}

static void examine_timed(const struct kos_imagefs *img, const struct kos_keyring *ring, const char *name,
                          const struct kos_select_options *options, const struct device_state *dir, uint32_t floor,
                          struct kos_candidate *ret, struct kos_manifest **ret_manifest, int *ret_kernel_fd,
                          int *ret_initrd_fd) {
        uint64_t start = kos_now_ns();

        memset(ret, 0, sizeof *ret);
        snprintf(ret->name, sizeof ret->name, "%s", name);
        examine(img, ring, name, options, dir, floor, ret, ret_manifest, ret_kernel_fd, ret_initrd_fd);
        ret->elapsed_ns = kos_now_ns() - start;
}

void kos_examine_manifest(const struct kos_imagefs *img, const struct kos_keyring *ring, const char *name,
                          const struct kos_select_options *options, struct kos_candidate *ret,
                          struct kos_manifest **ret_manifest, int *ret_kernel_fd, int *ret_initrd_fd) {
        static const struct kos_select_options defaults = {0};
        struct kos_rollback_floor floor;
        struct device_state state;
        int r;

        options = options ? options : &defaults;
        if ((r = device_state_read(img, ring, &state)) < 0 || (r = resolve_floor(img, ring, options, &state, &floor)) < 0) {
                memset(ret, 0, sizeof *ret);
                snprintf(ret->name, sizeof ret->name, "%s", name);
                reject(ret, KOS_REASON_IO_ERROR, "cannot read the rollback floor: %s", strerror(-r));
        } else
                examine_timed(img, ring, name, options, &state, floor.value, ret, ret_manifest, ret_kernel_fd,
                              ret_initrd_fd);
        device_state_done(&state);
}

int kos_select(const struct kos_imagefs *img, const struct kos_keyring *ring, const struct kos_select_options *options,
               struct kos_selection *ret) {
        static const struct kos_select_options defaults = {0};
        struct device_state state;
        int r;

        memset(ret, 0, sizeof *ret);
        ret->selected = -1;
        ret->kernel_fd = ret->initrd_fd = -1;
        options = options ? options : &defaults;
        /* `active`, boot-state/ and the revocation list once, for the floor
         * and every candidate. */
        if ((r = device_state_read(img, ring, &state)) < 0 || (r = resolve_floor(img, ring, options, &state, &ret->floor)) < 0) {
                device_state_done(&state);
                return r;
        }
        ret->active_error = state.active_error;
        ret->n_ignored = state.active.n_ignored;

        for (size_t i = 0; i < state.active.n; i++) {
                struct kos_candidate *c = &ret->candidates[ret->n_candidates++];
                if (ret->selected >= 0) {
                        snprintf(c->name, sizeof c->name, "%s", state.active.entries[i].name);
                        c->verdict = KOS_VERDICT_SKIPPED;
                        continue;
                }
                examine_timed(img, ring, state.active.entries[i].name, options, &state, ret->floor.value, c,
                              &ret->manifest, &ret->kernel_fd, &ret->initrd_fd);
                if (c->verdict == KOS_VERDICT_VALID)
                        ret->selected = (int)i;
        }
        device_state_done(&state);
        return 0;
}

void kos_selection_done(struct kos_selection *s) {
        kos_manifest_free(s->manifest);
        s->manifest = NULL;
        kos_closep(&s->kernel_fd);
        kos_closep(&s->initrd_fd);
}
