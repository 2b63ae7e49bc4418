/* SPDX-License-Identifier: MIT */
/* The dm-verity format: the superblock, checked against the signed manifest
 * before its salt is used, and the hash tree walked up to the signed root
 * hash (no libcryptsetup here: its verify reads every data block too). */
#include "verity.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

_Static_assert(sizeof(struct verity_superblock) == KOS_VERITY_SUPERBLOCK_SIZE, "the on-disk verity superblock is 512 bytes");

int kos_verity_check_superblock(const void *untrusted_superblock, size_t size, uint64_t hash_offset,
                                  uint8_t ret_salt[static KOS_VERITY_MAX_SALT], size_t *ret_salt_size,
                                  struct kos_error *ret_error) {
        const struct verity_superblock *sb = untrusted_superblock;
        static const char algorithm[32] = "sha256";

        if (size != sizeof *sb || memcmp(sb->signature, "verity\0\0", 8) != 0) {
                return kos_error_set(ret_error, -EBADMSG, "no dm-verity superblock at the signed hash offset %llu",
                                     (unsigned long long)hash_offset);
        }
        /* Each field is either fixed by the format (sha256, 4096-byte blocks,
         * version 1) or follows from signed data (the data ends where the
         * signed hash_offset puts the tree); the salt is an input of every
         * hash up to the signed root hash, so a changed salt verifies nothing. */
        const char *field = le32toh(sb->version) != 1                              ? "version"
                            : le32toh(sb->hash_type) != 1                          ? "hash type"
                            : memcmp(sb->algorithm, algorithm, sizeof algorithm)   ? "hash algorithm"
                            : le32toh(sb->data_block_size) != KOS_VERITY_BLOCK   ? "data block size"
                            : le32toh(sb->hash_block_size) != KOS_VERITY_BLOCK   ? "hash block size"
                            : le64toh(sb->data_blocks) != hash_offset / KOS_VERITY_BLOCK ? "data blocks"
                            : le16toh(sb->salt_size) > KOS_VERITY_MAX_SALT       ? "salt size"
                                                                                   : NULL;
        if (field || hash_offset == 0 || hash_offset % KOS_VERITY_BLOCK) {
                return kos_error_set(ret_error, -EBADMSG,
                                     "the dm-verity superblock does not match the signed manifest (%s; the manifest's "
                                     "hash_offset %llu means sha256, %u-byte blocks, %llu data blocks); refusing it",
                                     field ? field : "hash offset", (unsigned long long)hash_offset, KOS_VERITY_BLOCK,
                                     (unsigned long long)(hash_offset / KOS_VERITY_BLOCK));
        }
        *ret_salt_size = le16toh(sb->salt_size);
        memcpy(ret_salt, sb->salt, *ret_salt_size);
        return 0;
}

int kos_verity_read_superblock(int fd, uint64_t hash_offset, uint8_t ret_salt[static KOS_VERITY_MAX_SALT],
                               size_t *ret_salt_size, struct kos_error *ret_error) {
        uint8_t untrusted_superblock[KOS_VERITY_SUPERBLOCK_SIZE];
        size_t have = 0;

        if (hash_offset > (uint64_t)INT64_MAX - sizeof untrusted_superblock) {
                return kos_error_set(ret_error, -EBADMSG, "verity hash_offset %llu is out of range",
                                     (unsigned long long)hash_offset);
        }
        while (have < sizeof untrusted_superblock) {
                ssize_t n = pread(fd, untrusted_superblock + have, sizeof untrusted_superblock - have,
                                  (off_t)(hash_offset + have));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return kos_error_set(ret_error, -errno, "cannot read the dm-verity superblock: %s",
                                             strerror(errno));
                if (n == 0)
                        break; /* the image ends first: no superblock there */
                have += (size_t)n;
        }
        return kos_verity_check_superblock(untrusted_superblock, have, hash_offset, ret_salt, ret_salt_size, ret_error);
}

/* Levels as the kernel's dm-verity (verity_ctr) and cryptsetup's
 * hash_levels() count them: the fewest with 128^levels >= data blocks. Level
 * i holds ceil(data_blocks / 128^(i+1)) blocks; the top level, stored first,
 * holds one. */
static unsigned count_levels(uint64_t data_blocks) {
        unsigned levels = 0;

        while (7 * levels < 64 && (data_blocks - 1) >> (7 * levels))
                levels++;
        return levels;
}

static uint64_t level_blocks(uint64_t data_blocks, unsigned level) {
        unsigned shift = 7 * (level + 1);

        return shift >= 64 ? 1 : (data_blocks >> shift) + ((data_blocks & ((UINT64_C(1) << shift) - 1)) != 0);
}

int kos_verity_tree_geometry(uint64_t hash_offset, unsigned *ret_levels, uint64_t *ret_tree_blocks) {
        uint64_t data_blocks = hash_offset / KOS_VERITY_BLOCK, total = 0;

        if (hash_offset == 0 || hash_offset % KOS_VERITY_BLOCK)
                return -EINVAL;
        unsigned levels = count_levels(data_blocks);
        if (levels > KOS_VERITY_MAX_LEVELS)
                return -EINVAL;
        for (unsigned i = 0; i < levels; i++)
                total += level_blocks(data_blocks, i); /* at most data_blocks / 127 + levels: no overflow */
        *ret_levels = levels;
        *ret_tree_blocks = total;
        return 0;
}

int kos_verity_image_size(uint64_t hash_offset, uint64_t *ret_size) {
        uint64_t tree_blocks, size;
        unsigned levels;
        int r = kos_verity_tree_geometry(hash_offset, &levels, &tree_blocks);

        if (r < 0)
                return r;
        if (tree_blocks > (UINT64_MAX - KOS_VERITY_BLOCK) / KOS_VERITY_BLOCK ||
            __builtin_add_overflow(hash_offset, KOS_VERITY_BLOCK + tree_blocks * KOS_VERITY_BLOCK, &size))
                return -EOVERFLOW;
        *ret_size = size;
        return 0;
}

/* One walk over a tree: a block buffer per level, filled as the walk goes. */
struct tree_walk {
        int fd;
        unsigned levels;
        uint64_t data_blocks;
        uint64_t n_blocks[KOS_VERITY_MAX_LEVELS];
        uint64_t start[KOS_VERITY_MAX_LEVELS]; /* byte offset of each level */
        uint8_t salt[KOS_VERITY_MAX_SALT];
        size_t salt_size;
        const uint8_t *root_hash;
        uint8_t *blocks; /* levels blocks; blocks + level * 4096 */
        EVP_MD_CTX *ctx;
        uint64_t read_bytes;
        struct kos_error *error; /* the caller's; may be NULL */
};

static enum kos_verity_tree_result mismatch(struct tree_walk *w, const char *format, ...)
        __attribute__((format(printf, 2, 3)));
static enum kos_verity_tree_result mismatch(struct tree_walk *w, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        kos_error_setv(w->error, -EBADMSG, format, ap);
        va_end(ap);
        return KOS_VERITY_TREE_MISMATCH;
}

static enum kos_verity_tree_result read_exactly(struct tree_walk *w, void *buffer, size_t size, uint64_t offset) {
        for (size_t done = 0; done < size;) {
                ssize_t n = pread(w->fd, (uint8_t *)buffer + done, size - done, (off_t)(offset + done));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        kos_error_set(w->error, -errno, "cannot read byte %llu: %s",
                                      (unsigned long long)(offset + done), strerror(errno));
                        return KOS_VERITY_TREE_IO_ERROR;
                }
                if (n == 0) {
                        kos_error_set(w->error, -ENODATA, "the file ends at byte %llu, inside the dm-verity tree",
                                      (unsigned long long)(offset + done));
                        return KOS_VERITY_TREE_SHORT_READ;
                }
                done += (size_t)n;
                w->read_bytes += (uint64_t)n;
        }
        return KOS_VERITY_TREE_MATCH;
}

/* Hash type 1: sha256(salt || block). */
static enum kos_verity_tree_result hash_block(struct tree_walk *w, const uint8_t *block,
                                              uint8_t ret_digest[static KOS_SHA256_LEN]) {
        unsigned int len = 0;

        if (EVP_DigestInit_ex(w->ctx, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(w->ctx, w->salt, w->salt_size) != 1 ||
            EVP_DigestUpdate(w->ctx, block, KOS_VERITY_BLOCK) != 1 ||
            EVP_DigestFinal_ex(w->ctx, ret_digest, &len) != 1 || len != KOS_SHA256_LEN) {
                kos_error_set(w->error, -EIO, "sha256 failed");
                return KOS_VERITY_TREE_IO_ERROR;
        }
        return KOS_VERITY_TREE_MATCH;
}

/* Reads block index of level into its buffer and checks that the digest
 * slots past the used ones are zero, as veritysetup writes them and
 * `veritysetup verify` requires ("spare area is not zeroed"). They are
 * covered by the block's hash anyway; a tree that differs from what
 * veritysetup writes is refused rather than reasoned about. */
static enum kos_verity_tree_result load_block(struct tree_walk *w, unsigned level, uint64_t index, uint64_t used) {
        uint8_t *block = w->blocks + (size_t)level * KOS_VERITY_BLOCK;
        uint64_t offset = w->start[level] + index * KOS_VERITY_BLOCK;
        enum kos_verity_tree_result r = read_exactly(w, block, KOS_VERITY_BLOCK, offset);

        if (r != KOS_VERITY_TREE_MATCH)
                return r;
        if (used > KOS_VERITY_DIGESTS_PER_BLOCK)
                used = KOS_VERITY_DIGESTS_PER_BLOCK;
        for (size_t i = (size_t)used * KOS_SHA256_LEN; i < KOS_VERITY_BLOCK; i++)
                if (block[i] != 0)
                        return mismatch(w, "dm-verity tree block at byte %llu (level %u, block %llu): unused byte %zu is not zero",
                                        (unsigned long long)offset, level, (unsigned long long)index, i);
        return KOS_VERITY_TREE_MATCH;
}

/* digest is the hash of block index of level: checks it against its slot in
 * the level above (read when its first child comes), and once a parent has
 * seen its last child, hashes the parent and goes up; the top block's hash
 * must be the signed root hash. */
static enum kos_verity_tree_result accept_digest(struct tree_walk *w, unsigned level, uint64_t index,
                                                 const uint8_t child_digest[static KOS_SHA256_LEN]) {
        uint8_t digest[KOS_SHA256_LEN];
        enum kos_verity_tree_result r;

        memcpy(digest, child_digest, sizeof digest);
        for (;;) {
                if (level + 1 == w->levels)
                        return index == 0 && kos_digest_equal(digest, w->root_hash)
                                       ? KOS_VERITY_TREE_MATCH
                                       : mismatch(w, "the top block of the dm-verity tree (byte %llu) does not hash to "
                                                     "the signed root hash", (unsigned long long)w->start[level]);
                unsigned parent = level + 1;
                uint64_t parent_index = index / KOS_VERITY_DIGESTS_PER_BLOCK;
                size_t slot = (size_t)(index % KOS_VERITY_DIGESTS_PER_BLOCK);
                const uint8_t *block = w->blocks + (size_t)parent * KOS_VERITY_BLOCK;
                if (slot == 0 && (r = load_block(w, parent, parent_index,
                                                 w->n_blocks[level] - parent_index * KOS_VERITY_DIGESTS_PER_BLOCK)) !=
                                         KOS_VERITY_TREE_MATCH)
                        return r;
                if (!kos_digest_equal(block + slot * KOS_SHA256_LEN, digest))
                        return mismatch(w, "dm-verity tree block at byte %llu (level %u, block %llu) does not hash to "
                                           "its entry in level %u",
                                        (unsigned long long)(w->start[level] + index * KOS_VERITY_BLOCK), level,
                                        (unsigned long long)index, parent);
                if (slot + 1 < KOS_VERITY_DIGESTS_PER_BLOCK && index + 1 < w->n_blocks[level])
                        return KOS_VERITY_TREE_MATCH; /* the parent has more children to come */
                if ((r = hash_block(w, block, digest)) != KOS_VERITY_TREE_MATCH)
                        return r;
                level = parent;
                index = parent_index;
        }
}

static enum kos_verity_tree_result read_superblock(struct tree_walk *w, uint64_t hash_offset) {
        uint8_t untrusted_superblock[KOS_VERITY_SUPERBLOCK_SIZE];
        enum kos_verity_tree_result r = read_exactly(w, untrusted_superblock, sizeof untrusted_superblock, hash_offset);

        if (r != KOS_VERITY_TREE_MATCH)
                return r;
        if (kos_verity_check_superblock(untrusted_superblock, sizeof untrusted_superblock, hash_offset, w->salt,
                                        &w->salt_size, w->error) < 0)
                return KOS_VERITY_TREE_MISMATCH;
        return KOS_VERITY_TREE_MATCH;
}

/* Level 0, block by block (the bulk of the tree: 1/128 of the data), each
 * climbing as far up as it completes. */
static enum kos_verity_tree_result walk(struct tree_walk *w) {
        uint8_t digest[KOS_SHA256_LEN];
        enum kos_verity_tree_result r;

        if (w->levels == 0) {
                /* One data block: its digest is the root hash, no tree. */
                if ((r = read_exactly(w, w->blocks, KOS_VERITY_BLOCK, 0)) != KOS_VERITY_TREE_MATCH ||
                    (r = hash_block(w, w->blocks, digest)) != KOS_VERITY_TREE_MATCH)
                        return r;
                return kos_digest_equal(digest, w->root_hash)
                               ? KOS_VERITY_TREE_MATCH
                               : mismatch(w, "the only data block does not hash to the signed root hash");
        }
        (void)posix_fadvise(w->fd, (off_t)w->start[0], (off_t)(w->n_blocks[0] * KOS_VERITY_BLOCK), POSIX_FADV_SEQUENTIAL);
        for (uint64_t i = 0; i < w->n_blocks[0]; i++) {
                if ((r = load_block(w, 0, i, w->data_blocks - i * KOS_VERITY_DIGESTS_PER_BLOCK)) != KOS_VERITY_TREE_MATCH ||
                    (r = hash_block(w, w->blocks, digest)) != KOS_VERITY_TREE_MATCH ||
                    (r = accept_digest(w, 0, i, digest)) != KOS_VERITY_TREE_MATCH)
                        return r;
        }
        return KOS_VERITY_TREE_MATCH;
}

enum kos_verity_tree_result kos_verity_tree_verify(int fd, uint64_t hash_offset,
                                                   const uint8_t root_hash[static KOS_SHA256_LEN],
                                                   uint64_t *ret_read_bytes, struct kos_error *ret_error) {
        struct tree_walk w = {.fd = fd, .root_hash = root_hash, .error = ret_error};
        enum kos_verity_tree_result r;
        uint64_t tree_blocks;

        kos_error_clear(ret_error);
        if (kos_verity_tree_geometry(hash_offset, &w.levels, &tree_blocks) < 0) {
                *ret_read_bytes = 0;
                kos_error_set(ret_error, -EBADMSG, "verity hash_offset %llu is not a positive multiple of %u",
                              (unsigned long long)hash_offset, KOS_VERITY_BLOCK);
                return KOS_VERITY_TREE_MISMATCH;
        }
        w.data_blocks = hash_offset / KOS_VERITY_BLOCK;
        /* Top level first, right after the superblock's block. */
        uint64_t position = hash_offset + KOS_VERITY_BLOCK;
        for (unsigned i = w.levels; i-- > 0;) {
                w.n_blocks[i] = level_blocks(w.data_blocks, i);
                w.start[i] = position;
                position += w.n_blocks[i] * KOS_VERITY_BLOCK;
        }
        w.blocks = malloc((size_t)(w.levels ? w.levels : 1) * KOS_VERITY_BLOCK);
        w.ctx = EVP_MD_CTX_new();
        if (!w.blocks || !w.ctx) {
                kos_error_set(ret_error, -ENOMEM, "out of memory");
                r = KOS_VERITY_TREE_IO_ERROR;
        } else if ((r = read_superblock(&w, hash_offset)) == KOS_VERITY_TREE_MATCH)
                r = walk(&w);
        EVP_MD_CTX_free(w.ctx);
        free(w.blocks);
        *ret_read_bytes = w.read_bytes;
        return r;
}
