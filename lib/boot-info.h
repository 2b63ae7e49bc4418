/* SPDX-License-Identifier: MIT */
/* /run/kos/boot.json (KOS_BOOT_INFO_FILE): what the System Kernel booted.
 * Written once by kos-system-init just before it switches root; read by
 * Node Manager, which acts on the manifest id and the ImageFS identity, and
 * by people and scripts (the rest: components, the R/W cache, the DataFS,
 * timings). The fields this header names are the contract; see
 * docs/system-kernel.md, "/run/kos/boot.json". */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "hash.h"
#include "util.h"

#define KOS_BOOT_INFO_MAX 65536
#define KOS_UUID_MAX 64

struct kos_boot_info {
        char name[KOS_NAME_MAX + 1];            /* manifest.name */
        uint8_t id[KOS_SHA256_LEN];             /* manifest.id: sha256 of the manifest file */
        uint64_t version;                       /* manifest.version */
        char imagefs_uuid[KOS_UUID_MAX];        /* imagefs.uuid: file system UUID the Boot Kernel verified */
        char imagefs_partuuid[KOS_UUID_MAX];    /* imagefs.partuuid: its partition, or "none" */
        char imagefs_device[KOS_UUID_MAX];      /* imagefs.device: /dev path at boot, for people */
};

/* Writes path (atomically) as {"manifest": {...}, "imagefs": {...}} plus
 * every member of details (components, rw, data, timings: informational),
 * which the call takes over (it is released here). */
_kos_must_check_ int kos_boot_info_write(const char *path, const struct kos_boot_info *info, json_t *details);

/* Reads and checks path: a valid manifest name, a 64-digit id, UUIDs of
 * [0-9A-Za-z-]. -EBADMSG when anything is missing or malformed. */
_kos_must_check_ int kos_boot_info_read(const char *path, struct kos_boot_info *ret);
