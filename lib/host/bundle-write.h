/* SPDX-License-Identifier: MIT */
/* Writing an update bundle (kos bundle create): the cpio "newc" stream that
 * lib/device/bundle-install.c reads. See docs/format.md, "Update bundles". */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "util.h"

/* Writes a bundle: the manifest, its signature, then the given component
 * files (each already known to be a blob of the manifest, in that order). */
_kos_must_check_ int kos_bundle_write(int out_fd, const char *manifest, size_t manifest_len, const char *sig, size_t sig_len,
                     const int *component_fds, const uint8_t (*component_sha256)[KOS_SHA256_LEN],
                     const uint64_t *component_sizes, size_t n_components);
