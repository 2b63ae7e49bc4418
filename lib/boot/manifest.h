/* SPDX-License-Identifier: MIT */
/* The manifest: a signed JSON file naming the System Kernel, its initrd, its
 * command line and the image components stacked into the root filesystem.
 * Parsed strictly (see docs/format.md); only ever parsed after its signature
 * has been verified over the exact bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "hash.h"
#include "util.h"

#define KOS_MANIFEST_MAX (1024 * 1024)
#define KOS_MANIFEST_FORMAT 1
#define KOS_MANIFEST_MAX_COMPONENTS 64
#define KOS_MANIFEST_MAX_BLOBS (4 + KOS_MANIFEST_MAX_COMPONENTS) /* kernel, initrd, components, boot kernel, dbx update */
#define KOS_DBX_UPDATE_SIZE_MAX (1024 * 1024) /* a dbx update (.auth) larger than this is malformed */
#define KOS_CMDLINE_MAX 4096
#define KOS_BLOB_SIZE_MAX (UINT64_C(1) << 44) /* 16 TiB: a cap, not a hint */

enum kos_component_type {
        KOS_COMPONENT_SQUASHFS,
        KOS_COMPONENT_EROFS,
        KOS_COMPONENT_EXT4,
        _KOS_COMPONENT_TYPE_MAX,
};

const char *kos_component_type_to_string(enum kos_component_type t);
_kos_must_check_ int kos_component_type_from_string(const char *s);

/* A file stored content-addressed as components/<sha256 hex>. */
struct kos_blob {
        uint8_t sha256[KOS_SHA256_LEN];
        uint64_t size;
};

/* "encryption": {"type": "luks2", "key": "<key id>"}: the file is a LUKS2
 * container opened with the key of that id from the System Kernel's key store. */
struct kos_encryption {
        bool enabled;
        char key[KOS_NAME_MAX + 1];
};

/* "verity": {"root_hash": "<64 hex>", "hash_offset": N}: a dm-verity hash
 * tree (veritysetup format, sha256, with its superblock) starts at byte N of
 * the (decrypted) image; N is a multiple of 4096. */
struct kos_verity {
        bool enabled;
        uint8_t root_hash[KOS_SHA256_LEN];
        uint64_t hash_offset;
};

/* "verify": how selection checks a component's file. The default (absent,
 * or "sha256") reads and hashes every byte; "hash-tree" (only with verity
 * and without encryption) reads only the dm-verity superblock and tree and
 * checks them up to the signed root hash, leaving the data to dm-verity as
 * it is read (lib/boot/verity.h; docs/format.md, "Selection"). */
enum kos_verify {
        KOS_VERIFY_SHA256,
        KOS_VERIFY_HASH_TREE,
        _KOS_VERIFY_MAX,
};

const char *kos_verify_to_string(enum kos_verify v);

struct kos_component {
        char name[KOS_NAME_MAX + 1];
        enum kos_component_type type;
        struct kos_blob blob;
        struct kos_encryption encryption;
        struct kos_verity verity;
        enum kos_verify verify;
};

/* "boot_kernel": {"sha256": ..., "size": N, "bk_security_version": V}: a
 * signed Boot Kernel UKI that travels with the release (bundles, the inbox,
 * OCI) and that Node Manager installs into the idle ESP slot. It is not
 * stacked, and selection does not read it: the release boots without it.
 * V is the kos.bk_security_version=V in the UKI's signed command line. */
struct kos_boot_kernel {
        bool present;
        struct kos_blob blob;
        uint32_t security_version;
};

/* "dbx_update": {"sha256": ..., "size": N}: a KEK-signed append to the
 * UEFI dbx (an .auth, `kos dbx create`) that travels with the release and
 * that Node Manager applies once the release's boot is marked good, unless
 * it would revoke a UKI the device needs (lib/device/dbx.h). Not stacked,
 * not read by selection. */
struct kos_dbx_update {
        bool present;
        struct kos_blob blob;
};

struct kos_manifest {
        unsigned format;
        char name[KOS_NAME_MAX + 1];
        uint64_t version;
        /* Anti-rollback: a device refuses a manifest whose security_version is
         * below its rollback floor (lib/boot/rollback.h). Absent in the JSON: 0. */
        uint32_t security_version;
        struct kos_blob kernel;
        struct kos_blob initrd;
        char *cmdline;
        size_t n_components;
        struct kos_component *components; /* bottom layer first */
        struct kos_boot_kernel boot_kernel;
        struct kos_dbx_update dbx_update;
};

/* Strict parse; on -EBADMSG ret_error says what is wrong (JSON position or
 * the schema rule broken). The caller must already have authenticated data. */
_kos_must_check_ int kos_manifest_parse(const char *data, size_t len, struct kos_manifest **ret, struct kos_error *ret_error);
void kos_manifest_free(struct kos_manifest *m);
static inline void kos_manifest_freep(struct kos_manifest **m) { kos_manifest_free(*m); }
#define _cleanup_manifest_ __attribute__((cleanup(kos_manifest_freep)))

/* Serialises a manifest as the canonical JSON kos writes (2-space indent,
 * keys in documented order, trailing newline). security_version is written
 * only when it is not 0, and a component's verify only when it is not the
 * default sha256, so manifests without them keep their exact bytes. */
_kos_must_check_ int kos_manifest_format(const struct kos_manifest *m, char **ret_json, size_t *ret_len);

/* True when a component of m is checked by its hash tree ("verify":
 * "hash-tree"): the Boot Kernel then records each boot as unconfirmed. */
bool kos_manifest_has_hash_tree(const struct kos_manifest *m);

/* The blobs a manifest needs, kernel and initrd first, then the components
 * in order, then the Boot Kernel UKI ("boot-kernel") when there is one:
 * ret[i] with the count returned, labels for messages. */
size_t kos_manifest_blobs(const struct kos_manifest *m, const struct kos_blob **ret_blobs, const char **ret_labels,
                          size_t max);
