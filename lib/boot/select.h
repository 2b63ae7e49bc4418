/* SPDX-License-Identifier: MIT */
/* Selection: walk `active` in order and return the first valid manifest,
 * with a reason for every one rejected before it. Every stage (host tool,
 * Boot Kernel, System Kernel) decides with this one function. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "imagefs.h"
#include "keyring.h"
#include "load.h"
#include "manifest.h"
#include "reason.h"
#include "rollback.h"

struct kos_select_options {
        /* Called for a manifest on trial that passed every check, before it is
         * accepted: the Boot Kernel records the try here, durably. A negative
         * return rejects the manifest (io-error) and selection goes on. */
        int (*consume_try)(const uint8_t id[static KOS_SHA256_LEN], unsigned *ret_left, void *userdata);
        void *consume_userdata;
        /* Called for a manifest with "verify": "hash-tree" components whose
         * last boot was confirmed (no boot-state/<id>.unconfirmed), before
         * its components are checked: the Boot Kernel records this boot as
         * unconfirmed here, durably (kos_boot_state_set_unconfirmed()). A
         * negative return checks those components with full sha256 this
         * time, so a boot that could not be recorded is never one a corrupt
         * block can send round in a loop. NULL (a host): nothing recorded.
         * Gets consume_userdata. */
        int (*record_unconfirmed)(const uint8_t id[static KOS_SHA256_LEN], void *userdata);
        /* Check every component with full sha256, "hash-tree" ones too
         * (kos install, which checks the content address itself). */
        bool sha256_only;
        /* Read the kernel and initrd into sealed memfds while hashing them, so
         * the caller boots exactly the verified bytes (Boot Kernel). */
        bool capture_boot_files;
        /* With capture_boot_files: called as soon as the kernel and initrd are
         * verified and sealed, before the components are hashed, so the Boot
         * Kernel can load the System Kernel while they are. The candidate may
         * still be rejected afterwards. The fds stay the selection's: dup
         * them to keep them. */
        void (*boot_files_verified)(const struct kos_candidate *c, const struct kos_manifest *m, int kernel_fd,
                                    int initrd_fd, void *userdata);
        void *boot_files_userdata;
        kos_progress_fn progress;
        void *userdata;
        /* The rollback floor to enforce; NULL: read it with
         * kos_rollback_floor_read() (the ImageFS's boot-state/rollback-floor). */
        const uint32_t *floor;
};

struct kos_selection {
        size_t n_candidates;
        struct kos_candidate candidates[KOS_ACTIVE_MAX];
        int active_error;  /* negative errno if `active` could not be read, else 0 */
        size_t n_ignored;  /* entries of `active` beyond KOS_ACTIVE_MAX */
        int selected;      /* index into candidates, or -1 when nothing is valid */
        struct kos_manifest *manifest; /* the selected manifest, parsed */
        int kernel_fd;     /* sealed memfds with capture_boot_files, else -1 */
        int initrd_fd;
        struct kos_rollback_floor floor; /* the floor this selection enforced */
};

/* Returns 0 with ret->selected >= 0 or -1; a negative errno only when memory
 * or threads ran out. Release with kos_selection_done(). */
_kos_must_check_ int kos_select(const struct kos_imagefs *img, const struct kos_keyring *ring, const struct kos_select_options *options,
               struct kos_selection *ret);
void kos_selection_done(struct kos_selection *s);

/* The component checks of selection alone, for a manifest already parsed
 * (kos install uses it before copying a manifest in): true when every blob
 * is present, regular, of its size and hash; else c says why. */
_kos_must_check_ bool kos_check_components(const struct kos_imagefs *img, const struct kos_manifest *m,
                          const struct kos_select_options *options, struct kos_candidate *c, int *ret_kernel_fd,
                          int *ret_initrd_fd);

/* Examines one manifest by name with every check of selection, against the
 * floor of options (or the ImageFS's when options->floor is NULL). On VALID,
 * *ret_manifest (if not NULL) gets the parsed manifest, and with
 * capture_boot_files the memfds are returned in ret_kernel_fd/ret_initrd_fd. */
void kos_examine_manifest(const struct kos_imagefs *img, const struct kos_keyring *ring, const char *name,
                          const struct kos_select_options *options, struct kos_candidate *ret,
                          struct kos_manifest **ret_manifest, int *ret_kernel_fd, int *ret_initrd_fd);
