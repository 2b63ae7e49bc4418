/* SPDX-License-Identifier: MIT */
/* Where the stages meet: the paths that kos writes into the Boot Kernel's
 * initramfs, the System Kernel's initrd and the runtime layer, and that the
 * inits and Node Manager read; the file system labels; the files under
 * /run/kos that one stage leaves for the next. One spelling each, so the
 * host tool and the programs on the device cannot drift apart. Paths are
 * absolute as the device sees them; inside an initramfs archive they are
 * written without the leading '/' (KOS_IN_ARCHIVE). */
#pragma once

/* In the Boot Kernel's initramfs and the System Kernel's initrd. */
#define KOS_KEYRING_DIR "/etc/kos/keyring"   /* trusted manifest keys, *.pem */
#define KOS_MODULES_LIST "/etc/kos/modules"  /* modules to load, modules.dep style */
#define KOS_INITRD_KEY_DIR "/etc/kos/keys"   /* development key store (System Kernel) */

/* The same path as a member name of a cpio archive. */
#define KOS_IN_ARCHIVE(path) ((path) + 1)

/* Where the inits mount the ImageFS inside their initramfs (Boot Kernel
 * and System Kernel), and where Node Manager mounts it on the running
 * system. */
#define KOS_INITRAMFS_IMAGEFS_MOUNT "/imagefs"
#define KOS_RUN_IMAGEFS_MOUNT KOS_RUN_DIR "/imagefs"

/* On the ImageFS: boot counting, the unconfirmed markers and the rollback
 * floor (docs/format.md). */
#define KOS_BOOT_STATE_DIR "boot-state"
/* On the ImageFS: the ordered list of manifests to try. */
#define KOS_ACTIVE_FILE "active"

/* The DataFS, mounted by the System Kernel; Node Manager's own files (inbox/,
 * processed/, rejected/, events) under it. */
#define KOS_DATA_MOUNT "/data"
#define KOS_DATA_KOS_DIR KOS_DATA_MOUNT "/kos"

/* In the running root: where Node Manager and kos-node-pull find the
 * registry to poll (docs/node-manager.md). */
#define KOS_UPDATE_CONFIG_FILE "/etc/kos/update.conf"

/* File system labels. */
#define KOS_LABEL_IMAGEFS "KOS-IMAGEFS"
#define KOS_LABEL_DATA "KOS-DATA"   /* also the GPT partition name of an unformatted DataFS */
#define KOS_LABEL_UPDATE "KOS-UPDATE"
#define KOS_LABEL_RW "KOS-RW"       /* a R/W cache partition the System Kernel formats */

/* Left in the running system by the System Kernel and Node Manager. */
#define KOS_RUN_DIR "/run/kos"
#define KOS_BOOT_INFO_FILE KOS_RUN_DIR "/boot.json" /* written by kos-system-init, read by Node Manager */
#define KOS_MEASUREMENTS_FILE KOS_RUN_DIR "/measurements.json" /* the Boot Kernel's PCR event, docs/tpm.md */
#define KOS_LAYERS_DIR KOS_RUN_DIR "/layers"        /* each component's mount, by name */
#define KOS_RW_DIR KOS_RUN_DIR "/rw"                /* the R/W cache's upper and work directories */
#define KOS_NODE_SOCKET KOS_RUN_DIR "/node.sock"    /* Node Manager's Varlink API */
