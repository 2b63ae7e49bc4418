/* SPDX-License-Identifier: MIT */
/* The dm-verity format as `veritysetup format --hash=sha256` writes it into
 * a KOS component (docs/format.md, "Manifest", verity): the data, then at
 * hash_offset a 4096-byte block starting with the superblock, then the hash
 * tree, top level first and level 0 (the digests of the data blocks) last.
 * Both users read it through here: the System Kernel checks the superblock
 * before dm-verity maps the image (system/stack.c), and selection checks a
 * "verify": "hash-tree" component by its tree alone (lib/boot/select.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "sha256.h"
#include "util.h"

#define KOS_VERITY_BLOCK 4096u
#define KOS_VERITY_MAX_SALT 256
#define KOS_VERITY_SUPERBLOCK_SIZE 512
#define KOS_VERITY_DIGESTS_PER_BLOCK (KOS_VERITY_BLOCK / KOS_SHA256_LEN) /* 128 */
#define KOS_VERITY_MAX_LEVELS 63 /* cryptsetup's VERITY_MAX_LEVELS; 2^44 bytes need 5 */

/* Checks the 512-byte superblock read at hash_offset against what the signed
 * manifest implies (version 1, hash type 1, sha256, 4096-byte blocks,
 * hash_offset / 4096 data blocks, a salt of at most 256 bytes) and returns
 * its salt; -EBADMSG with the field named in ret_error otherwise. */
_kos_must_check_ int kos_verity_check_superblock(const void *untrusted_superblock, size_t size, uint64_t hash_offset,
                                                 uint8_t ret_salt[static KOS_VERITY_MAX_SALT], size_t *ret_salt_size,
                                                 struct kos_error *ret_error);

/* Reads the superblock at hash_offset of fd (an image or a device) and
 * checks it as above: what the System Kernel accepts before dm-verity maps
 * the image. Reads exactly the 512 bytes of the superblock, nothing else.
 * 0 with the salt; -EBADMSG with the reason in ret_error when it is refused
 * (missing, or other parameters); another negative errno when it cannot be
 * read. */
_kos_must_check_ int kos_verity_read_superblock(int fd, uint64_t hash_offset, uint8_t ret_salt[static KOS_VERITY_MAX_SALT],
                                                size_t *ret_salt_size, struct kos_error *ret_error);

/* The hash tree veritysetup writes for hash_offset / 4096 data blocks (the
 * kernel's dm-verity computes the same): ret_levels levels, and the number of
 * 4096-byte blocks they hold in all (0 for a single data block, whose digest
 * is the root hash itself). -EINVAL when hash_offset is 0 or not a multiple
 * of 4096. */
_kos_must_check_ int kos_verity_tree_geometry(uint64_t hash_offset, unsigned *ret_levels, uint64_t *ret_tree_blocks);

/* The exact size of a component whose tree starts at hash_offset: the data,
 * the superblock's block and the tree, nothing after it. */
_kos_must_check_ int kos_verity_image_size(uint64_t hash_offset, uint64_t *ret_size);

enum kos_verity_tree_result {
        KOS_VERITY_TREE_MATCH,
        KOS_VERITY_TREE_MISMATCH,   /* superblock or tree: detail says which block */
        KOS_VERITY_TREE_SHORT_READ, /* the file ended before the tree did */
        KOS_VERITY_TREE_IO_ERROR,
};

/* Reads the superblock at hash_offset and every block of the hash tree of
 * fd (never a data block, except for an image of one data block, whose
 * digest is the root hash), and checks that each tree block hashes
 * (sha256(salt || block), hash type 1) to its entry in the level above, that
 * the top block hashes to root_hash, and that every digest slot not used by
 * a block below is zero (as `veritysetup verify` requires). Each block is
 * read exactly once, in one pass; memory is one block per level.
 * *ret_read_bytes gets the bytes read; ret_error what failed, for people,
 * and its code: -EBADMSG (MISMATCH, or the superblock's own code), -ENODATA
 * (SHORT_READ), the negative errno (IO_ERROR); cleared with MATCH. */
enum kos_verity_tree_result kos_verity_tree_verify(int fd, uint64_t hash_offset,
                                                   const uint8_t root_hash[static KOS_SHA256_LEN],
                                                   uint64_t *ret_read_bytes, struct kos_error *ret_error);
