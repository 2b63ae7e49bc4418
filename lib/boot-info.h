/* SPDX-License-Identifier: MIT */
/* /run/kos/boot.json (KOS_BOOT_INFO_FILE): what the System Kernel booted.
 * Written once by kos-system-init just before it switches root; read by
 * Node Manager, which acts on the manifest id, the ImageFS identity and the
 * dm-verity devices of the "hash-tree" components (which it scrubs before it
 * confirms the boot), and by people and scripts (the rest: the other
 * members of components, the R/W cache, the DataFS, timings). The fields
 * this header names are the contract; see docs/system-kernel.md,
 * "/run/kos/boot.json". */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "hash.h"
#include "manifest.h"
#include "util.h"

#define KOS_BOOT_INFO_MAX 65536
#define KOS_UUID_MAX 64
#define KOS_BOOT_INFO_DEVICE_MAX 160

/* A component checked by its hash tree alone, as the System Kernel mapped it. */
struct kos_boot_info_hash_tree {
        char component[KOS_NAME_MAX + 1];        /* components[].name */
        char device[KOS_BOOT_INFO_DEVICE_MAX];   /* components[].device: its dm-verity mapping */
};

struct kos_boot_info {
        char name[KOS_NAME_MAX + 1];            /* manifest.name */
        uint8_t id[KOS_SHA256_LEN];             /* manifest.id: sha256 of the manifest file */
        uint64_t version;                       /* manifest.version */
        char imagefs_uuid[KOS_UUID_MAX];        /* imagefs.uuid: file system UUID the Boot Kernel verified */
        char imagefs_partuuid[KOS_UUID_MAX];    /* imagefs.partuuid: its partition, or "none" */
        char imagefs_device[KOS_UUID_MAX];      /* imagefs.device: /dev path at boot, for people */
        /* The components with "verify": "hash-tree" and "verity": true, in
         * manifest order: Node Manager reads their devices to the end. */
        size_t n_hash_tree;
        struct kos_boot_info_hash_tree hash_tree[KOS_MANIFEST_MAX_COMPONENTS];
};

/* Writes path (atomically) as {"manifest": {...}, "imagefs": {...}} plus
 * every member of details (components, rw, data, timings: informational),
 * which the call takes over (it is released here). */
_kos_must_check_ int kos_boot_info_write(const char *path, const struct kos_boot_info *info, json_t *details);

/* Reads and checks path: a valid manifest name, a 64-digit id, UUIDs of
 * [0-9A-Za-z-], and for each member of components whose verify is
 * "hash-tree": a valid name and a device under /dev/ (no "..", shorter than
 * KOS_BOOT_INFO_DEVICE_MAX), with verity true. -EBADMSG when anything is
 * missing or malformed; a file without components has no hash-tree ones. */
_kos_must_check_ int kos_boot_info_read(const char *path, struct kos_boot_info *ret);
/* The same checks on len bytes of data (at most KOS_BOOT_INFO_MAX), the
 * parser tests/fuzz/fuzz_boot_info.c runs. */
_kos_must_check_ int kos_boot_info_parse(const char *data, size_t len, struct kos_boot_info *ret);
