/* SPDX-License-Identifier: MIT */
/* ImageFS garbage collection: components/ files no authenticated installed
 * manifest references, and .tmp-* leftovers. See docs/format.md, "Garbage
 * collection". */
#pragma once

#include <stdbool.h>

#include "imagefs.h"
#include "keyring.h"
#include "manifest.h"
#include "util.h"

struct kos_gc_options {
        /* Only manifests whose signature verifies against this keyring count
         * as references: what cannot be authenticated protects nothing (and
         * is left where it is). Required. */
        const struct kos_keyring *ring;
        bool dry_run;
        void (*on_remove)(const char *component, void *userdata);   /* may be NULL */
        /* A manifests/<name>.json that was not counted, and why (may be NULL). */
        void (*on_ignored)(const char *name, const char *why, void *userdata);
        void *userdata;
        /* Blobs that count as referenced although no installed manifest
         * names them, and whose download (.tmp-pull-<sha256>) stays: those
         * of a pull under way (may be NULL). */
        const struct kos_blob *const *keep;
        size_t n_keep;
};

/* Removes components no authenticated installed manifest references (nor
 * options->keep names), and .tmp-* leftovers in components/ (but the
 * .tmp-pull- downloads of options->keep) and in manifests/ (best effort). A manifest that cannot be authenticated or parsed, or
 * whose security_version is below the rollback floor (it can never boot
 * here again), is ignored (on_ignored hears it); an I/O error reading one stops gc with
 * nothing removed, since then nothing is known to be unreferenced. */
_kos_must_check_ int kos_imagefs_gc(const struct kos_imagefs *img, const struct kos_gc_options *options);
