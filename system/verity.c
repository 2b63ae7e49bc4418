/* SPDX-License-Identifier: MIT */
/* The dm-verity superblock, checked against the signed manifest before its
 * salt is used (no libcryptsetup here: the unit tests run it). */
#include "stack.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The dm-verity superblock (cryptsetup's struct verity_sb, little-endian),
 * the first block of the hash area that `veritysetup format` writes. */
struct verity_superblock {
        uint8_t signature[8]; /* "verity\0\0" */
        uint32_t version;     /* 1 */
        uint32_t hash_type;   /* 1: the normal (not Chrome OS) tree */
        uint8_t uuid[16];
        uint8_t algorithm[32]; /* "sha256", NUL-padded */
        uint32_t data_block_size;
        uint32_t hash_block_size;
        uint64_t data_blocks;
        uint16_t salt_size;
        uint8_t pad1[6];
        uint8_t salt[256];
        uint8_t pad2[168];
} __attribute__((packed));

_Static_assert(sizeof(struct verity_superblock) == STACK_VERITY_SUPERBLOCK_SIZE, "the on-disk verity superblock is 512 bytes");

int stack_verity_check_superblock(const void *untrusted_superblock, size_t size, uint64_t hash_offset,
                                  uint8_t ret_salt[static STACK_VERITY_MAX_SALT], size_t *ret_salt_size, char *error,
                                  size_t error_size) {
        const struct verity_superblock *sb = untrusted_superblock;
        static const char algorithm[32] = "sha256";

        if (size != sizeof *sb || memcmp(sb->signature, "verity\0\0", 8) != 0) {
                snprintf(error, error_size, "no dm-verity superblock at the signed hash offset %llu",
                         (unsigned long long)hash_offset);
                return -EBADMSG;
        }
        /* Each field is either fixed by the format (sha256, 4096-byte blocks,
         * version 1) or follows from signed data (the data ends where the
         * signed hash_offset puts the tree); the salt is an input of every
         * hash up to the signed root hash, so a changed salt verifies nothing. */
        const char *field = le32toh(sb->version) != 1                              ? "version"
                            : le32toh(sb->hash_type) != 1                          ? "hash type"
                            : memcmp(sb->algorithm, algorithm, sizeof algorithm)   ? "hash algorithm"
                            : le32toh(sb->data_block_size) != STACK_VERITY_BLOCK   ? "data block size"
                            : le32toh(sb->hash_block_size) != STACK_VERITY_BLOCK   ? "hash block size"
                            : le64toh(sb->data_blocks) != hash_offset / STACK_VERITY_BLOCK ? "data blocks"
                            : le16toh(sb->salt_size) > STACK_VERITY_MAX_SALT       ? "salt size"
                                                                                   : NULL;
        if (field || hash_offset == 0 || hash_offset % STACK_VERITY_BLOCK) {
                snprintf(error, error_size,
                         "the dm-verity superblock does not match the signed manifest (%s; the manifest's hash_offset "
                         "%llu means sha256, %u-byte blocks, %llu data blocks); refusing it",
                         field ? field : "hash offset", (unsigned long long)hash_offset, STACK_VERITY_BLOCK,
                         (unsigned long long)(hash_offset / STACK_VERITY_BLOCK));
                return -EBADMSG;
        }
        *ret_salt_size = le16toh(sb->salt_size);
        memcpy(ret_salt, sb->salt, *ret_salt_size);
        return 0;
}

