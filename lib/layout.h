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

/* File system labels. */
#define KOS_LABEL_IMAGEFS "KOS-IMAGEFS"
#define KOS_LABEL_DATA "KOS-DATA"   /* also the GPT partition name of an unformatted DataFS */
#define KOS_LABEL_UPDATE "KOS-UPDATE"

/* Left in the running system by the System Kernel and Node Manager. */
#define KOS_RUN_DIR "/run/kos"
#define KOS_BOOT_INFO_FILE KOS_RUN_DIR "/boot.json" /* written by kos-system-init, read by Node Manager */
#define KOS_MEASUREMENTS_FILE KOS_RUN_DIR "/measurements.json" /* the Boot Kernel's PCR event, docs/tpm.md */
#define KOS_LAYERS_DIR KOS_RUN_DIR "/layers"        /* each component's mount, by name */
#define KOS_RW_DIR KOS_RUN_DIR "/rw"                /* the R/W cache's upper and work directories */
#define KOS_NODE_SOCKET KOS_RUN_DIR "/node.sock"    /* Node Manager's Varlink API */
