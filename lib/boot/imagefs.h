/* SPDX-License-Identifier: MIT */
/* The ImageFS: components/<sha256 hex>, manifests/<name>.json(.sig) and the
 * ordered `active` list. Every path inside it is built from a validated name
 * or a digest, never taken from a manifest. See docs/format.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "util.h"

struct kos_imagefs {
        int root_fd;
        int components_fd;
        int manifests_fd;
};

#define KOS_IMAGEFS_NULL {.root_fd = -1, .components_fd = -1, .manifests_fd = -1}

/* Creates the layout in a new or empty directory; an existing ImageFS is left as it is. */
_kos_must_check_ int kos_imagefs_init(const char *path);
_kos_must_check_ int kos_imagefs_open(const char *path, struct kos_imagefs *ret);
void kos_imagefs_close(struct kos_imagefs *img);

/* Calls fn with the name of each installed manifest (manifests/<name>.json
 * with a valid name), in directory order, until fn returns non-zero: a
 * negative errno, or a positive value meaning "found, stop"; that value is
 * returned (0 when fn always returned 0). */
_kos_must_check_ int kos_imagefs_for_each_manifest(const struct kos_imagefs *img,
                                  int (*fn)(const struct kos_imagefs *img, const char *name, void *userdata),
                                  void *userdata);

/* "<name>.json" and "<name>.json.sig" for a valid name. */
void kos_manifest_file_names(const char *name, char json[static KOS_NAME_MAX + 8], char sig[static KOS_NAME_MAX + 12]);

/* The id (sha256 of the exact bytes) of the installed manifests/<name>.json.
 * Nothing is authenticated: the id only names bytes. -ENOENT when not
 * installed, -EINVAL for an invalid name. */
_kos_must_check_ int kos_imagefs_manifest_id(const struct kos_imagefs *img, const char *name, uint8_t ret_id[static KOS_SHA256_LEN]);

/* Copies src_fd (a regular file) into components/ under its sha256, through
 * a temporary file that is fsynced and renamed into place. */
_kos_must_check_ int kos_imagefs_add_component(const struct kos_imagefs *img, int src_fd, uint8_t ret_sha256[static KOS_SHA256_LEN],
                              kos_progress_fn progress, void *userdata);

/* Writes manifests/<name>.json.sig then manifests/<name>.json, each
 * atomically. Refuses (-EEXIST) to replace a different manifest of the same
 * name: a name, once installed, always means the same bytes. */
_kos_must_check_ int kos_imagefs_install_manifest(const struct kos_imagefs *img, const char *name, const char *json, size_t json_len,
                                 const char *sig, size_t sig_len);
