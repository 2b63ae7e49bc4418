/* SPDX-License-Identifier: MIT */
/* The parallel, memory-bounded hashing of whole files that selection relies
 * on: every byte by sha256.h, or a dm-verity image by its tree (verity.h). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sha256.h"
#include "util.h"

enum kos_hash_status {
        KOS_HASH_PENDING,
        KOS_HASH_MATCH,
        KOS_HASH_MISMATCH,
        KOS_HASH_SIZE_CHANGED, /* the file ended early or went on past size */
        KOS_HASH_IO_ERROR,     /* error holds the negative errno */
        KOS_HASH_CANCELLED,    /* an earlier job failed, this one was not needed */
        KOS_HASH_TREE_MISMATCH, /* hash_tree: superblock or tree wrong; detail says where */
};

struct kos_hash_job {
        /* in */
        int fd;          /* read from offset 0 to size; owned by the caller */
        uint64_t size;   /* exact number of bytes the file must hold */
        uint8_t expected[KOS_SHA256_LEN];
        int copy_fd;     /* -1, or an fd that receives exactly the bytes hashed */
        bool compute_only; /* no expected digest: status is MATCH once hashed */
        /* A dm-verity image checked by its tree (lib/boot/verity.h): only the
         * superblock at hash_offset and the tree after it are read, and the
         * tree must lead to expected, the signed root hash. The data is
         * never read (dm-verity checks it as it is used). No copy_fd. */
        bool hash_tree;
        uint64_t hash_offset;
        /* out */
        enum kos_hash_status status;
        int error;
        uint8_t digest[KOS_SHA256_LEN];
        uint64_t read_bytes; /* what was read: size, or the superblock and tree */
        char detail[192];    /* with KOS_HASH_TREE_MISMATCH and SIZE_CHANGED of a tree */
};

/* Called from the calling thread about four times a second while hashing. */
typedef void (*kos_progress_fn)(uint64_t done_bytes, uint64_t total_bytes, void *userdata);

/* Hashes every job, one worker thread per CPU (at most one per job), each with
 * a fixed 1 MiB buffer, so memory stays bounded whatever the file sizes.
 * When job i fails, jobs after i are cancelled but jobs before i still run,
 * so the first failure in list order is always reported, whatever the timing.
 * Returns 0 when all jobs ran (look at each status), or a negative errno when
 * the workers could not be started. */
_kos_must_check_ int kos_hash_jobs(struct kos_hash_job *jobs, size_t n_jobs, kos_progress_fn progress, void *userdata);
