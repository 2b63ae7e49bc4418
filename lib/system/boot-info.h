/* SPDX-License-Identifier: MIT */
/* /run/kos/boot.json (KOS_BOOT_INFO_FILE): what the System Kernel booted.
 * Written once by kos-system-init just before it switches root; read by
 * Node Manager, which acts on the manifest id, the ImageFS identity and the
 * dm-verity devices of the "hash-tree" components (which it scrubs before it
 * confirms the boot), and by people and scripts. This file alone writes and
 * parses it, from and into struct kos_boot_info: every member is the
 * contract; see docs/system-kernel.md, "/run/kos/boot.json". */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "hash.h"
#include "manifest.h"
#include "util.h"

#define KOS_BOOT_INFO_MAX 65536
#define KOS_UUID_MAX 64
#define KOS_BOOT_INFO_DEVICE_MAX 160
#define KOS_BOOT_INFO_WORD_MAX 32
#define KOS_BOOT_INFO_REASON_MAX 512

/* One component as the System Kernel mounted it (components[]). */
struct kos_boot_info_component {
        char name[KOS_NAME_MAX + 1];             /* name: as in the manifest */
        enum kos_component_type type;            /* type */
        uint8_t sha256[KOS_SHA256_LEN];          /* sha256: the blob's digest */
        char device[KOS_BOOT_INFO_DEVICE_MAX];   /* device: what was mounted (loop, dm-crypt or dm-verity), under /dev/ */
        bool verity, encrypted;                  /* verity, encrypted */
        enum kos_verify verify;                  /* verify: how selection checked it */
        double mount_seconds;                    /* mount_seconds */
};

/* A component checked by its hash tree alone, as the System Kernel mapped it:
 * a view of components[] made by the parser, the devices the scrub reads. */
struct kos_boot_info_hash_tree {
        char component[KOS_NAME_MAX + 1];        /* components[].name */
        char device[KOS_BOOT_INFO_DEVICE_MAX];   /* components[].device: its dm-verity mapping */
};

/* Seconds since the System Kernel started (timings). */
struct kos_boot_info_timings {
        double init_start, modules_loaded, imagefs_mounted, manifest_verified, layers_mounted, root_assembled;
};

struct kos_boot_info {
        char name[KOS_NAME_MAX + 1];            /* manifest.name */
        uint8_t id[KOS_SHA256_LEN];             /* manifest.id: sha256 of the manifest file */
        uint64_t version;                       /* manifest.version */
        char imagefs_uuid[KOS_UUID_MAX];        /* imagefs.uuid: file system UUID the Boot Kernel verified */
        char imagefs_partuuid[KOS_UUID_MAX];    /* imagefs.partuuid: its partition, or "none" */
        char imagefs_device[KOS_UUID_MAX];      /* imagefs.device: /dev path at boot, for people */
        size_t n_components;                    /* components, in manifest order */
        struct kos_boot_info_component components[KOS_MANIFEST_MAX_COMPONENTS];
        char rw[KOS_BOOT_INFO_WORD_MAX];        /* rw: the R/W cache's mode (tmpfs, keep, wipe) */
        char data_state[KOS_BOOT_INFO_WORD_MAX]; /* data.state: mounted, formatted, missing, unmountable, locked */
        char data_device[KOS_UUID_MAX];         /* data.device: the partition */
        char data_encryption[KOS_BOOT_INFO_WORD_MAX]; /* data.encryption: luks2, none ("" when not written: older init) */
        char data_reason[KOS_BOOT_INFO_REASON_MAX]; /* data.reason: why it is locked, else "" */
        struct kos_boot_info_timings timings;
        /* Filled by the parser from components[]: those with "verify":
         * "hash-tree" (and verity true), in manifest order, which Node
         * Manager reads to the end before it confirms the boot. */
        size_t n_hash_tree;
        struct kos_boot_info_hash_tree hash_tree[KOS_MANIFEST_MAX_COMPONENTS];
};

/* Writes path (atomically): every member above but the hash_tree view, in
 * the layout of docs/system-kernel.md. Checks info first as the parser
 * would (-EINVAL), so what is written can always be read back. */
_kos_must_check_ int kos_boot_info_write(const char *path, const struct kos_boot_info *info);

/* Reads and checks path: a valid manifest name, a 64-digit id, UUIDs of
 * [0-9A-Za-z-], and every member of components: a valid name, a known type
 * and verify, a 64-digit sha256, a device under /dev/ (no "..", shorter
 * than KOS_BOOT_INFO_DEVICE_MAX), and verity true where verify is
 * "hash-tree". -EBADMSG when anything is missing or malformed. */
_kos_must_check_ int kos_boot_info_read(const char *path, struct kos_boot_info *ret);
/* The same checks on len bytes of data (at most KOS_BOOT_INFO_MAX), the
 * parser tests/fuzz/fuzz_boot_info.c runs. */
_kos_must_check_ int kos_boot_info_parse(const char *data, size_t len, struct kos_boot_info *ret);
